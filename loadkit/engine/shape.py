"""The plan's stages as a Locust load shape: the user pool of each stage, spawned within ~1 s.

The shape only sizes the pool; the arrival rate (ramps included) is the pacer's job.  Locust's
``start()`` blocks until a ramp completes, so a slow spawn rate would swallow later stages: the
spawn rate is the pool size itself (the whole pool per second).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from locust import LoadTestShape

if TYPE_CHECKING:
    from loadkit.plan import Plan


class PlanShape(LoadTestShape):
    """``tick()`` → (users, spawn rate) of the stage at the shape's run time; None after the plan.

    Marked abstract so that Locust does not instantiate it (without a plan) when a locustfile
    imports it; build instances with :func:`shape_for` and set ``environment.shape_class``.
    """

    abstract = True

    def __init__(self, plan: Plan, lead_s: float = 0.0) -> None:
        super().__init__()
        self.plan = plan
        self.lead_s = lead_s
        self.ended = False

    def end(self) -> None:
        """End the test at the next tick (within a second), the way the plan's end does: Locust's
        runner then stops the users and the workers once, from the shape's own greenlet."""
        self.ended = True

    def tick(self) -> tuple[int, float] | None:
        if self.ended:
            return None
        # the first stage's pool is spawned `lead_s` before plan time 0, so no arrival waits for it
        run_time = max(0.0, self.get_run_time() - self.lead_s)
        if run_time >= self.plan.duration_s:
            return None
        found = self.plan.stage_at(run_time)
        if found is None:
            return None
        users = int(self.plan.users_for(found[0]))
        return users, float(max(users, 1))


def shape_for(plan: Plan, lead_s: float = 0.0) -> PlanShape:
    """The load shape of ``plan`` (an instance, as ``Environment.shape_class`` expects); plan time
    0 is `lead_s` after the shape starts."""
    return PlanShape(plan, lead_s)
