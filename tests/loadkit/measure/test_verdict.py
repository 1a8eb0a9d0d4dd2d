"""judge(): every budget, integrity and health check, the verdict rules (fail wins over
inconclusive, inconclusive over pass; a missing figure never passes), and who is blamed: the
cause → verdict table of docs/architecture.md."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from loadkit.measure.verdict import EXIT_CODES, EXIT_USAGE, Check, judge
from loadkit.plan import parse_plan
from tests.loadkit.generator_figures import generator

PLAN = parse_plan(
    {
        "name": "v",
        "stages": [
            {"name": "warmup", "duration": "10s", "qps": 100},
            {"name": "hold", "duration": "100s", "qps": 240, "users": 60, "gate": True},
        ],
        "budgets": {
            "qps_min": 200,
            "latency_ms": {"p50": 80, "p95": 250, "p99": 500},
            "error_rate_max": 0.001,
            "endpoints": {
                "points.send": {"qps_min": 150, "latency_ms": {"p99": 400}, "error_rate_max": 0.01}
            },
        },
        "safety": {"abort_on": {"error_rate": 0.2, "for": "30s"}},
    }
)


def good() -> dict[str, Any]:
    return {
        "qps": {"target": 240.0, "held": 238.9},
        "latency_ms": {"p50": 40.0, "p90": 90.0, "p95": 120.0, "p99": 310.0, "max": 900.0},
        "latency_ms_service": {"p50": 39.0, "p90": 88.0, "p95": 118.0, "p99": 300.0, "max": 880.0},
        "error_rate": 0.0002,
        "requests": {"count": 23890, "successes": 23885, "errors": 5, "expected_outcomes": 0},
        "arrivals": {"scheduled": 24000, "sent": 24000, "late": 30, "dropped": 0},
        "endpoints": {
            "points.send": {
                "requests": 16000,
                "qps_held": 159.9,
                "latency_ms": {"p50": 45.0, "p99": 350.0},
                "error_rate": 0.0001,
            }
        },
        "generator": generator(late={"generator": 10, "users": 0, "target": 20}),
        "abort": None,
        "audit": None,
        "reconciliation": None,
    }


def with_(**changes: Any) -> dict[str, Any]:
    """good() with path changes: with_(**{"qps/held": 1}); a number indexes a list."""
    data = copy.deepcopy(good())
    for path, value in changes.items():
        *parents, last = (int(k) if k.isdigit() else k for k in path.split("/"))
        node: Any = data
        for key in parents:
            node = node[key]
        node[last] = value
    return data


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_good_run_passes_with_every_check_listed():
    verdict, checks, reasons = judge(PLAN, good())
    assert verdict == "pass" and reasons == []
    assert [c.name for c in checks] == [
        "abort",
        "qps_min",
        "latency_p50",
        "latency_p95",
        "latency_p99",
        "error_rate_max",
        "points.send qps_min",
        "points.send latency_p99",
        "points.send error_rate_max",
        "generator_health",
        "arrivals_late_by_generator",
        "workers_lost",
    ]
    assert all(c.ok and c.effect == "pass" for c in checks)
    named = by_name(checks)
    assert (named["qps_min"].observed, named["qps_min"].limit, named["qps_min"].unit) == (238.9, 200, "req/s")
    assert named["latency_p99"].observed == 310.0 and named["latency_p99"].unit == "ms"
    assert named["points.send latency_p99"].observed == 350.0
    assert named["arrivals_late_by_generator"].observed == pytest.approx(10 / 24000, abs=1e-6)


def test_qps_below_budget_fails_with_a_sentence():
    verdict, checks, reasons = judge(PLAN, with_(**{"qps/held": 142.3}))
    assert verdict == "fail"
    assert not by_name(checks)["qps_min"].ok
    assert reasons[0] == "Held 142.3 QPS, below the 200 QPS budget"
    assert reasons[1].startswith("All 60 users were waiting on the target when 20 arrivals (0.08%) were due")
    assert reasons[1].endswith("the target was the limit") and len(reasons) == 2


def test_exactly_on_the_budget_holds():
    data = with_(**{"qps/held": 200.0, "latency_ms/p99": 500.0, "error_rate": 0.001})
    assert judge(PLAN, data)[0] == "pass"


@pytest.mark.parametrize(
    ("change", "check", "fragment"),
    [
        ({"latency_ms/p99": 612.0}, "latency_p99", "P99 latency 612 ms, above the 500 ms budget"),
        ({"latency_ms/p50": 81.5}, "latency_p50", "P50 latency 81.5 ms, above the 80 ms budget"),
        ({"error_rate": 0.0052}, "error_rate_max", "Error rate 0.52%, above the 0.1% budget"),
        (
            {"endpoints/points.send/latency_ms/p99": 450.0},
            "points.send latency_p99",
            "points.send: P99 latency 450",
        ),
        ({"endpoints/points.send/qps_held": 100.0}, "points.send qps_min", "points.send: Held 100 QPS"),
        (
            {"endpoints/points.send/error_rate": 0.5},
            "points.send error_rate_max",
            "points.send: Error rate 50%",
        ),
    ],
)
def test_each_budget_can_fail(change, check, fragment):
    verdict, checks, reasons = judge(PLAN, with_(**change))
    assert verdict == "fail"
    failed = [c for c in checks if not c.ok]
    assert [c.name for c in failed] == [check] and failed[0].effect == "fail"
    assert fragment in reasons[0], reasons
    if check.endswith("error_rate_max"):
        assert len(reasons) == 1  # an error is an answer: nobody else to name
    else:
        assert len(reasons) == 2 and "the target was the limit" in reasons[1]


def test_missing_latency_figures_never_pass():
    verdict, checks, reasons = judge(PLAN, with_(**{"latency_ms/p99": None}))
    assert verdict == "fail"
    check = by_name(checks)["latency_p99"]
    assert not check.ok and check.observed is None
    assert "No latency samples" in reasons[0] and "500 ms" in reasons[0]
    assert len(reasons) == 1  # nothing measured: no one to blame


def test_missing_qps_and_error_rate_never_pass():
    data = with_(**{"qps/held": None, "error_rate": None})
    verdict, checks, _ = judge(PLAN, data)
    assert verdict == "fail"
    assert not by_name(checks)["qps_min"].ok and not by_name(checks)["error_rate_max"].ok


def test_budgeted_endpoint_with_no_requests_fails_every_budget_it_has():
    data = with_(endpoints={})
    verdict, checks, reasons = judge(PLAN, data)
    assert verdict == "fail"
    failed = [c.name for c in checks if not c.ok]
    assert failed == ["points.send qps_min", "points.send latency_p99", "points.send error_rate_max"]
    # each of the three checks carries the sentence; the reasons say it once (the target died)
    assert [c.reason for c in checks if not c.ok] == [reasons[0]] * 3
    assert len(reasons) == 1 and "points.send: no request in the gate window" in reasons[0]


UNHEALTHY = {"generator/unhealthy_s": 40.0, "generator/processes/0/unhealthy_s": 40.0}
UNHEALTHY.update({"generator/processes/0/lag_p99_ms": 45.0, "generator/processes/0/cpu_max": 99.0})


@pytest.mark.parametrize(
    ("change", "check", "fragment"),
    [
        ({"generator/late": {"generator": 250, "users": 50, "target": 0}}, "arrivals_late_by_generator",
         "300 of 24000 arrivals (1.25%) were late or never sent because of the load generator"),
        ({"arrivals/sent": 23000, "generator/unsent": {"generator": 0, "users": 1000, "target": 0}},
         "arrivals_late_by_generator", "too few free users: 1000"),
        (UNHEALTHY, "generator_health", "unhealthy for 40 s of the 100-s gate window (local: event-loop lag"),
        ({"generator/workers_lost": 1}, "workers_lost", "1 load-generator worker(s) were lost"),
    ],
)  # fmt: skip
def test_generator_health_makes_a_passing_run_inconclusive(change, check, fragment):
    verdict, checks, reasons = judge(PLAN, with_(**change))
    assert verdict == "inconclusive"
    failed = [c for c in checks if not c.ok]
    assert [c.name for c in failed] == [check]
    assert failed[0].kind == "health" and failed[0].effect == "inconclusive"
    assert fragment in reasons[0], reasons


def test_late_arrivals_of_the_target_are_no_doubt_about_the_generator():
    # 12% of arrivals found every user waiting on the target: a finding, not a health failure
    data = with_(**{"arrivals/late": 2880, "generator/late": {"generator": 0, "users": 0, "target": 2880}})
    verdict, checks, reasons = judge(PLAN, data)
    assert verdict == "pass" and reasons == []  # the corrected latency still held every budget
    assert by_name(checks)["arrivals_late_by_generator"].observed == 0.0
    data["latency_ms"]["p99"] = 900.0
    verdict, checks, reasons = judge(PLAN, data)
    assert verdict == "fail" and by_name(checks)["latency_p99"].effect == "fail"
    assert reasons[-1].startswith("All 60 users were waiting on the target when 2880 arrivals (12%) were due")
    assert "the load generator was healthy (event-loop lag p99 3 ms, CPU up to 70%)" in reasons[-1]


def test_short_unhealthy_stretch_is_not_a_limit():
    # gate is 100 s: "long" is more than max(5 s, 10% of it) = 10 s
    assert judge(PLAN, with_(**{"generator/unhealthy_s": 9.0}))[0] == "pass"
    assert judge(PLAN, with_(**{"generator/unhealthy_s": 10.0}))[0] == "inconclusive"
    # a high CPU figure alone judges nothing: the per-second health does
    assert judge(PLAN, with_(**{"generator/cpu_high_s": 40.0, "generator/cpu_max": 100.0}))[0] == "pass"


@pytest.mark.parametrize(
    "limit",
    [UNHEALTHY, {"generator/late": {"generator": 1000, "users": 0, "target": 0}}],
    ids=["unhealthy for long", "late by the generator"],
)
def test_latency_and_qps_budgets_missed_while_the_generator_was_the_limit_are_inconclusive(limit):
    data = with_(**limit, **{"qps/held": 120.0, "latency_ms/p99": 5030.0})
    verdict, checks, reasons = judge(PLAN, data)
    assert verdict == "inconclusive"
    named = by_name(checks)
    for name in ("qps_min", "latency_p99"):
        assert not named[name].ok and named[name].kind == "budget" and named[name].effect == "inconclusive"
    # said once, after the budgets' own reasons: which budgets are doubted, why, and how to fix it
    assert reasons[-1].startswith(
        "The failed latency/QPS budgets (qps_min, latency_p99) are inconclusive: the load generator was "
        "the limit. To measure the target, give the load generator more room: more processes"
    )
    assert sum("load generator was the limit" in r for r in reasons) == 1
    assert not any("waiting on the target" in r for r in reasons)


def test_what_the_target_answered_or_integrity_fails_even_when_the_generator_was_the_limit():
    data = with_(**UNHEALTHY, **{"error_rate": 0.05, "latency_ms/p99": 900.0})
    verdict, checks, _ = judge(PLAN, data)
    assert verdict == "fail"
    named = by_name(checks)
    assert named["error_rate_max"].effect == "fail" and named["latency_p99"].effect == "inconclusive"
    data = with_(**UNHEALTHY, audit={"ok": False, "violations": ["vouchers ACT1: issued 101 > stock 100"]})
    assert judge(PLAN, data)[0] == "fail"


def test_too_few_free_users_asks_for_more_users():
    data = with_(**{"generator/late": {"generator": 0, "users": 2000, "target": 0}, "latency_ms/p99": 900.0})
    verdict, _, reasons = judge(PLAN, data)
    assert verdict == "inconclusive"
    assert "more users in the plan's stages" in reasons[-1]


def test_fail_wins_over_inconclusive():
    data = with_(
        **{"error_rate": 0.5, "generator/late": {"generator": 5000, "users": 0, "target": 0}},
        **{"generator/workers_lost": 2},
    )
    verdict, checks, reasons = judge(PLAN, data)
    assert verdict == "fail"
    failed = {c.name for c in checks if not c.ok}
    assert failed == {"error_rate_max", "arrivals_late_by_generator", "workers_lost"}
    assert len(reasons) == 4  # every failed or doubtful check is explained, and how to fix the generator


def test_a_cut_short_run_does_not_judge_what_it_never_sent():
    ending = {"how": "interrupted", "at": None, "plan_s": 50.0, "detail": None}
    data = with_(**{"arrivals/sent": 12000, "arrivals/scheduled": 20000, "arrivals/unsent": 8000})
    data["generator"]["unsent"] = {"generator": 8000, "users": 0, "target": 0}
    assert by_name(judge(PLAN, {**data, "ending": ending})[1])["arrivals_late_by_generator"].ok
    assert not by_name(judge(PLAN, data)[1])["arrivals_late_by_generator"].ok


def test_no_traffic_in_the_gate_window_is_inconclusive():
    data = with_(requests={"count": 0, "successes": 0, "errors": 0}, endpoints={})
    data["qps"]["held"] = 0.0
    data["latency_ms"] = dict.fromkeys(data["latency_ms"])
    verdict, checks, reasons = judge(PLAN, data)
    assert verdict == "inconclusive"
    assert by_name(checks)["gate_traffic"].kind == "health"
    assert "qps_min" not in by_name(checks)  # budgets cannot be judged on nothing
    assert "No request was sent in the gate window" in reasons[0]


def test_no_traffic_but_aborted_is_a_fail():
    data = with_(requests={"count": 0}, endpoints={}, abort={"reason": "could not seed the mock platform"})
    verdict, _, reasons = judge(PLAN, data)
    assert verdict == "fail"
    assert reasons[0] == "The run was stopped: could not seed the mock platform"


def test_traffic_is_read_from_endpoints_when_requests_are_absent():
    data = good()
    del data["requests"]
    assert judge(PLAN, data)[0] == "pass"
    data["endpoints"] = {}
    assert judge(PLAN, data)[0] == "inconclusive"


@pytest.mark.parametrize(
    ("key", "value", "check", "fragment"),
    [
        ("abort", {"reason": "aborted: error rate 35% stayed above 20%"}, "abort", "stopped: error rate 35%"),
        (
            "audit",
            {"ok": False, "violations": ["vouchers ACT1: issued 101 > stock 100"]},
            "audit",
            "issued 101",
        ),
        ("audit", {"ok": True, "violations": ["points JFB1 over budget"]}, "audit", "over budget"),
        (
            "reconciliation",
            {"ok": False, "problems": ["send: 5 successes, 4 effects"]},
            "reconciliation",
            "4 effects",
        ),
    ],
)
def test_integrity_failures_fail_the_run(key, value, check, fragment):
    data = with_(**{key: value})
    verdict, checks, reasons = judge(PLAN, data)
    assert verdict == "fail"
    named = by_name(checks)
    assert not named[check].ok and named[check].kind == "integrity"
    assert fragment in reasons[0]


def test_integrity_checks_that_hold_are_listed():
    data = with_(
        audit={"ok": True, "violations": [], "totals": {}}, reconciliation={"ok": True, "problems": []}
    )
    verdict, checks, _ = judge(PLAN, data)
    assert verdict == "pass"
    named = by_name(checks)
    assert named["audit"].ok and named["reconciliation"].ok


def test_no_abort_check_without_a_rule_and_no_health_checks_without_figures():
    plan = parse_plan({"name": "p", "stages": [{"duration": 10, "qps": 5}], "budgets": {"qps_min": 4}})
    verdict, checks, _ = judge(plan, {"qps": {"held": 5.0}, "requests": {"count": 50}})
    assert verdict == "pass"
    assert [c.name for c in checks] == ["qps_min"]


def test_unpaced_runs_skip_the_arrivals_check():
    data = with_(arrivals={"scheduled": 0, "sent": 0, "late": 0, "dropped": 0})
    verdict, checks, _ = judge(PLAN, data)
    assert verdict == "pass" and "arrivals_late_by_generator" not in by_name(checks)


def test_exit_codes_and_check_dict():
    assert EXIT_CODES == {"pass": 0, "fail": 1, "inconclusive": 2} and EXIT_USAGE == 3
    check = Check("qps_min", False, 1.0, 2.0, "req/s")
    assert check.as_dict() == {
        "name": "qps_min",
        "ok": False,
        "observed": 1.0,
        "limit": 2.0,
        "unit": "req/s",
        "kind": "budget",
        "reason": None,
        "effect": "fail",
    }
    assert Check("x", False, 1, 0, kind="health").effect == "inconclusive"
    assert Check("x", True, 1, 0, kind="integrity").effect == "pass"


def test_service_and_drills_are_judged():
    from loadkit.measure.verdict import judge
    from loadkit.plan import parse_plan

    plan = parse_plan({"name": "t", "stages": [{"name": "h", "duration": "10s", "qps": 1, "gate": True}]})
    base = {"requests": {"count": 10}, "endpoints": {}}
    dead = {"ok": False, "exit_code": -9, "problem": "the service under test was killed by signal 9"}
    verdict, checks, reasons = judge(plan, {**base, "service": dead})
    assert verdict == "fail" and reasons[0] == "The service under test was killed by signal 9"
    check = next(c for c in checks if c.name == "service")
    assert check.kind == "integrity" and check.observed == "exited with -9"
    drill = {
        "name": "slow",
        "ok": False,
        "recovery_s": None,
        "recovery_budget_s": 30,
        "reason": "Drill slow: no",
    }
    verdict, checks, reasons = judge(plan, {**base, "service": {"ok": True}, "drills": [drill]})
    assert verdict == "fail" and reasons == ["Drill slow: no"]
    assert [c.name for c in checks if c.name.startswith("drill")] == ["drill slow recovery"]
    assert judge(plan, {**base, "drills": [{**drill, "ok": True, "recovery_s": 3}]})[0] == "pass"


# --- how the run ended, the workers, the baseline ----------------------------------------------------

INTERRUPTED = {"how": "interrupted", "at": "2026-11-24T08:00:40+00:00", "plan_s": 40.0, "detail": None}


def test_an_interrupted_run_is_judged_on_what_ran_and_cannot_pass():
    data = with_(ending=INTERRUPTED, window={"seconds": 30.0})
    verdict, checks, reasons = judge(PLAN, data)
    assert verdict == "inconclusive"
    assert by_name(checks)["completed"].kind == "health"
    assert reasons == [
        "The run was interrupted at 2026-11-24T08:00:40+00:00, after 30 s of the 100-s gate window: "
        "only that part was judged, so it cannot pass"
    ]
    # a budget that failed in the part that ran still fails
    assert judge(PLAN, with_(ending=INTERRUPTED, window={"seconds": 30.0}, **{"qps/held": 50.0}))[0] == "fail"


def test_a_run_interrupted_before_its_gate_says_so_once():
    data = with_(ending=INTERRUPTED, window={"seconds": 0}, requests={"count": 0}, endpoints={})
    verdict, checks, reasons = judge(PLAN, data)
    assert verdict == "inconclusive" and "completed" not in by_name(checks)
    assert reasons == [
        "The run was interrupted at 2026-11-24T08:00:40+00:00, before any request in its gate window: "
        "no budget could be judged"
    ]
    aborted = {**INTERRUPTED, "how": "aborted", "detail": "aborted: error rate 100% above 50%"}
    data = with_(ending=aborted, window={"seconds": 0}, requests={"count": 0}, endpoints={})
    data["abort"] = {"reason": "aborted: error rate 100% above 50%"}
    verdict, _, reasons = judge(PLAN, data)
    assert verdict == "fail" and sum("100%" in r for r in reasons) == 1, reasons


def test_a_run_whose_generator_died_is_inconclusive_whatever_it_had_reported():
    died = {**INTERRUPTED, "how": "generator_died", "detail": "Locust was killed by SIGKILL"}
    data = with_(ending=died, window={"seconds": 30.0}, **{"qps/held": 50.0})  # a budget "failed"
    verdict, checks, reasons = judge(PLAN, data)
    assert verdict == "inconclusive"
    assert not by_name(checks)["qps_min"].ok  # still shown as it measured
    assert any(
        r.startswith("The load generator died at 2026-11-24T08:00:40+00:00 (Locust was killed")
        for r in reasons
    )
    # even with the whole gate reported, a dead generator is never a pass
    assert judge(PLAN, with_(ending=died, window={"seconds": 100.0}))[0] == "inconclusive"


@pytest.mark.parametrize(
    ("workers", "fragment"),
    [
        (
            {"workers": 2, "workers_expected": 2, "strangers": ["vm_x"]},
            "1 worker(s) of another run tried to join",
        ),
        (
            {"workers": 1, "workers_expected": 2, "strangers": []},
            "1 worker(s) of this run took part, 2 were expected",
        ),
    ],
)
def test_a_stranger_or_a_different_worker_count_is_inconclusive(workers, fragment):
    data = good()
    data["generator"].update(workers)
    verdict, checks, reasons = judge(PLAN, data)
    assert verdict == "inconclusive" and not by_name(checks)["workers"].ok
    assert fragment in reasons[0]
    data["generator"].update(workers=2, workers_expected=2, strangers=[])
    verdict, checks, _ = judge(PLAN, data)
    assert verdict == "pass" and by_name(checks)["workers"].ok


def baseline_of(data: dict[str, Any]) -> dict[str, Any]:
    run = {"source": "base", "run_dir": "reports/base", "history_id": 3, "plan": "v",
           "started_at": "2026-11-23T08:00:00+00:00", "verdict": "pass"}  # fmt: skip
    return {
        "run": run,
        "summary": {**copy.deepcopy(data), "plan": {"name": "v", "raw": {}}},
        "max_regression": 0.1,
    }


def test_a_regression_against_the_baseline_fails_naming_the_figure_and_both_values():
    slower = with_(**{"latency_ms/p99": 470.0})  # within its 500-ms budget, but 52% slower than before
    slower["baseline"] = baseline_of(good())
    verdict, checks, reasons = judge(PLAN, slower)
    assert verdict == "fail"
    check = by_name(checks)["baseline latency_p99_ms"]
    assert not check.ok and check.kind == "budget" and check.observed == 470.0
    assert reasons == [
        "Regression against the baseline run reports/base of 2026-11-23T08:00:00+00:00: latency_p99_ms "
        "470 ms vs 310 ms, +51.6%, beyond the 10% allowed (and the runs' own noise)"
    ]
    same = good()
    same["baseline"] = baseline_of(good())
    verdict, checks, _ = judge(PLAN, same)
    assert verdict == "pass"
    assert {c.name for c in checks if c.name.startswith("baseline ")} >= {
        "baseline qps_held",
        "baseline error_rate",
        "baseline latency_p99_ms",
        "baseline points.send latency_p99_ms",
    }
