"""summary.md: the run in a form that pastes into a pull request, a ticket or a CI job summary.

Plain GitHub-flavoured Markdown with text marks (PASS / FAIL / DOUBTFUL), no emoji and no HTML, so
it reads the same in a terminal. Every figure may be missing (aborted run, old summary): a dash.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from loadkit.measure.attribution import CPU_LIMIT, LAG_MAX_LIMIT_MS, LAG_P99_LIMIT_MS

DASH = "—"
PERCENTILES = ("p50", "p90", "p95", "p99", "max")
VERDICT_TEXT = {
    "pass": "PASS: every budget held on the gate window",
    "fail": "FAIL: at least one budget did not hold",
    "inconclusive": "INCONCLUSIVE: this run cannot vouch for the target (the load generator was the limit, "
    "or the run was incomplete)",
}


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def num(value: Any) -> str:
    """1250, 142.3, 4.25; a dash when absent."""
    if not _is_num(value):
        return DASH if value is None else str(value)
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def pct(value: Any) -> str:
    if not _is_num(value):
        return DASH
    return f"{value * 100:.2f}%" if value < 0.1 else f"{value * 100:.1f}%"


def measure(value: Any, unit: str | None) -> str:
    """A check's observed value or limit with its unit; fractions as percentages."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return DASH
    if not _is_num(value):
        return str(value)
    if unit == "fraction":
        return pct(value)
    return f"{num(value)} {unit}" if unit else num(value)


def effect_of(check: Mapping[str, Any]) -> str:
    """What a check did to the verdict (pass, fail, inconclusive); summaries before schema 3 have
    no `effect`: then a failed health check was inconclusive and any other failed check a fail."""
    effect = check.get("effect")
    if effect in ("pass", "fail", "inconclusive"):
        return str(effect)
    if check.get("ok"):
        return "pass"
    return "inconclusive" if check.get("kind") == "health" else "fail"


def check_mark(check: Mapping[str, Any]) -> str:
    return {"pass": "PASS", "fail": "FAIL", "inconclusive": "DOUBTFUL"}[effect_of(check)]


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(summary: Mapping[str, Any], trend: Sequence[Mapping[str, Any]] | None = None) -> str:
    """summary.md for one summary; `trend` (the plan's last runs from the history, oldest first,
    this one included) adds a table of them."""
    plan = summary.get("plan") or {}
    verdict = str(summary.get("verdict") or "unknown")
    window = summary.get("window") or {}
    qps = summary.get("qps") or {}
    lat = summary.get("latency_ms") or {}
    service = summary.get("latency_ms_service") or {}
    requests = summary.get("requests") or {}
    out = [
        f"# loadkit: {plan.get('name') or 'unnamed plan'}",
        "",
        f"**Verdict: {VERDICT_TEXT.get(verdict, verdict.upper())}**"
        f" (exit code {summary.get('exit_code', DASH)})",
        "",
        f"Target {plan.get('host') or DASH}; run {summary.get('started_at') or DASH} to "
        f"{summary.get('finished_at') or DASH}; judged on stage(s) "
        f"{', '.join(str(s) for s in window.get('stages') or []) or DASH} ({num(window.get('seconds'))} s).",
        "",
    ]
    ending = summary.get("ending") or {}
    if ending.get("how") not in (None, "completed"):
        detail = f": {ending['detail']}" if ending.get("detail") else ""
        out += [f"**Ended early: {ending_text(ending)}{detail}.**", ""]
    reasons = summary.get("reasons") or []
    if reasons:
        out += ["## Why", "", *(f"- {r}" for r in reasons), ""]
    out += ["## Key figures", ""]
    out += _table(
        ("Figure", "Value"),
        [
            ("Arrivals/s sent / planned", f"{num(qps.get('arrivals_held'))} / {num(qps.get('target'))}"),
            ("Requests/s held (successes)", num(qps.get("held"))),
            *(
                (f"Latency {p} (corrected / service)", f"{num(lat.get(p))} / {num(service.get(p))} ms")
                for p in PERCENTILES
            ),
            ("Error rate", pct(summary.get("error_rate"))),
            (
                "Requests (successes, errors, expected outcomes)",
                f"{num(requests.get('count'))} ({num(requests.get('successes'))}, "
                f"{num(requests.get('errors'))}, {num(requests.get('expected_outcomes'))})",
            ),
        ],
    )
    checks = summary.get("checks") or []
    out += ["", "## Checks", ""]
    if checks:
        out += _table(
            ("Check", "Result", "Observed", "Limit"),
            (
                (
                    c.get("name"),
                    check_mark(c),
                    measure(c.get("observed"), c.get("unit")),
                    measure(c.get("limit"), c.get("unit")),
                )
                for c in checks
            ),
        )
    else:
        out.append("No checks: the plan sets no budgets.")
    out += _baseline(summary.get("baseline"))
    out += _endpoints(summary.get("endpoints") or {})
    out += _arrivals_and_generator(summary)
    out += _rehearsal(summary)
    out += _integrity(summary)
    errors = summary.get("errors") or []
    if errors:
        out += ["", "## Most frequent errors", ""]
        out += _table(
            ("Request", "Error", "Occurrences"),
            ((e.get("name"), e.get("error"), num(e.get("occurrences"))) for e in errors[:10]),
        )
    out += _trend(trend or [])
    return "\n".join(out) + "\n"


ENDING_WORDS = {
    "stopped": "stopped",
    "interrupted": "interrupted",
    "aborted": "aborted",
    "generator_died": "the load generator died",
}


def ending_text(ending: Mapping[str, Any]) -> str:
    """ "interrupted at 2026-11-24T08:00:22+00:00 (plan time 22 s)"."""
    words = ENDING_WORDS.get(str(ending.get("how")), str(ending.get("how")))
    at = f" at {ending['at']}" if ending.get("at") else ""
    plan_s = f" (plan time {num(ending['plan_s'])} s)" if _is_num(ending.get("plan_s")) else ""
    return f"{words}{at}{plan_s}"


def _baseline(section: Any) -> list[str]:
    if not isinstance(section, Mapping):
        return []
    run = section.get("run") or {}
    where = run.get("run_dir") or (f"history #{run['history_id']}" if run.get("history_id") else DASH)
    out = [
        "",
        "## Against the baseline run",
        "",
        f"Baseline: {where} (plan {run.get('plan') or DASH}, started {run.get('started_at') or DASH}, "
        f"{run.get('verdict') or DASH}); a figure may move by {pct(section.get('max_regression'))}, "
        "its absolute floor or the runs' own noise, whichever is largest.",
    ]
    differences = section.get("plan_differences") or []
    if differences:
        out += ["", f"Warning: the plans differ ({'; '.join(str(d) for d in differences)})."]
    rows = (
        (
            r.get("figure"),
            _figure(r.get("baseline"), r.get("unit")),
            _figure(r.get("current"), r.get("unit")),
            DASH if r.get("delta_pct") is None else f"{r['delta_pct']:+.1f}%",
            _figure(r.get("allowed"), r.get("unit")),
            str(r.get("change") or DASH),
        )
        for r in section.get("figures") or []
    )
    return [*out, "", *_table(("Figure", "Baseline", "This run", "Change", "Allowed", "Result"), rows)]


def _figure(value: Any, unit: Any) -> str:
    return pct(value) if unit == "fraction" else measure(value, unit if isinstance(unit, str) else None)


def _trend(trend: Sequence[Mapping[str, Any]]) -> list[str]:
    if not trend:
        return []
    rows = (
        (
            f"#{t.get('id')}",
            t.get("started_at") or DASH,
            str(t.get("verdict") or DASH),
            str(t.get("ending") or DASH),
            num(t.get("qps_held")),
            num(t.get("p99_ms")),
        )
        for t in trend
    )
    header = ("Run", "Started", "Verdict", "Ended", "Requests/s held", "p99 ms")
    return ["", f"## Trend: the plan's last {len(trend)} runs", "", *_table(header, rows)]


def _endpoints(endpoints: Mapping[str, Any]) -> list[str]:
    if not endpoints:
        return []
    rows = []
    for name, ep in endpoints.items():
        lat = ep.get("latency_ms") or {}
        rows.append(
            (
                name,
                num(ep.get("requests")),
                num(ep.get("errors")),
                pct(ep.get("error_rate")),
                num(ep.get("qps_held")),
                *(num(lat.get(p)) for p in ("p50", "p95", "p99", "max")),
            )
        )
    header = (
        "Endpoint",
        "Requests",
        "Errors",
        "Error rate",
        "QPS held",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
    )
    return ["", "## Endpoints (gate window, corrected latency)", "", *_table(header, rows)]


def _arrivals_and_generator(summary: Mapping[str, Any]) -> list[str]:
    arrivals = summary.get("arrivals") or {}
    gen = summary.get("generator") or {}
    out = ["", "## Load generator", ""]
    scheduled = arrivals.get("scheduled") or 0
    if scheduled:
        on_time = max(0, (arrivals.get("sent") or 0) - (arrivals.get("late") or 0)) / scheduled
        out.append(
            f"- Arrivals: {num(scheduled)} scheduled, {num(arrivals.get('sent'))} sent, "
            f"{num(arrivals.get('late'))} late, {num(arrivals.get('dropped'))} dropped"
            f" ({pct(on_time)} on time)"
        )
        late = [c for c in (gen.get("late"), gen.get("unsent")) if isinstance(c, Mapping)]
        if late:
            by = {key: sum(int(c.get(key) or 0) for c in late) for key in ("generator", "users", "target")}
            out.append(
                f"- Late, dropped or never sent, by cause: the generator (event loop or CPU) "
                f"{num(by['generator'])}, too few free users {num(by['users'])}, the target "
                f"(every user waiting on it) {num(by['target'])}"
            )
    else:
        out.append("- Arrivals: not paced (no arrival was scheduled)")
    if gen:
        out.append(
            f"- CPU: max {num(gen.get('cpu_max'))}%, average {num(gen.get('cpu_avg'))}%; "
            f"workers {num(gen.get('workers'))}, lost {num(gen.get('workers_lost'))}"
        )
        if gen.get("unhealthy_s") is not None:
            out.append(
                f"- Unhealthy (event-loop lag p99 above {num(LAG_P99_LIMIT_MS)} ms or max above "
                f"{num(LAG_MAX_LIMIT_MS)} ms, or CPU ran + waited above {num(CPU_LIMIT)}%): "
                f"{num(gen.get('unhealthy_s'))} s of the gate window (the longest of any process)"
            )
    processes = [p for p in gen.get("processes") or [] if isinstance(p, Mapping)]
    if processes:
        out += [
            "",
            *_table(
                (
                    "Process",
                    "Loop lag p99 ms",
                    "Loop lag max ms",
                    "CPU max / avg",
                    "Waited for a core (max)",
                    "Unhealthy s",
                    "Fewest free users",
                ),
                (
                    (
                        p.get("name"),
                        num(p.get("lag_p99_ms")),
                        num(p.get("lag_max_ms")),
                        f"{num(p.get('cpu_max'))}% / {num(p.get('cpu_avg'))}%",
                        f"{num(p.get('cpu_wait_max'))}%" if _is_num(p.get("cpu_wait_max")) else DASH,
                        num(p.get("unhealthy_s")),
                        num(p.get("free_min")) if p.get("paces") else "(does not pace)",
                    )
                    for p in processes
                ),
            ),
        ]
    return out


def _rehearsal(summary: Mapping[str, Any]) -> list[str]:
    """The service under test and the drills."""
    out: list[str] = []
    service = summary.get("service")
    if isinstance(service, Mapping):
        state = "ran to the end" if service.get("ok") else str(service.get("problem") or "failed")
        mark = "PASS" if service.get("ok") else "FAIL"
        command = " ".join(str(w) for w in service.get("command") or [])
        out += [
            "",
            "## The service under test",
            "",
            f"- {service.get('host') or DASH}: {mark}, {state.splitlines()[0]}",
            f"- started as `{command}` (pid {service.get('pid')}), ready in {num(service.get('ready_s'))} s;"
            f" log: {service.get('log') or DASH}",
        ]
    drills = [d for d in summary.get("drills") or [] if isinstance(d, Mapping)]
    if drills:
        out += ["", "## Drills (judged apart from the gate's budgets)", ""]
        out += _table(
            ("Drill", "Window", "Error rate", "p99 ms", "Longest wait ms", "Recovery", "Budget", "Result"),
            (
                (
                    d.get("name"),
                    f"{num(d.get('at'))}–{num((d.get('at') or 0) + (d.get('for') or 0))} s",
                    pct(d.get("error_rate")),
                    num(d.get("p99_ms")),
                    num(d.get("max_ms_service")),
                    "not within the run" if d.get("recovery_s") is None else f"{num(d.get('recovery_s'))} s",
                    f"{num(d.get('recovery_budget_s'))} s",
                    "PASS" if d.get("ok") else "FAIL",
                )
                for d in drills
            ),
        )
    return out


def _integrity(summary: Mapping[str, Any]) -> list[str]:
    out = []
    abort = summary.get("abort")
    if abort:
        out.append(f"- Aborted: {abort.get('reason') if isinstance(abort, Mapping) else abort}")
    audit = summary.get("audit")
    if audit is not None:
        violations = audit.get("violations") or []
        out.append(f"- Mock platform audit: {'ok' if audit.get('ok') and not violations else 'FAILED'}")
        out += [f"  - {v}" for v in violations]
    recon = summary.get("reconciliation")
    if recon is not None:
        problems = recon.get("problems") or []
        mode = recon.get("mode")
        by_id = f" by id, {mode}" if mode in ("two-way", "three-way") else ""
        state = "ok" if recon.get("ok") and not problems else "FAILED"
        out.append(f"- Reconciliation with the ledger{by_id}: {state}")
        if by_id:
            counts = ", ".join(
                f"{kind.replace('_', ' ')} {num((recon.get(kind) or {}).get('count'))}"
                for kind in ("phantom", "orphan", "paid_twice", "over_limit", "unconfirmed")
            )
            out.append(
                f"  - {num(recon.get('told'))} told, {num(recon.get('records'))} service records, "
                f"{num(recon.get('effects'))} ledger effects; {counts}"
            )
        out += [f"  - {p}" for p in problems]
    return ["", "## Integrity", "", *out] if out else []
