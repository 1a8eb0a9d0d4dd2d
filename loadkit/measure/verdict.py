"""Checks and the verdict: is the target ready for the event, not ready, or can we not tell?

Three kinds of check. *budget* checks (QPS held, latency percentiles, error rate, per endpoint)
and *integrity* checks (abort, the mock's audit, reconciliation) judge the target. *health*
checks judge the load generator (its health second by second, arrivals late because of it, lost
workers, traffic in the gate window, a run cut short).

Each check has an *effect* on the verdict. A failed integrity or error-rate check fails the run.
A failed health check makes it `inconclusive`. A failed latency or QPS budget fails the run when
the generator was healthy (late arrivals were the target's: the corrected latency stands), and
makes it `inconclusive` when the generator was the limit: then the figures describe the generator
(docs/architecture.md, "Who caused it: cause → verdict"). fail wins over inconclusive,
inconclusive over pass. A figure that is missing never counts as a pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from loadkit.measure.attribution import CPU_LIMIT, LAG_MAX_LIMIT_MS, LAG_P99_LIMIT_MS
from loadkit.plan import Budgets, EndpointBudget, LatencyBudget, Plan

EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 2}
EXIT_USAGE = 3

LATE_BY_GENERATOR_MAX = 0.01  # share of arrivals the generator may make late (or drop)
UNHEALTHY_SHARE = 0.10  # the generator unhealthy "for long": more than this share of the gate ...
UNHEALTHY_MIN_S = 5.0  # ... and at least this many seconds (a short spike is not a limit)

BUDGET, HEALTH, INTEGRITY = "budget", "health", "integrity"
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
GENERATOR_FIX = (
    "To measure the target, give the load generator more room: more processes (--processes N), "
    "fewer users per process, or the generator on another machine"
)
USERS_FIX = "more users in the plan's stages (they were busy with their journeys, not waiting on the target)"


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
    # what it does to the verdict: pass, fail or inconclusive; by default pass when ok, else
    # inconclusive for a health check and fail for the others
    effect: str = ""

    def __post_init__(self) -> None:
        if not self.effect:
            effect = PASS if self.ok else INCONCLUSIVE if self.kind == HEALTH else FAIL
            object.__setattr__(self, "effect", effect)

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
    checks += _ending_checks(plan, results)
    health = _health_checks(plan, results)
    checks += health
    generator_limit = any(c.name in GENERATOR_CHECKS and not c.ok for c in health)
    if generator_limit:
        checks = [_doubted(c) if _is_load_budget(c) else c for c in checks]
    effects = {c.effect for c in checks}
    verdict = FAIL if FAIL in effects else INCONCLUSIVE if INCONCLUSIVE in effects else PASS
    reasons = [c.reason for c in checks if not c.ok and c.reason]
    if generator_limit:
        reasons.append(_generator_fix(results))
    elif any(_is_load_budget(c) for c in checks):
        reasons.append(_target_named(plan, results))
    return verdict, checks, reasons


def _is_load_budget(check: Check) -> bool:
    """A failed latency or QPS budget judged on figures (not one with no figure at all): what a
    generator that cannot keep up distorts."""
    return (
        check.kind == BUDGET and not check.ok and check.unit in ("ms", "req/s") and check.observed is not None
    )


def _doubted(check: Check) -> Check:
    reason = f"{check.reason}: inconclusive, the load generator was the limit" if check.reason else None
    return replace(check, effect=INCONCLUSIVE, reason=reason)


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


# --- generator health ---------------------------------------------------------------------------

GENERATOR_CHECKS = ("generator_health", "arrivals_late_by_generator")


def _health_checks(plan: Plan, results: Mapping[str, Any]) -> list[Check]:
    checks = []
    generator = results.get("generator") or {}
    if generator:
        checks.append(_unhealthy_check(plan, generator))
    late = _late_arrivals(results)
    if late is not None:  # closed-model locustfiles are not paced: nothing scheduled, nothing to judge
        judged, by_generator, by_users, _by_target = late
        share = (by_generator + by_users) / judged if judged else 0.0
        ok = share <= LATE_BY_GENERATOR_MAX
        reason = None
        if not ok:
            reason = (
                f"{by_generator + by_users} of {judged} arrivals ({_pct(share)}) were late or never sent "
                f"because of the load generator (its event loop or CPU: {by_generator}; too few free "
                f"users: {by_users}), not the target (at most {_pct(LATE_BY_GENERATOR_MAX)} may be)"
            )
        checks.append(
            Check(
                "arrivals_late_by_generator",
                ok,
                round(share, 6),
                LATE_BY_GENERATOR_MAX,
                "fraction",
                HEALTH,
                reason,
            )
        )
    if generator:
        lost = generator.get("workers_lost") or 0
        reason = None
        if lost:
            reason = (
                f"{lost} load-generator worker(s) were lost during the run: part of the load was not sent"
            )
        checks.append(Check("workers_lost", lost == 0, lost, 0, "workers", HEALTH, reason))
    return checks


def _late_arrivals(results: Mapping[str, Any]) -> tuple[int, int, int, int] | None:
    """(arrivals judged, late because of the generator's loop or CPU, of its user pool, of the
    target), or None when nothing was paced. Slots due but not taken when a run is cut short have
    no fate yet: not judged. At the end of a completed plan they were due and nobody took them."""
    arrivals = results.get("arrivals") or {}
    scheduled = arrivals.get("scheduled") or 0
    if scheduled <= 0:
        return None
    sent = arrivals.get("sent") or 0
    dropped = arrivals.get("dropped") or 0
    unsent = arrivals.get("unsent", max(0, scheduled - sent - dropped))
    ending = results.get("ending")
    cut_short = isinstance(ending, Mapping) and ending.get("how") not in (None, "completed")
    generator = results.get("generator") or {}
    causes = [generator.get("late") or {}] + ([] if cut_short else [generator.get("unsent") or {}])
    judged = sent + dropped + (0 if cut_short else unsent)
    return (
        judged,
        *(sum(int(c.get(key) or 0) for c in causes) for key in ("generator", "users", "target")),
    )  # type: ignore[return-value]


def _unhealthy_check(plan: Plan, generator: Mapping[str, Any]) -> Check:
    """The generator unhealthy for long: one pacing process's loop lag or CPU above its limit for
    at least max(5 s, 10% of the gate) of the gate window."""
    limit = max(UNHEALTHY_MIN_S, UNHEALTHY_SHARE * plan.gate_seconds())
    seconds = float(generator.get("unhealthy_s") or 0.0)
    ok = seconds < limit
    reason = None
    if not ok:
        worst = max(
            (p for p in generator.get("processes") or [] if p.get("paces")),
            key=lambda p: p.get("unhealthy_s") or 0.0,
            default={},
        )
        name = f"{worst['name']}: " if worst.get("name") else ""
        wait = worst.get("cpu_wait_max")
        waited = f" and waiting for a core up to {_num(wait)}% of a second" if wait else ""
        reason = (
            f"The load generator was unhealthy for {_num(seconds)} s of the {_num(plan.gate_seconds())}-s "
            f"gate window ({name}event-loop lag p99 {_ms(worst.get('lag_p99_ms'))}, max "
            f"{_ms(worst.get('lag_max_ms'))}, CPU up to {_num(worst.get('cpu_max') or 0.0)}%{waited}; "
            f"limits per second: lag p99 {_num(LAG_P99_LIMIT_MS)} ms, max {_num(LAG_MAX_LIMIT_MS)} ms, "
            f"CPU {_num(CPU_LIMIT)}% ran or waited): the generator, not the target, was the limit"
        )
    return Check("generator_health", ok, seconds, round(limit, 3), "s", HEALTH, reason)


def _generator_fix(results: Mapping[str, Any]) -> str:
    """How to make the next run measure the target, once, after the reasons."""
    late = _late_arrivals(results)
    if late is not None and late[2] > late[1]:  # mostly too few free users
        return f"{GENERATOR_FIX}, and {USERS_FIX}"
    return GENERATOR_FIX


def _target_named(plan: Plan, results: Mapping[str, Any]) -> str:
    """Who failed a latency or QPS budget when the generator was not the limit: the target."""
    generator = results.get("generator") or {}
    health = (
        f"the load generator was healthy (event-loop lag p99 {_ms(generator.get('lag_p99_ms'))}, "
        f"CPU up to {_num(generator.get('cpu_max') or 0.0)}%)"
    )
    late = _late_arrivals(results)
    if late is None or not late[3]:
        return f"The target was the limit: {health}"
    judged, target = late[0], late[3]
    share = _pct(target / max(judged, 1))
    gates = plan.gate_stages() or range(len(plan.stages))
    users = max(plan.users_for(i) for i in gates)
    return (
        f"All {users} users were waiting on the target when {target} arrivals ({share}) were due, "
        f"and {health}: the target was the limit"
    )


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


def _ms(value: Any) -> str:
    return "unknown" if value is None else f"{_num(value)} ms"
