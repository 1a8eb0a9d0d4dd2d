"""Checks and the verdict: is the target ready for the event, not ready, or can we not tell?

Three kinds of check. *budget* checks (QPS held, latency percentiles, error rate, per endpoint)
and *integrity* checks (abort, the mock's audit, reconciliation) judge the target. *health*
checks judge the load generator (its health second by second, arrivals late because of it, lost
workers, traffic in the gate window, a run cut short).

Each check has an *effect* on the verdict. A failed integrity or error-rate check fails the run.
A failed health check makes it `inconclusive`. A failed latency or QPS budget fails the run when
the generator was healthy (late arrivals were the target's: the corrected latency stands), and
makes it `inconclusive` when the generator was the limit: then the figures describe the generator
(docs/architecture.md, "Who caused it: cause → verdict"). With a baseline run, each key figure
is also compared with it (`baseline ...` budget checks, `compare.py`). fail wins over
inconclusive, inconclusive over pass; a run whose load generator died is inconclusive whatever its
partial figures show. A figure that is missing never counts as a pass. Each reason is said once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from loadkit.measure.attribution import CPU_LIMIT, LAG_MAX_LIMIT_MS, LAG_P99_LIMIT_MS
from loadkit.measure.compare import Tolerance, compare, judged_gate
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
    if _had_traffic(results):
        checks += _budget_checks(plan.budgets, results)
        checks += _baseline_checks(plan, results)
        checks += _ending_checks(plan, results)
    else:
        checks.append(Check("gate_traffic", False, 0, 1, "requests", HEALTH, _no_traffic_reason(results)))
    checks += _drill_checks(results)
    health = _health_checks(plan, results)
    checks += health
    generator_limit = any(c.name in GENERATOR_CHECKS and not c.ok for c in health)
    # a generator that died reported partial figures (a master's up to a report interval behind)
    died = (_cut_short(results) or {}).get("how") == "generator_died"
    if generator_limit or died:
        checks = [_doubted(c) if _is_load_budget(c) else c for c in checks]
    effects = {c.effect for c in checks}
    if died:
        verdict = INCONCLUSIVE
    else:
        verdict = FAIL if FAIL in effects else INCONCLUSIVE if INCONCLUSIVE in effects else PASS
    reasons = [c.reason for c in checks if not c.ok and c.reason]
    if generator_limit:
        reasons.append(_generator_fix(plan, checks, results))
    elif not died and any(_is_load_budget(c) and not c.name.startswith("baseline ") for c in checks):
        reasons.append(_target_named(plan, results))
    # several checks can share a reason (every budget of an endpoint that sent nothing): say it once
    return verdict, checks, list(dict.fromkeys(reasons))


def _is_load_budget(check: Check) -> bool:
    """A failed latency or QPS budget judged on figures (not one with no figure at all): what a
    generator that cannot keep up distorts."""
    return (
        check.kind == BUDGET and not check.ok and check.unit in ("ms", "req/s") and check.observed is not None
    )


def _doubted(check: Check) -> Check:
    """A latency or QPS budget that failed while the generator was the limit: not the target's
    failure (the reason after the others says so, once)."""
    return replace(check, effect=INCONCLUSIVE)


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


def _generator_fix(plan: Plan, checks: list[Check], results: Mapping[str, Any]) -> str:
    """Once, after the reasons: which budgets the generator's limit leaves undecided, and how to
    make the next run measure the target."""
    doubted = [c.name for c in checks if not c.ok and c.effect == INCONCLUSIVE and _is_load_budget(c)]
    head = ""
    if doubted:
        shown = ", ".join(doubted[:4]) + (", ..." if len(doubted) > 4 else "")
        head = (
            f"The failed latency/QPS budgets ({shown}) are inconclusive: the load generator was the limit. "
        )
    late = _late_arrivals(results)
    if late is not None and late[2] > late[1]:  # mostly too few free users
        return f"{head}{GENERATOR_FIX}, and {USERS_FIX}"
    return f"{head}{GENERATOR_FIX}"


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


def _value(value: float, unit: str) -> str:
    return _pct(value) if unit == "fraction" else f"{_num(value)} {unit}"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.2f}".rstrip("0").rstrip(".") + "%"


def _ms(value: Any) -> str:
    return "unknown" if value is None else f"{_num(value)} ms"
