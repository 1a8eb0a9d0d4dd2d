"""Why arrivals were late: the generator's health, second by second, decides who caused it.

Every Locust process measures its own health each second of plan time (`engine/probe.py`): how
late its event loop wakes a sleeping greenlet (loop lag, p99 and max of ~100 wake-ups) and its
CPU. A second is *unhealthy* when either is above its limit: the generator itself was slow then.

The pacer counts each late (or dropped, or never sent) arrival under the second its slot was due
in, with what it saw (`engine/pacing.py`): a user waited for the slot and woke late (`loop`), or
no user was free because they were waiting on the target (`target`) or busy elsewhere, in think
time or their own work (`users`). Then, per process and second:

- in an unhealthy second every late arrival is the **generator**'s;
- in a healthy second a `loop` arrival is the generator's, a `users` one the **user pool**'s (the
  generator as configured), a `target` one the **target**'s;
- a second with no health figures at all counts as unhealthy (nothing shows the generator kept up).

Limits, chosen for a gevent loop that paces arrivals to 10 ms (an arrival counts late after
10 ms): the probe sleeps 10 ms, so ~100 wake-ups a second. On this project's 2-core VM an idle
probe's per-second p99 stays under 6 ms (median 1.4 ms) under load from other jobs, with single
stalls up to ~100 ms from the shared machine's scheduler (BENCHMARKS.md). A p99 above 20 ms means
at least two wake-ups that second were twice as late as an arrival may be: the loop cannot hold
the schedule. One stall above 250 ms froze a quarter of the second. CPU above 85% of one core is
the limit the CPU check always used: one Locust process is one core, and near it the loop saturates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from loadkit.measure.figures import LateByCause, LateCounts

LAG_P99_LIMIT_MS = 20.0
LAG_MAX_LIMIT_MS = 250.0
CPU_LIMIT = 85.0

Cause = Literal["loop", "target", "users"]
CAUSES: tuple[Cause, ...] = ("loop", "target", "users")


def is_unhealthy(
    lag_p99_ms: float | None, lag_max_ms: float | None, cpu: float | None, cpu_wait: float | None = None
) -> bool:
    """Was the generator the limit in this second? CPU counts the time the process ran plus the
    time it was ready to run and waited for a core (a figure not measured does not count)."""
    return (
        (lag_p99_ms is not None and lag_p99_ms > LAG_P99_LIMIT_MS)
        or (lag_max_ms is not None and lag_max_ms > LAG_MAX_LIMIT_MS)
        or (cpu is not None and cpu + (cpu_wait or 0.0) > CPU_LIMIT)
    )


def no_late() -> LateByCause:
    return {"generator": 0, "users": 0, "target": 0}


def attribute(
    late: Mapping[int, LateCounts], healthy: Callable[[int], bool | None], into: LateByCause | None = None
) -> LateByCause:
    """Late arrivals of one process by who caused them; ``healthy(second)`` is True for a healthy
    second, False for an unhealthy one and None when nothing was measured (counted as unhealthy)."""
    out = into if into is not None else no_late()
    for second, counts in late.items():
        if healthy(second) is True:
            out["generator"] += counts["loop"]
            out["users"] += counts["users"]
            out["target"] += counts["target"]
        else:
            out["generator"] += counts["loop"] + counts["users"] + counts["target"]
    return out


def add_counts(into: dict[int, LateCounts], more: Iterable[tuple[int, LateCounts]]) -> None:
    """Add per-second cause counts (worker deltas) into ``into``."""
    for second, counts in more:
        mine = into.get(second)
        if mine is None:
            into[second] = {"loop": counts["loop"], "target": counts["target"], "users": counts["users"]}
        else:
            for cause in CAUSES:
                mine[cause] += counts[cause]
