"""Checks and the verdict: is the target ready for the event, not ready, or can we not tell?

Three kinds of check. *budget* checks (QPS held, latency percentiles, error rate, per endpoint)
and *integrity* checks (abort, the mock's audit, reconciliation) judge the target: one failing
makes the run `fail`. *health* checks judge the load generator (arrivals sent on time, CPU, lost
workers, workers of another run, traffic in the gate window, a run that ended before its plan):
one failing makes a run whose budgets hold `inconclusive`, because then the generator, not the
target, may be what limited the figures. With a baseline run, each key figure is also compared
with it (`baseline ...` budget checks, `compare.py`). fail wins over inconclusive, inconclusive
over pass; a run whose load generator died is inconclusive whatever its partial figures show. A
figure that is missing never counts as a pass. Each reason is said once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from loadkit.measure.compare import Tolerance, compare, judged_gate
from loadkit.plan import Budgets, EndpointBudget, LatencyBudget, Plan

EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 2}
EXIT_USAGE = 3

ON_TIME_MIN = 0.99  # share of scheduled arrivals that must be sent on time
CPU_HIGH_PERCENT = 85.0  # one Locust process is one core: above this it may be the bottleneck
CPU_HIGH_SHARE = 0.10  # "for long": more than this share of the gate window ...
CPU_HIGH_MIN_S = 5.0  # ... and at least this many seconds (a short spike is not a limit)

BUDGET, HEALTH, INTEGRITY = "budget", "health", "integrity"


@dataclass(frozen=True)
class Check:
    """One judged figure. `unit` "fraction" means a rate in 0..1 (renderers show a percentage)."""

    name: str
    ok: bool
    observed: Any
    limit: Any
    unit: str = ""
    kind: str = BUDGET
    reason: str | None = None  # the human sentence when not ok

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(plan: Plan, results: Mapping[str, Any]) -> tuple[str, list[Check], list[str]]:
    """(verdict, checks, reasons) for the figures of one run (keys as in summary.json)."""
    checks: list[Check] = []
    checks += _integrity_checks(plan, results)
    traffic = _had_traffic(results)
    if traffic:
        checks += _budget_checks(plan.budgets, results)
        checks += _baseline_checks(plan, results)
        checks += _ending_checks(plan, results)
    else:
        checks.append(Check("gate_traffic", False, 0, 1, "requests", HEALTH, _no_traffic_reason(results)))
    checks += _drill_checks(results)
    checks += _health_checks(plan, results)
    failed = [c for c in checks if not c.ok]
    ending = results.get("ending")
    if isinstance(ending, Mapping) and ending.get("how") == "generator_died":
        # what it had reported is partial (and a master's is up to a report interval behind):
        # nothing it shows can pass or fail the target
        verdict = "inconclusive"
    elif any(c.kind != HEALTH for c in failed):
        verdict = "fail"
    elif failed:
        verdict = "inconclusive"
    else:
        verdict = "pass"
    # several checks can share a reason (every budget of an endpoint that sent nothing): say it once
    return verdict, checks, list(dict.fromkeys(c.reason for c in failed if c.reason))


def _had_traffic(results: Mapping[str, Any]) -> bool:
    requests = results.get("requests")
    if isinstance(requests, Mapping) and requests.get("count") is not None:
        return requests["count"] > 0
    endpoints = results.get("endpoints") or {}
    return any((ep or {}).get("requests", 0) > 0 for ep in endpoints.values())


# --- budgets ---------------------------------------------------------------------------------------


def _budget_checks(budgets: Budgets, results: Mapping[str, Any]) -> list[Check]:
    qps = results.get("qps") or {}
    checks = _figure_checks("", budgets, qps.get("held"), results)
    endpoints = results.get("endpoints") or {}
    for name, budget in budgets.endpoints.items():
        figures = endpoints.get(name)
        if figures is None or not figures.get("requests"):
            checks += _missing_endpoint(name, budget)
        else:
            checks += _figure_checks(name, budget, figures.get("qps_held"), figures)
    return checks


def _figure_checks(
    endpoint: str, budget: Budgets | EndpointBudget, held: float | None, figures: Mapping[str, Any]
) -> list[Check]:
    prefix = f"{endpoint} " if endpoint else ""
    who = f"{endpoint}: " if endpoint else ""
    checks = []
    if budget.qps_min is not None:
        ok = held is not None and held >= budget.qps_min
        reason = None
        if not ok:
            shown = "no figure" if held is None else f"{_num(held)} QPS"
            reason = f"{who}Held {shown}, below the {_num(budget.qps_min)} QPS budget"
        checks.append(Check(f"{prefix}qps_min", ok, held, budget.qps_min, "req/s", BUDGET, reason))
    checks += _latency_checks(prefix, who, budget.latency_ms, figures.get("latency_ms") or {})
    if budget.error_rate_max is not None:
        rate = figures.get("error_rate")
        ok = rate is not None and rate <= budget.error_rate_max
        reason = None
        if not ok:
            shown = "unknown" if rate is None else _pct(rate)
            reason = f"{who}Error rate {shown}, above the {_pct(budget.error_rate_max)} budget"
        checks.append(
            Check(f"{prefix}error_rate_max", ok, rate, budget.error_rate_max, "fraction", BUDGET, reason)
        )
    return checks


def _latency_checks(prefix: str, who: str, budget: LatencyBudget, observed: Mapping[str, Any]) -> list[Check]:
    checks = []
    for key, limit in budget.items():
        value = observed.get(key)
        label = "max latency" if key == "max" else f"{key} latency"
        if value is None:
            reason = f"{who}No latency samples to judge the {label} budget of {_num(limit)} ms"
            checks.append(Check(f"{prefix}latency_{key}", False, None, limit, "ms", BUDGET, reason))
            continue
        ok = value <= limit
        reason = (
            None if ok else f"{who}{label.capitalize()} {_num(value)} ms, above the {_num(limit)} ms budget"
        )
        checks.append(Check(f"{prefix}latency_{key}", ok, value, limit, "ms", BUDGET, reason))
    return checks


def _missing_endpoint(name: str, budget: EndpointBudget) -> list[Check]:
    """A budgeted endpoint with no request in the gate window: its budgets are not demonstrated."""
    reason = f"{name}: no request in the gate window (is the request name in budgets.endpoints right?)"
    limits = [("qps_min", budget.qps_min, "req/s")]
    limits += [(f"latency_{k}", v, "ms") for k, v in budget.latency_ms.items()]
    limits.append(("error_rate_max", budget.error_rate_max, "fraction"))
    return [
        Check(f"{name} {key}", False, None, limit, unit, BUDGET, reason)
        for key, limit, unit in limits
        if limit is not None
    ]


# --- integrity --------------------------------------------------------------------------------------


def _integrity_checks(plan: Plan, results: Mapping[str, Any]) -> list[Check]:
    checks = []
    service = results.get("service")
    if isinstance(service, Mapping):
        ok = bool(service.get("ok"))
        reason = None if ok else str(service.get("problem") or "the service under test failed")
        reason = reason and reason[0].upper() + reason[1:]
        code = service.get("exit_code")
        observed = f"exited with {code}" if code is not None else "running" if ok else "not ready"
        checks.append(Check("service", ok, observed, None, "", INTEGRITY, reason))
    abort = results.get("abort")
    if abort or plan.safety.abort_on is not None:
        reason = None
        if abort:
            detail = abort.get("reason") if isinstance(abort, Mapping) else str(abort)
            reason = f"The run was stopped: {str(detail or 'aborted').removeprefix('aborted: ')}"
        observed = (abort.get("reason") if isinstance(abort, Mapping) else str(abort)) if abort else None
        checks.append(Check("abort", not abort, observed, None, "", INTEGRITY, reason))
    audit = results.get("audit")
    if audit is not None:
        violations = list(audit.get("violations") or [])
        ok = bool(audit.get("ok")) and not violations
        reason = None
        if not ok:
            listed = "; ".join(str(v) for v in violations[:5]) or "no detail given"
            reason = f"The mock platform's audit found {len(violations)} broken invariant(s): {listed}"
        checks.append(Check("audit", ok, len(violations), 0, "violations", INTEGRITY, reason))
    recon = results.get("reconciliation")
    if recon is not None:
        problems = list(recon.get("problems") or [])
        ok = bool(recon.get("ok")) and not problems
        reason = None
        if not ok:
            listed = "; ".join(str(p) for p in problems[:5]) or "no detail given"
            reason = f"What the users saw does not match the ledger: {listed}"
        checks.append(Check("reconciliation", ok, len(problems), 0, "problems", INTEGRITY, reason))
    return checks


def _drill_checks(results: Mapping[str, Any]) -> list[Check]:
    """A drill is judged by its recovery: back within the budgets within its recovery_s."""
    checks = []
    for drill in results.get("drills") or []:
        if not isinstance(drill, Mapping):
            continue
        checks.append(
            Check(
                f"drill {drill.get('name')} recovery",
                bool(drill.get("ok")),
                drill.get("recovery_s"),
                drill.get("recovery_budget_s"),
                "s",
                BUDGET,
                drill.get("reason") if not drill.get("ok") else None,
            )
        )
    return checks


# --- how the run ended -----------------------------------------------------------------------------

ENDED = {
    "stopped": "The run was stopped",
    "interrupted": "The run was interrupted",
    "aborted": "The run was aborted",
    "generator_died": "The load generator died",
}


def _cut_short(results: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The run's ending when it ended before its plan did (stopped, interrupted, aborted, the
    generator died), else None."""
    ending = results.get("ending")
    if not isinstance(ending, Mapping) or ending.get("how") in (None, "completed"):
        return None
    return ending


def _ended(ending: Mapping[str, Any]) -> str:
    """How and when a run ended early: "The run was interrupted at <time> (<detail>)"."""
    how = str(ending.get("how"))
    at = f" at {ending['at']}" if ending.get("at") else ""
    detail = f" ({ending['detail']})" if ending.get("detail") else ""
    return f"{ENDED.get(how, f'The run ended ({how})')}{at}{detail}"


def _no_traffic_reason(results: Mapping[str, Any]) -> str:
    ending = _cut_short(results)
    if ending is not None and ending.get("how") == "aborted":  # the abort check says why
        return "No budget could be judged: the run was aborted before any request in its gate window"
    if ending is not None:
        return f"{_ended(ending)}, before any request in its gate window: no budget could be judged"
    return (
        "No request was sent in the gate window, so no budget could be judged "
        "(do the users have no tasks, or does every journey stop before the budgeted requests?)"
    )


def _ending_checks(plan: Plan, results: Mapping[str, Any]) -> list[Check]:
    """A run that ended before its gate window did proves nothing about the rest of it: what ran
    is judged (a budget that failed there still fails), but it cannot pass. An abort is judged as
    an integrity failure instead; a run whose plan ran out is complete. When the generator died,
    only the figures it had reported before dying are known."""
    ending = _cut_short(results)
    if ending is None or ending.get("how") == "aborted":
        return []
    window = results.get("window") or {}
    ran = float(window.get("seconds") or 0.0)
    gate = plan.gate_seconds()
    died = ending.get("how") == "generator_died"
    if not died and ran >= gate - 0.5:
        return []  # stopped at the very end: the whole gate ran
    judged = "only the figures it had reported were judged" if died else "only that part was judged"
    reason = (
        f"{_ended(ending)}, after {_num(ran)} s of the {_num(gate)}-s gate window: "
        f"{judged}, so it cannot pass"
    )
    return [Check("completed", False, round(ran, 3), round(gate, 3), "s", HEALTH, reason)]


# --- the baseline run --------------------------------------------------------------------------------


def _baseline_checks(plan: Plan, results: Mapping[str, Any]) -> list[Check]:
    """`--baseline`: each key figure against the baseline run's; a change beyond the allowed
    regression (and beyond both runs' noise) fails, naming the figure and both values."""
    baseline = results.get("baseline")
    if not isinstance(baseline, Mapping):
        return []
    limit = float(baseline["max_regression"])
    gate = judged_gate(plan, results)
    rows = compare(results, baseline["summary"], Tolerance(relative=limit), current_gate=gate)
    who = baseline_label(baseline["run"])
    checks = []
    for row in rows:
        if row["change"] == "unknown":
            continue
        base, cur, allowed = row["baseline"], row["current"], row["allowed"]
        assert base is not None and cur is not None and allowed is not None
        threshold = base - allowed if row["kind"] == "qps" else base + allowed
        ok = row["change"] != "worse"
        reason = None
        if not ok:
            pct = f", {row['delta_pct']:+.1f}%" if row["delta_pct"] is not None else ""
            values = f"{_value(cur, row['unit'])} vs {_value(base, row['unit'])}{pct}"
            reason = (
                f"Regression against the baseline run {who}: {row['figure']} {values}, "
                f"beyond the {_pct(limit)} allowed (and the runs' own noise)"
            )
        checks.append(
            Check(f"baseline {row['figure']}", ok, cur, round(threshold, 6), row["unit"], BUDGET, reason)
        )
    return checks


def baseline_label(run: Mapping[str, Any]) -> str:
    """How a baseline run is named in sentences: its directory or history id, and when it ran."""
    where = run.get("run_dir") or (f"#{run['history_id']}" if run.get("history_id") is not None else "")
    when = f" of {run['started_at']}" if run.get("started_at") else ""
    return f"{where or run.get('source') or 'given'}{when}"


# --- generator health -------------------------------------------------------------------------------


def _health_checks(plan: Plan, results: Mapping[str, Any]) -> list[Check]:
    checks = []
    arrivals = results.get("arrivals") or {}
    scheduled = arrivals.get("scheduled") or 0
    if scheduled > 0:  # closed-model locustfiles are not paced: nothing scheduled, nothing to judge
        sent = arrivals.get("sent") or 0
        late = arrivals.get("late") or 0
        dropped = arrivals.get("dropped") or 0
        on_time = arrivals.get("on_time", max(0, sent - late))
        unsent = arrivals.get("unsent", max(0, scheduled - sent - dropped))
        ending = results.get("ending")
        cut_short = isinstance(ending, Mapping) and ending.get("how") not in (None, "completed")
        # Slots due but not taken when a run is cut short have no fate yet: not judged. At the end
        # of a completed plan they were due and nobody took them: missed.
        judged = sent + dropped + (0 if cut_short else unsent)
        share = on_time / judged if judged else 1.0
        ok = share >= ON_TIME_MIN
        reason = None
        if not ok:
            missed = f"{late} late, {dropped} dropped" + ("" if cut_short else f", {unsent} never sent")
            reason = (
                f"Only {_pct(share)} of {judged} arrivals were sent on time (needs "
                f"{_pct(ON_TIME_MIN)}; {missed}): the generator or its user pool may be the limit"
            )
        checks.append(Check("arrivals_on_time", ok, round(share, 6), ON_TIME_MIN, "fraction", HEALTH, reason))
    generator = results.get("generator") or {}
    if generator:
        checks.append(_cpu_check(plan, generator))
        lost = generator.get("workers_lost") or 0
        reason = None
        if lost:
            reason = (
                f"{lost} load-generator worker(s) were lost during the run: part of the load was not sent"
            )
        checks.append(Check("workers_lost", lost == 0, lost, 0, "workers", HEALTH, reason))
        checks += _workers_checks(generator)
    return checks


def _workers_checks(generator: Mapping[str, Any]) -> list[Check]:
    """A master that expected N workers of its own run and saw another count, or a worker of
    another run (refused), cannot vouch for the load its workers sent."""
    expected = generator.get("workers_expected")
    strangers = list(generator.get("strangers") or [])
    if expected is None and not strangers:
        return []
    workers = generator.get("workers")
    problems = []
    if strangers:
        shown = ", ".join(str(s) for s in strangers[:3]) + (", ..." if len(strangers) > 3 else "")
        problems.append(
            f"{len(strangers)} worker(s) of another run tried to join this run's master and were refused "
            f"({shown}): another load test may share this machine or its master port"
        )
    if expected is not None and workers != expected:
        problems.append(f"{workers} worker(s) of this run took part, {expected} were expected")
    reason = "; ".join(problems) or None
    return [Check("workers", not problems, workers, expected, "workers", HEALTH, reason)]


def _cpu_check(plan: Plan, generator: Mapping[str, Any]) -> Check:
    limit = max(CPU_HIGH_MIN_S, CPU_HIGH_SHARE * plan.gate_seconds())
    cpu_max = generator.get("cpu_max") or 0.0
    high_s = generator.get("cpu_high_s")
    if high_s is None:  # no per-second samples: judge on the average alone
        ok = (generator.get("cpu_avg") or 0.0) <= CPU_HIGH_PERCENT
        high_s = 0.0 if ok else plan.gate_seconds()
    else:
        ok = high_s < limit
    reason = None
    if not ok:
        reason = (
            f"The load generator's CPU was above {CPU_HIGH_PERCENT:g}% for {_num(high_s)} s "
            f"(max {_num(cpu_max)}%): the generator, not the target, may be the limit"
        )
    return Check("generator_cpu", ok, high_s, round(limit, 3), "s", HEALTH, reason)


# --- formatting ---------------------------------------------------------------------------------------


def _num(value: float) -> str:
    """Figures as people read them: 1250, 142.3, 4.25 (no float noise)."""
    value = float(value)
    if abs(value) >= 1000:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _value(value: float, unit: str) -> str:
    return _pct(value) if unit == "fraction" else f"{_num(value)} {unit}"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.2f}".rstrip("0").rstrip(".") + "%"
