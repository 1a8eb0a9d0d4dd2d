"""Checks and the verdict: is the target ready for the event, not ready, or can we not tell?

Three kinds of check. *budget* checks (QPS held, latency percentiles, error rate, per endpoint)
and *integrity* checks (abort, the mock's audit, reconciliation) judge the target: one failing
makes the run `fail`. *health* checks judge the load generator (arrivals sent on time, CPU, lost
workers, traffic in the gate window): one failing makes a run whose budgets hold `inconclusive`,
because then the generator, not the target, may be what limited the figures. fail wins over
inconclusive, inconclusive over pass. A figure that is missing never counts as a pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

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
    else:
        checks.append(
            Check(
                "gate_traffic",
                False,
                0,
                1,
                "requests",
                HEALTH,
                "No request was sent in the gate window, so no budget could be judged "
                "(did the run stop early, or do the users have no tasks?)",
            )
        )
    checks += _drill_checks(results)
    checks += _ending_checks(plan, results)
    checks += _health_checks(plan, results)
    failed = [c for c in checks if not c.ok]
    if any(c.kind != HEALTH for c in failed):
        verdict = "fail"
    elif failed:
        verdict = "inconclusive"
    else:
        verdict = "pass"
    return verdict, checks, [c.reason for c in failed if c.reason]


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

ENDING_WORDS = {
    "stopped": "was stopped",
    "interrupted": "was interrupted",
    "generator_died": "lost its load generator",
}


def _ending_checks(plan: Plan, results: Mapping[str, Any]) -> list[Check]:
    """A run that ended before its gate window did proves nothing about the rest of it: what ran
    is judged (a budget that failed there still fails), but it cannot pass. An abort is judged as
    an integrity failure instead; a run whose plan ran out is complete."""
    ending = results.get("ending")
    if not isinstance(ending, Mapping) or ending.get("how") in (None, "completed", "aborted"):
        return []
    how = str(ending.get("how"))
    window = results.get("window") or {}
    ran = float(window.get("seconds") or 0.0)
    gate = plan.gate_seconds()
    if how != "generator_died" and ran >= gate - 0.5:
        return []  # stopped at the very end: the whole gate ran
    at = ending.get("at")
    when = f" at {at}" if at else ""
    detail = f": {ending['detail']}" if ending.get("detail") else ""
    reason = (
        f"The run {ENDING_WORDS.get(how, how)}{when}{detail}, after {_num(ran)} s of the "
        f"{_num(gate)}-s gate window: only that part was judged, so it cannot pass"
    )
    return [Check("completed", False, round(ran, 3), round(gate, 3), "s", HEALTH, reason)]


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
    return checks


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


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.2f}".rstrip("0").rstrip(".") + "%"
