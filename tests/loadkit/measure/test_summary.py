"""build_summary(): the summary.json document (schema 1), its verdict and its JSON safety."""

from __future__ import annotations

import json
import math
from pathlib import Path

from loadkit.measure.summary import build_summary, json_safe
from loadkit.plan import parse_plan

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
    "schema", "tool", "verdict", "exit_code", "reasons", "plan", "started_at", "finished_at", "window",
    "qps", "latency_ms", "latency_ms_service", "error_rate", "requests", "outcomes", "arrivals", "checks",
    "endpoints", "generator", "errors", "abort", "audit", "reconciliation", "timeseries",
]  # fmt: skip


def results(**over):
    base = {
        "window": {"seconds": 20.0, "stages": ["hold"]},
        "qps": {"target": 100.0, "held": 99.2, "arrivals_held": 99.6},
        "latency_ms": {"p50": 10.0, "p90": 20.0, "p95": 30.0, "p99": 120.0, "max": 400.0},
        "latency_ms_service": {"p50": 9.0, "p90": 19.0, "p95": 29.0, "p99": 110.0, "max": 390.0},
        "error_rate": 0.0,
        "requests": {"count": 1984, "successes": 1984, "errors": 0, "expected_outcomes": 3},
        "outcomes": {"sold_out": 3},
        "arrivals": {"scheduled": 2000, "sent": 2000, "late": 0, "dropped": 0},
        "endpoints": {"get": {"requests": 1984, "qps_held": 99.2, "latency_ms": {"p99": 120.0}}},
        "generator": {"cpu_max": 40.0, "cpu_avg": 30.0, "cpu_high_s": 0.0, "workers": 1, "workers_lost": 0},
        "errors": [],
        "seen": {"get": {"successes": 2400, "errors": 0}},
    }
    base.update(over)
    return base


def build(res, **kw):
    return build_summary(
        PLAN,
        res,
        started_at=kw.pop("started_at", "2026-11-24T08:00:00+00:00"),
        finished_at=kw.pop("finished_at", 1795507230.0),
        window=kw.pop("window", {"start": 1795507210.0, "end": "2026-11-24T08:00:30+00:00"}),
        **kw,
    )


def test_full_document_in_schema_order():
    doc = build(results())
    assert list(doc)[: len(SCHEMA_KEYS)] == SCHEMA_KEYS
    assert doc["schema"] == 1 and doc["tool"] == "loadkit"
    assert doc["verdict"] == "pass" and doc["exit_code"] == 0 and doc["reasons"] == []
    assert doc["plan"]["name"] == "jifenbao"
    assert doc["plan"]["file"] == "plans/jifenbao.yaml"
    assert doc["plan"]["host"] == "http://127.0.0.1:8080"
    assert doc["plan"]["raw"]["stages"][0]["qps"] == [0, 100]
    assert doc["started_at"] == "2026-11-24T08:00:00+00:00"
    assert doc["finished_at"].endswith("+00:00") and doc["finished_at"].startswith("2026-")
    assert doc["window"]["start"].startswith("2026-") and doc["window"]["end"] == "2026-11-24T08:00:30+00:00"
    assert doc["window"]["seconds"] == 20.0 and doc["window"]["stages"] == ["hold"]
    assert doc["qps"] == {"target": 100.0, "held": 99.2, "arrivals_held": 99.6}
    assert doc["outcomes"] == {"sold_out": 3}
    assert [c["name"] for c in doc["checks"]] == [
        "qps_min",
        "latency_p99",
        "arrivals_on_time",
        "generator_cpu",
        "workers_lost",
    ]
    assert set(doc["checks"][0]) >= {"name", "ok", "observed", "limit", "unit"}
    assert doc["abort"] is None and doc["audit"] is None and doc["reconciliation"] is None
    assert doc["seen"] == {"get": {"successes": 2400, "errors": 0}}  # diagnostics kept after the schema
    json.dumps(doc, allow_nan=False)


def test_failing_run_carries_verdict_exit_code_and_reasons():
    doc = build(results(qps={"target": 100.0, "held": 60.0}))
    assert doc["verdict"] == "fail" and doc["exit_code"] == 1
    assert doc["reasons"] == ["Held 60 QPS, below the 90 QPS budget"]
    assert {"name": "qps_min", "ok": False}.items() <= doc["checks"][0].items()


def test_inconclusive_exit_code():
    doc = build(
        results(
            generator={"cpu_max": 100.0, "cpu_avg": 95.0, "cpu_high_s": 20.0, "workers": 1, "workers_lost": 0}
        )
    )
    assert doc["verdict"] == "inconclusive" and doc["exit_code"] == 2


def test_nan_and_infinity_become_null():
    res = results(latency_ms={"p50": math.nan, "p90": math.inf, "p95": -math.inf, "p99": 10.0, "max": 20.0})
    doc = build(res)
    assert (
        doc["latency_ms"]["p50"] is None
        and doc["latency_ms"]["p90"] is None
        and doc["latency_ms"]["p95"] is None
    )
    text = json.dumps(doc, allow_nan=False)
    assert "NaN" not in text and "Infinity" not in text


def test_defaults_for_missing_figures():
    doc = build({"requests": {"count": 0}}, window={"start": "a", "end": "b"})
    assert doc["verdict"] == "inconclusive"  # no traffic
    assert doc["qps"]["target"] == 100.0  # the plan's mean over its gate stage
    assert doc["qps"]["held"] is None and doc["qps"]["arrivals_held"] is None
    assert doc["latency_ms"] == {"p50": None, "p90": None, "p95": None, "p99": None, "max": None}
    assert doc["window"]["seconds"] == 20.0 and doc["window"]["stages"] == ["hold"]
    assert doc["timeseries"]["t"] == [] and doc["errors"] == [] and doc["endpoints"] == {}
    json.dumps(doc, allow_nan=False)


def test_qps_keys_come_first_and_unknown_ones_are_kept():
    doc = build(results(qps={"note": "x", "held": 5.0, "target": 10.0}))
    assert doc["qps"] == {"target": 10.0, "held": 5.0, "arrivals_held": None, "note": "x"}
    assert list(doc["qps"]) == ["target", "held", "arrivals_held", "note"]


def test_host_actually_used_and_extra_keys():
    doc = build(
        results(host="http://localhost:9999"), extra={"run": {"requests": 2400}, "verdict": "ignored"}
    )
    assert doc["plan"]["host"] == "http://localhost:9999"
    assert "host" not in doc
    assert doc["run"] == {"requests": 2400}
    assert doc["verdict"] == "pass"  # extra cannot overwrite the verdict


def test_json_safe_converts_odd_values():
    out = json_safe({1: (1.0, math.nan), "p": Path("/x"), "s": {3}, "f": float("inf")})
    assert out == {"1": [1.0, None], "p": "/x", "s": [3], "f": None}
