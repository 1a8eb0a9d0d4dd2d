"""The one-line progress report of headless runs, and the closing lines with the verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from loadkit.plan.durations import format_duration
from loadkit.reports.markdown import effect_of


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _rate(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def gate_countdown(live: Mapping[str, Any]) -> str | None:
    """Time until the gate window begins ("1m5s") while live() says it has not, else None.

    Until then the figures are over the run so far and there is no verdict: say so, not "fail".
    A run aborted before its gate has its verdict (fail) instead."""
    gate = live.get("gate")
    if not isinstance(gate, Mapping) or gate.get("started") is not False:
        return None
    abort = live.get("abort")
    if isinstance(abort, Mapping) and abort.get("reason"):  # stopped for good: the verdict stands
        return None
    seconds = gate.get("starts_in_s")
    known = isinstance(seconds, int | float) and not isinstance(seconds, bool) and math.isfinite(seconds)
    return format_duration(math.ceil(seconds) if known and seconds > 0 else 0)


def progress_line(live: dict[str, Any]) -> str:
    stage = live.get("stage") or {}
    qps = live.get("qps") or {}
    lat = live.get("latency_ms") or {}
    arrivals = live.get("arrivals") or {}
    scheduled = arrivals.get("scheduled") or 0
    late_share = (arrivals.get("late", 0) + arrivals.get("dropped", 0)) / scheduled if scheduled else 0.0
    name = stage.get("name", "-")
    if stage.get("index") is not None:
        name = f"{name} {stage['index'] + 1}/{stage.get('count', '?')}" + (
            " [gate]" if stage.get("gate") else ""
        )
    elapsed = stage.get("elapsed_s", 0.0)
    remaining = stage.get("remaining_s", 0.0)
    head = (
        f"loadkit | {name} {elapsed:.0f}s/{elapsed + remaining:.0f}s"
        f" | {live.get('qps_now', 0.0):.1f} req/s now, plan {stage.get('qps_planned', 0)} arrivals/s"
    )
    held = f"held {qps.get('held') or 0:.1f} req/s"
    p99 = f"p99 {_ms(lat.get('p99'))}"
    errors = f"errors {(live.get('error_rate') or 0.0):.2%}"
    late = f"late {late_share:.1%}{_late_causes(live.get('generator') or {}, scheduled)}"
    gen = _generator_health(live.get("generator") or {})
    countdown = gate_countdown(live)
    if countdown is not None:
        so_far = f"run so far: {held}, {p99}, {errors}"
        return f"{head} | {so_far} | {late} | {gen} | so far: gate starts in {countdown}"
    return f"{head} ({held}) | {p99} | {errors} | {late} | {gen} | so far: {live.get('verdict', '…')}"


def _late_causes(generator: Mapping[str, Any], scheduled: int) -> str:
    """Who made the late and dropped arrivals late, as parts of the share before it: "(generator
    52.1%, target 0.9%)". Arrivals not taken yet have no fate while the run goes on."""
    late = generator.get("late")
    late = late if isinstance(late, Mapping) else {}
    ours = int(late.get("generator") or 0) + int(late.get("users") or 0)
    theirs = int(late.get("target") or 0)
    if not scheduled or not ours + theirs:
        return ""
    return f" (generator {ours / scheduled:.1%}, target {theirs / scheduled:.1%})"


def _generator_health(generator: Mapping[str, Any]) -> str:
    """The generator's own health beside the figures it sent: "gen lag p99 3 ms, unhealthy 0s"."""
    lag = generator.get("lag_p99_ms")
    unhealthy = generator.get("unhealthy_s")
    text = f"gen lag p99 {_ms(lag)}"
    return text if unhealthy is None else f"{text}, unhealthy {unhealthy:.0f}s"


def closing_lines(summary: dict[str, Any], run_dir: str | None) -> list[str]:
    """The verdict, the figures it was judged on, every check and reason, and the report's path.

    A run that ended before its gate window began has no gate figures: the line then gives the
    whole run's requests and errors (what the abort and the checks were about) instead of zeros."""
    verdict = summary.get("verdict", "?").upper()
    qps = summary.get("qps") or {}
    lat = summary.get("latency_ms") or {}
    window = summary.get("window") or {}
    name = (summary.get("plan") or {}).get("name")
    lines = [f"loadkit verdict: {verdict} (exit {summary.get('exit_code')})"]
    ending = summary.get("ending") or {}
    if ending.get("how") not in (None, "completed"):
        plan_s = ending.get("plan_s")
        into = f" ({plan_s:.1f} s into the plan)" if isinstance(plan_s, int | float) else ""
        detail = f": {ending['detail']}" if ending.get("detail") else ""
        lines.append(f"  ended early: {ending.get('how')} at {ending.get('at')}{into}{detail}")
    if window.get("seconds") == 0:
        whole = summary.get("whole_run") or {}
        requests, errors = whole.get("requests") or 0, whole.get("errors") or 0
        share = f"{errors / requests:.2%}" if requests else "-"
        lines.append(
            f"  plan {name}: the gate window never began (planned {qps.get('target') or 0:g} arrivals/s"
            f" there); whole run: {requests} requests, errors {share}"
        )
    else:
        lines.append(
            f"  plan {name}: held {_rate(qps.get('held'))} req/s;"
            f" {_rate(qps.get('arrivals_held'))} arrivals/s sent (planned {qps.get('target') or 0:g})"
            f" over {window.get('seconds') or 0:.0f} s;"
            f" p50 {_ms(lat.get('p50'))}, p95 {_ms(lat.get('p95'))}, p99 {_ms(lat.get('p99'))};"
            f" errors {_share(summary.get('error_rate'))}"
        )
    for check in summary.get("checks", []):
        mark = {"pass": "ok  ", "fail": "FAIL", "inconclusive": "????"}[effect_of(check)]
        lines.append(f"  [{mark}] {check['name']}: {check.get('observed')} (limit {check.get('limit')})")
    lines.extend(f"  - {reason}" for reason in summary.get("reasons", []))
    if run_dir:
        lines.append(f"  report: {run_dir}")
    return lines


def _share(value: Any) -> str:
    return "-" if value is None else f"{value:.2%}"
