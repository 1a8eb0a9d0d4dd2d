"""The plan's clock, for scenarios: when plan time 0 is on the run's shared clock, and the plan.

Workers pace one shared schedule (the master's t0), so a scenario that releases users at a stage's
start (a flash sale's T0) reads it here rather than from its own process's start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from loadkit.plan import Plan


@dataclass(frozen=True, slots=True)
class PlanClock:
    plan: Plan
    t0: float  # epoch seconds of plan time 0, the same in every worker

    def elapsed(self, now: float | None = None) -> float:
        """Plan time (s) at epoch `now` (default: now)."""
        return (time.time() if now is None else now) - self.t0

    def epoch(self, plan_s: float) -> float:
        """The epoch time of plan time `plan_s`."""
        return self.t0 + plan_s

    def stage_start(self, prefix: str) -> float | None:
        """Epoch start of the first stage whose name starts with `prefix`; None if there is none."""
        for index, stage in enumerate(self.plan.stages):
            if stage.name.startswith(prefix):
                return self.t0 + self.plan.stage_start(index)
        return None


_current: PlanClock | None = None


def plan_clock() -> PlanClock | None:
    """The running test's plan clock in this process; None without a plan or before it starts."""
    return _current


def set_plan_clock(clock: PlanClock | None) -> None:
    """Called by the plugin when a test starts (and by tests)."""
    global _current
    _current = clock
