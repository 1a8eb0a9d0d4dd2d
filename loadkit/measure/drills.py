"""Drills judged on their own: what the users saw during each drill, and how long the target took
to recover after it.

A drill's window is [at, at + for) in plan time. Its error rate and p99 come from every request
that ended in it (`Recorder.window`). Its recovery time runs from the drill's end until the
per-second error rate and the 5-s p99 are back within the plan's budgets (`error_rate_max`, else
no errors at all; `latency_ms.p99` when set) for `RECOVERED_FOR_S` seconds in a row; a second
without any request is no evidence either way (skipped). It is judged against the drill's
`recovery_s` (else `budgets.recovery_s`, else 30 s). The window and its recovery allowance are
left out of the gate's budgets (the recorder keeps them apart), so budgets outside the drills are
judged as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypedDict

from loadkit.measure.figures import Timeseries
from loadkit.measure.recorder import WindowFigures
from loadkit.plan import Drill, Plan

RECOVERED_FOR_S = 5


DrillDoc = TypedDict(
    "DrillDoc",
    {
        "name": str,
        "at": float,  # plan seconds
        "for": float,
        "faults": dict,
        "requests": int,
        "errors": int,
        "error_rate": float,
        "p99_ms": float | None,  # corrected for coordinated omission
        "p99_ms_service": float | None,
        "max_ms_service": float | None,  # the longest any user waited for an answer
        "recovery_s": float | None,  # from the drill's end to recovered; None: not within the run
        "recovery_budget_s": float,
        "recovered": bool,
        "ok": bool,
        "reason": str | None,
    },
)


def judge_drills(
    plan: Plan,
    window: Callable[[float, float], WindowFigures],
    timeseries: Timeseries,
    ran_s: float,
) -> list[DrillDoc]:
    """One document per drill of `plan`; `ran_s` is how far (plan seconds) the run got."""
    return [
        _judge(plan, drill, window(drill.at_s, drill.at_s + drill.for_s), timeseries, ran_s)
        for drill in plan.drills
    ]


def _judge(plan: Plan, drill: Drill, figures: WindowFigures, ts: Timeseries, ran_s: float) -> DrillDoc:
    end = drill.at_s + drill.for_s
    budget = plan.recovery_s(drill)
    recovery = recovery_time(plan, end, ts, ran_s)
    reason = None
    if ran_s < end:
        reason = f"Drill {drill.name}: the run ended {ran_s - drill.at_s:.0f} s into it, before it was over"
    elif recovery is None:
        reason = (
            f"Drill {drill.name}: the target did not recover within the run "
            f"({_criteria(plan)} for {RECOVERED_FOR_S} s in a row after the drill ended)"
        )
    elif recovery > budget:
        reason = (
            f"Drill {drill.name}: recovered {recovery:g} s after it ended, above the {budget:g}-s "
            f"recovery budget ({_criteria(plan)} for {RECOVERED_FOR_S} s in a row)"
        )
    return {
        "name": drill.name,
        "at": drill.at_s,
        "for": drill.for_s,
        "faults": dict(drill.faults),
        "requests": figures["requests"],
        "errors": figures["errors"],
        "error_rate": figures["error_rate"],
        "p99_ms": figures["p99_ms"],
        "p99_ms_service": figures["p99_ms_service"],
        "max_ms_service": figures["max_ms_service"],
        "recovery_s": recovery,
        "recovery_budget_s": budget,
        "recovered": recovery is not None,
        "ok": reason is None,
        "reason": reason,
    }


def recovery_time(plan: Plan, end_s: float, ts: Timeseries, ran_s: float) -> float | None:
    """Seconds from `end_s` to the first of RECOVERED_FOR_S good seconds in a row, or None."""
    max_rate = plan.budgets.error_rate_max or 0.0
    max_p99 = plan.budgets.latency_ms.p99
    ok_s: Sequence[int] = ts["qps"]
    err_s: Sequence[int] = ts["errors"]
    p99: Sequence[float | None] = ts["p99"]
    first = int(end_s) if end_s == int(end_s) else int(end_s) + 1
    last = min(len(ok_s), int(ran_s))
    run_start, run = None, 0
    for second in range(first, last):
        total = ok_s[second] + err_s[second]
        if total == 0:
            continue  # no request, no evidence
        good = err_s[second] / total <= max_rate and (
            max_p99 is None or (p99[second] is not None and p99[second] <= max_p99)
        )
        if not good:
            run_start, run = None, 0
            continue
        if run_start is None:
            run_start = second
        run += 1
        if run >= RECOVERED_FOR_S:
            return round(max(0.0, run_start - end_s), 3)
    return None


def _criteria(plan: Plan) -> str:
    rate = plan.budgets.error_rate_max
    parts = [f"error rate ≤ {rate * 100:g}%" if rate else "no errors"]
    if plan.budgets.latency_ms.p99 is not None:
        parts.append(f"p99 ≤ {plan.budgets.latency_ms.p99:g} ms")
    return " and ".join(parts)
