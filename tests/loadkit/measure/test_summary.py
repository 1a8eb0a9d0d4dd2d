"""build_summary(), dumps(), load_summary(): the summary.json document (schema 3), its verdict,
its exact keys, its JSON safety, and reading older documents."""

from __future__ import annotations

import json
import math
from pathlib import Path

from loadkit.measure.summary import (
    KEYS,
    LIVE_NAME,
    build_summary,
    dumps,
    json_safe,
    load_summary,
    read_snapshot,
    write_snapshot,
)
from loadkit.plan import parse_plan
from tests.loadkit.generator_figures import generator
from tests.summary_schema import schema_errors

PLAN = parse_plan(
    {
        "name": "jifenbao",
        "host": "http://127.0.0.1:8080",
        "stages": [
            {"name": "ramp", "duration": "10s", "qps": [0, 100]},
            {"name": "hold", "duration": "20s", "qps": 100, "gate": True},
        ],
        "budgets": {"qps_min": 90, "latency_ms": {"p99": 300}},
    },
    source="plans/jifenbao.yaml",
)

SCHEMA_KEYS = [
    "schema", "tool", "verdict", "exit_code", "reasons", "ending", "plan", "started_at", "finished_at",
    "window", "qps", "latency_ms", "latency_ms_service", "error_rate", "requests", "outcomes", "arrivals",
    "whole_run", "checks", "endpoints", "generator", "errors", "abort", "audit", "reconciliation",
    "service", "drills", "baseline", "timeseries",
]  # fmt: skip
FIXTURE = Path(__file__).parents[1] / "fixtures" / "sample_summary.json"
STARTED = 1795507200.0  # 2026-11-24T08:00:00Z


def results(**over):
    base = {
        "window": {
            "start": "2026-11-24T08:00:10+00:00",
            "end": "2026-11-24T08:00:30+00:00",
            "seconds": 20.0,
            "stages": ["hold"],
        },
        "qps": {"target": 100.0, "held": 99.2, "arrivals_held": 99.6},
        "latency_ms": {"p50": 10.0, "p90": 20.0, "p95": 30.0, "p99": 120.0, "max": 400.0},
        "latency_ms_service": {"p50": 9.0, "p90": 19.0, "p95": 29.0, "p99": 110.0, "max": 390.0},
        "error_rate": 0.0,
        "requests": {"count": 1984, "successes": 1984, "errors": 0, "expected_outcomes": 3},
        "outcomes": {"sold_out": 3},
        "arrivals": {"scheduled": 2000, "sent": 2000, "on_time": 2000, "late": 0, "dropped": 0, "unsent": 0},
        "endpoints": {"get": {"requests": 1984, "qps_held": 99.2, "latency_ms": {"p99": 120.0}}},
        "generator": generator(),
        "errors": [],
        "ending": {"how": "completed", "at": "2026-11-24T08:00:30+00:00", "plan_s": 30.0, "detail": None},
    }
    base.update(over)
    return base


def build(res, **kw):
    return build_summary(PLAN, res, started_at=STARTED, finished_at=STARTED + 30, **kw)


def test_full_document_has_exactly_the_schema_keys_in_order():
    doc = build(results())
    assert list(doc) == SCHEMA_KEYS == list(KEYS)
    assert doc["schema"] == 3 and doc["tool"] == "loadkit"
    assert doc["verdict"] == "pass" and doc["exit_code"] == 0 and doc["reasons"] == []
    assert doc["ending"]["how"] == "completed"
    assert doc["plan"] == {
        "name": "jifenbao",
        "file": "plans/jifenbao.yaml",
        "host": "http://127.0.0.1:8080",
        "raw": doc["plan"]["raw"],
    }
    assert doc["plan"]["raw"]["stages"][0]["qps"] == [0, 100]
    assert doc["started_at"] == "2026-11-24T08:00:00+00:00"
    assert doc["finished_at"] == "2026-11-24T08:00:30+00:00"
    assert doc["window"]["end"] == "2026-11-24T08:00:30+00:00"
    assert doc["window"]["seconds"] == 20.0 and doc["window"]["stages"] == ["hold"]
    assert doc["qps"] == {"target": 100.0, "held": 99.2, "arrivals_held": 99.6}
    assert doc["outcomes"] == {"sold_out": 3}
    assert [c["name"] for c in doc["checks"]] == [
        "qps_min",
        "latency_p99",
        "generator_health",
        "arrivals_late_by_generator",
        "workers_lost",
    ]
    assert set(doc["checks"][0]) == {"name", "ok", "observed", "limit", "unit", "kind", "reason", "effect"}
    assert doc["generator"] == generator()
    assert doc["abort"] is None and doc["audit"] is None and doc["reconciliation"] is None
    json.dumps(doc, allow_nan=False)


def test_stray_evidence_keys_never_reach_the_document():
    doc = build(results(seen={"get": {"successes": 1, "errors": 0}}, beyond=3, run={"requests": 5}))
    assert list(doc) == SCHEMA_KEYS
    doc = build(results(qps={"note": "x", "held": 5.0, "target": 10.0}))
    assert doc["qps"] == {"target": 10.0, "held": 5.0, "arrivals_held": None}


def test_failing_run_carries_verdict_exit_code_and_reasons():
    doc = build(results(qps={"target": 100.0, "held": 60.0}))
    assert doc["verdict"] == "fail" and doc["exit_code"] == 1
    assert doc["reasons"][0] == "Held 60 QPS, below the 90 QPS budget"
    assert doc["reasons"][1].startswith("The target was the limit: the load generator was healthy")
    assert {"name": "qps_min", "ok": False, "effect": "fail"}.items() <= doc["checks"][0].items()


def test_inconclusive_exit_code():
    doc = build(results(generator=generator(unhealthy_s=20.0), qps={"target": 100.0, "held": 60.0}))
    assert doc["verdict"] == "inconclusive" and doc["exit_code"] == 2
    assert {"name": "qps_min", "ok": False, "effect": "inconclusive"}.items() <= doc["checks"][0].items()


def test_an_interrupted_run_says_so_and_cannot_pass():
    ending = {"how": "interrupted", "at": "2026-11-24T08:00:22+00:00", "plan_s": 22.0, "detail": None}
    window = {**results()["window"], "end": "2026-11-24T08:00:22+00:00", "seconds": 12.0}
    doc = build(results(ending=ending, window=window))
    assert doc["verdict"] == "inconclusive" and doc["ending"] == ending
    assert any(
        "interrupted at 2026-11-24T08:00:22+00:00" in r and "12 s of the 20-s gate" in r
        for r in doc["reasons"]
    )
    # a budget that failed in the part that ran still fails
    doc = build(results(ending=ending, window=window, qps={"target": 100.0, "held": 10.0}))
    assert doc["verdict"] == "fail"


def test_nan_and_infinity_become_null():
    res = results(latency_ms={"p50": math.nan, "p90": math.inf, "p95": -math.inf, "p99": 10.0, "max": 20.0})
    doc = build(res)
    assert doc["latency_ms"]["p50"] is None and doc["latency_ms"]["p90"] is None
    assert doc["latency_ms"]["p95"] is None
    text = dumps(doc).decode()
    assert "NaN" not in text and "Infinity" not in text


def test_defaults_for_missing_figures():
    doc = build({"requests": {"count": 0, "successes": 0, "errors": 0, "expected_outcomes": 0}})
    assert doc["verdict"] == "inconclusive"  # no traffic
    assert doc["qps"]["target"] == 100.0  # the plan's mean over its gate stage
    assert doc["qps"]["held"] is None and doc["qps"]["arrivals_held"] is None
    assert doc["latency_ms"] == {"p50": None, "p90": None, "p95": None, "p99": None, "max": None}
    assert doc["window"]["seconds"] == 20.0 and doc["window"]["stages"] == ["hold"]
    assert doc["timeseries"]["t"] == [] and doc["errors"] == [] and doc["endpoints"] == {}
    assert doc["arrivals"]["unsent"] == 0 and doc["ending"] is None
    assert doc["generator"]["processes"] == [] and doc["generator"]["late"] is None
    assert doc["timeseries"]["lag_p99_ms"] == [] and doc["timeseries"]["late_target"] == []
    json.dumps(doc, allow_nan=False)


def test_host_actually_used():
    doc = build(results(), host="http://localhost:9999")
    assert doc["plan"]["host"] == "http://localhost:9999"


def test_load_summary_round_trips_and_upgrades_schema_1():
    doc = build(results())
    assert load_summary(json.loads(dumps(doc))) == doc
    old = json.loads(FIXTURE.read_text())
    old["seen"], old["beyond"], old["run"] = {"a": {}}, 3, {"requests": 1}
    upgraded = load_summary(old)
    assert list(upgraded) == SCHEMA_KEYS and upgraded["schema"] == 3 and upgraded["ending"] is None
    assert upgraded["baseline"] is None
    arrivals = upgraded["arrivals"]
    assert arrivals["on_time"] == arrivals["sent"] - arrivals["late"]
    assert arrivals["scheduled"] == arrivals["sent"] + arrivals["dropped"] + arrivals["unsent"]
    assert upgraded["qps"]["arrivals_held"] is None
    assert upgraded["whole_run"] == {"requests": 1, "errors": 0}  # schema 1 kept it as `run`


def test_load_summary_upgrades_schema_2():
    """Schema 2 had no generator health and no check effects: unknown figures are null or empty,
    effects follow the rule of the time (a failed health check was inconclusive, others failed)."""
    doc = json.loads(dumps(build(results(qps={"target": 100.0, "held": 60.0}))))
    doc["schema"] = 2
    for key in ("lag_p99_ms", "lag_max_ms", "unhealthy_s", "late", "unsent", "processes"):
        del doc["generator"][key]
    for check in doc["checks"]:
        del check["effect"]
    for key in ("lag_p99_ms", "unhealthy", "late_generator", "late_users", "late_target"):
        del doc["timeseries"][key]
    upgraded = load_summary(doc)
    assert upgraded["schema"] == 3 and schema_errors(json.loads(dumps(upgraded))) == []
    assert upgraded["generator"]["late"] is None and upgraded["generator"]["processes"] == []
    assert upgraded["generator"]["cpu_max"] == 70.0
    assert [c["effect"] for c in upgraded["checks"]][:2] == ["fail", "pass"]
    assert upgraded["timeseries"]["unhealthy"] == []


def test_load_summary_refuses_what_is_not_a_summary():
    for bad in ([], {"tool": "k6"}, {"tool": "loadkit"}):
        try:
            load_summary(bad)
        except ValueError as exc:
            assert "not a loadkit summary" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_json_safe_converts_odd_values():
    out = json_safe({1: (1.0, math.nan), "p": Path("/x"), "s": {3}, "f": float("inf")})
    assert out == {"1": [1.0, None], "p": "/x", "s": [3], "f": None}


def test_documents_validate_against_the_shipped_schema():
    for doc in (
        build(results()),
        build(results(qps={"target": 100.0, "held": 60.0})),
        build({"requests": {"count": 0, "successes": 0, "errors": 0, "expected_outcomes": 0}}),
        load_summary(json.loads(FIXTURE.read_text())),
    ):
        assert schema_errors(json.loads(dumps(doc))) == []
    stray = {**json.loads(dumps(build(results()))), "seen": {}}
    assert schema_errors(stray) == ["(top): Additional properties are not allowed ('seen' was unexpected)"]


def test_a_run_that_never_reached_its_gate_has_no_rates_but_the_plans_target():
    window = {"start": None, "end": None, "seconds": 0, "stages": []}
    doc = build(results(window=window, qps={"target": 0.0, "held": 0.0, "arrivals_held": 0.0}))
    assert doc["qps"] == {"target": 100.0, "held": None, "arrivals_held": None}
    assert schema_errors(json.loads(dumps(doc))) == []


def baseline_input(held: float = 99.2, p99: float = 120.0) -> dict:
    base = build(results(qps={"target": 100.0, "held": held, "arrivals_held": 99.6}))
    base["latency_ms"]["p99"] = p99
    run = {"source": "last-pass", "run_dir": "reports/a", "history_id": 7, "plan": "jifenbao",
           "started_at": base["started_at"], "verdict": "pass"}  # fmt: skip
    return {"run": run, "summary": base, "max_regression": 0.1}


def test_the_baseline_section_holds_the_same_comparison_as_the_checks():
    doc = build(results(baseline=baseline_input(p99=40.0)))  # this run's p99 is 120 ms: 3x the baseline's
    section = doc["baseline"]
    assert section["run"]["history_id"] == 7 and section["max_regression"] == 0.1
    assert section["tolerance"]["relative"] == 0.1 and section["plan_differences"] == []
    rows = {r["figure"]: r for r in section["figures"]}
    assert rows["latency_p99_ms"]["change"] == "worse" and rows["qps_held"]["change"] == "same"
    check = next(c for c in doc["checks"] if c["name"] == "baseline latency_p99_ms")
    assert not check["ok"] and doc["verdict"] == "fail"
    assert schema_errors(json.loads(dumps(doc))) == []
    assert load_summary(json.loads(dumps(doc)))["baseline"] == section
    assert build(results())["baseline"] is None


def test_the_live_snapshot_round_trips_and_is_replaced_whole(tmp_path):
    snapshot = {"t0": 1.5, "started_at": 1.0, "written_at": 9.0, "host": "http://h", "evidence": results()}
    assert read_snapshot(tmp_path) is None
    write_snapshot(tmp_path / "run", snapshot)
    assert read_snapshot(tmp_path / "run") == json.loads(json.dumps(snapshot))
    write_snapshot(tmp_path / "run", {**snapshot, "written_at": 12.0})
    assert read_snapshot(tmp_path / "run")["written_at"] == 12.0
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LIVE_NAME]  # no temporary left
    (tmp_path / "run" / LIVE_NAME).write_text('{"t0": 1')  # torn or foreign: not a snapshot
    assert read_snapshot(tmp_path / "run") is None
