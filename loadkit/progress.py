"""The one-line progress report of headless runs, and the closing lines with the verdict."""

from __future__ import annotations

from typing import Any


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.0f} ms"


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
    return (
        f"loadkit | {name} {elapsed:.0f}s/{elapsed + remaining:.0f}s"
        f" | {live.get('qps_now', 0.0):.1f} req/s now, plan {stage.get('qps_planned', 0)} arrivals/s"
        f" (held {qps.get('held') or 0:.1f} req/s)"
        f" | p99 {_ms(lat.get('p99'))}"
        f" | errors {(live.get('error_rate') or 0.0):.2%}"
        f" | late {late_share:.1%}"
        f" | so far: {live.get('verdict', '…')}"
    )


def closing_lines(summary: dict[str, Any], run_dir: str | None) -> list[str]:
    verdict = summary.get("verdict", "?").upper()
    qps = summary.get("qps") or {}
    lat = summary.get("latency_ms") or {}
    lines = [
        f"loadkit verdict: {verdict} (exit {summary.get('exit_code')})",
        f"  plan {summary.get('plan', {}).get('name')}: held {qps.get('held') or 0:.1f} QPS"
        f" (target {qps.get('target') or 0:g}) over {(summary.get('window') or {}).get('seconds', 0):.0f} s;"
        f" p50 {_ms(lat.get('p50'))}, p95 {_ms(lat.get('p95'))}, p99 {_ms(lat.get('p99'))};"
        f" errors {(summary.get('error_rate') or 0.0):.2%}",
    ]
    for check in summary.get("checks", []):
        mark = "ok  " if check.get("ok") else "FAIL"
        lines.append(f"  [{mark}] {check['name']}: {check.get('observed')} (limit {check.get('limit')})")
    lines.extend(f"  - {reason}" for reason in summary.get("reasons", []))
    if run_dir:
        lines.append(f"  report: {run_dir}")
    return lines
