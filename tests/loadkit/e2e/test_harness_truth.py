"""The harness tells the truth: real Locust processes against servers whose behaviour is known."""

from __future__ import annotations

import pytest

from .conftest import plain_plan, write_plan

pytestmark = pytest.mark.e2e


def test_server_capped_at_150_fails_a_200_qps_plan(tmp_path, target, run_loadkit):
    server = target("capped")
    plan = plain_plan(
        [
            {"name": "warmup", "duration": "2s", "qps": 200, "users": 60},
            {"name": "hold", "duration": "6s", "qps": 200, "users": 60, "gate": True},
        ],
        {"qps_min": 190, "latency_ms": {"p99": 2000}},
    )
    result = run_loadkit("run", str(write_plan(tmp_path, plan)), "--headless", "--host", server.url)
    assert result.code == 1, result.output[-4000:]
    summary = result.summary
    assert summary["verdict"] == "fail"
    assert summary["qps"]["held"] < 175
    assert any(c["name"] == "qps_min" and c["effect"] == "fail" for c in summary["checks"])
    reasons = "\n".join(summary["reasons"])
    assert "All 60 users were waiting on the target" in reasons, reasons  # the target, not the generator
    assert "the load generator was the limit" not in reasons, reasons


def test_same_server_passes_at_100_qps(tmp_path, target, run_loadkit):
    server = target("capped")
    plan = plain_plan(
        [
            {"name": "warmup", "duration": "2s", "qps": 100, "users": 40},
            {"name": "hold", "duration": "6s", "qps": 100, "users": 40, "gate": True},
        ],
        {"qps_min": 95, "latency_ms": {"p99": 1000}, "error_rate_max": 0.01},
    )
    result = run_loadkit("run", str(write_plan(tmp_path, plan)), "--headless", "--host", server.url)
    assert result.code == 0, result.output[-4000:]
    summary = result.summary
    assert summary["verdict"] == "pass"
    assert 95 <= summary["qps"]["held"] <= 105
    for name in ("report.html", "junit.xml", "summary.md", "locust_stats.csv"):
        assert (result.report_dir / name).is_file(), name


def test_stall_shows_in_corrected_latency(tmp_path, target, run_loadkit):
    server = target("stall")
    plan = plain_plan(
        [{"name": "hold", "duration": "11s", "qps": 50, "users": 4, "gate": True}],
        {"qps_min": 40, "latency_ms": {"p99": 300}},
    )
    result = run_loadkit("run", str(write_plan(tmp_path, plan)), "--headless", "--host", server.url)
    assert result.code in (1, 2), result.output[-4000:]
    summary = result.summary
    assert summary["latency_ms"]["p99"] >= 800, summary["latency_ms"]
    assert summary["verdict"] != "pass"
    # the correction is what shows the stall: corrected p99 is well above the service-time p99's floor
    assert summary["latency_ms"]["p99"] >= summary["latency_ms_service"]["p99"]


def test_known_latency_mix_percentiles(tmp_path, target, run_loadkit):
    server = target("mix")
    plan = plain_plan(
        [
            {"name": "warmup", "duration": "1s", "qps": 100, "users": 80},
            {"name": "hold", "duration": "12s", "qps": 100, "users": 80, "gate": True},
        ],
        {"latency_ms": {"p99": 1000}},
    )
    result = run_loadkit("run", str(write_plan(tmp_path, plan)), "--headless", "--host", server.url)
    assert result.code in (0, 2), result.output[-4000:]
    summary = result.summary
    assert summary["requests"]["count"] >= 1000
    truth = server.get("/truth")  # what the server really took: nominally 10 / 100 / 400 ms
    assert 10.0 <= truth["p50"] < 15 and 100 <= truth["p95"] < 110 and 400 <= truth["p99"] < 420, truth
    for key in ("latency_ms", "latency_ms_service"):
        for p, value in truth.items():
            observed = summary[key][p]
            assert value <= observed <= value * 1.05 + 2.0, (key, p, observed, value)


def test_two_processes_count_every_request_and_hold_the_rate(tmp_path, target, run_loadkit):
    server = target("fast")
    plan = plain_plan(
        [
            {"name": "warmup", "duration": "3s", "qps": 300, "users": 40},
            {"name": "hold", "duration": "8s", "qps": 300, "users": 40, "gate": True},
        ],
        {"qps_min": 280},
    )
    result = run_loadkit(
        "run", str(write_plan(tmp_path, plan)), "--headless", "--host", server.url, "--processes", "2"
    )
    assert result.code in (0, 2), result.output[-4000:]  # loadkit's own output, when it failed
    summary = result.summary
    served = server.count()
    counted = summary["whole_run"]["requests"]
    assert served > 0
    assert abs(counted - served) <= 0.01 * served, (counted, served)
    assert abs(summary["qps"]["held"] - 300) <= 0.03 * 300, summary["qps"]
    assert summary["generator"]["workers"] == 2


def test_host_outside_allow_hosts_is_refused_before_any_request(tmp_path, target, run_loadkit):
    server = target("fast")
    plan = plain_plan(
        [{"name": "hold", "duration": "3s", "qps": 10, "gate": True}],
        {"qps_min": 5},
        safety={"allow_hosts": ["localhost"]},
    )
    result = run_loadkit("run", str(write_plan(tmp_path, plan)), "--headless", "--host", server.url)
    assert result.code == 3, result.output[-4000:]
    assert "127.0.0.1" in result.output and "allow" in result.output.lower()
    assert server.count() == 0


def test_bad_plan_exits_3_naming_the_key(tmp_path, run_loadkit):
    plan = plain_plan([{"name": "hold", "duration": "3s", "qps": "fast"}], {"qps_min": 5})
    result = run_loadkit("run", str(write_plan(tmp_path, plan)), "--headless", "--host", "http://127.0.0.1:9")
    assert result.code == 3
    assert "stages[0].qps" in result.output
    assert "Traceback" not in result.output
    result = run_loadkit("validate", str(write_plan(tmp_path, plan)))
    assert result.code == 3 and "stages[0].qps" in result.output
