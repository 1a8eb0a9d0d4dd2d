"""Who made the arrivals late: real Locust processes against targets whose behaviour is known.

The verdict must name the generator when the generator was the limit (inconclusive, exit 2) and
the target when the target was (fail, exit 1). Each test asserts on the exit code first, with
loadkit's own output in the message, then on what the reasons say.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from .conftest import pinned, plain_plan, write_plan

pytestmark = pytest.mark.e2e

GENERATOR_LIMIT = "the load generator was the limit"
TARGET_NAMED = "waiting on the target"


def reasons_of(result) -> str:
    return "\n".join(result.summary["reasons"])


@pytest.mark.skipif(not pinned(0), reason="needs taskset and two CPUs")
def test_a_generator_on_one_core_asked_for_far_more_than_it_can_send_is_inconclusive(
    tmp_path, target, run_loadkit
):
    server = target("raw", cpu=1)  # tens of thousands of answers a second: never the limit
    plan = plain_plan(
        [
            {"name": "warmup", "duration": "2s", "qps": 20000, "users": 50},
            {"name": "hold", "duration": "8s", "qps": 20000, "users": 50, "gate": True},
        ],
        {"qps_min": 15000, "latency_ms": {"p99": 500}},
        safety={"max_qps": 50000},
    )
    result = run_loadkit("run", str(write_plan(tmp_path, plan)), "--headless", "--host", server.url, cpu=0)
    assert result.code == 2, result.output
    summary = result.summary
    assert summary["verdict"] == "inconclusive"
    reasons = reasons_of(result)
    assert GENERATOR_LIMIT in reasons and "--processes" in reasons, reasons
    assert TARGET_NAMED not in reasons, reasons
    checks = {c["name"]: c for c in summary["checks"]}
    assert checks["latency_p99"]["effect"] == "inconclusive"  # the corrected p99 is the generator's backlog
    late = summary["generator"]["late"]
    assert late["generator"] > 10 * late["target"], late


def test_a_target_that_stalls_1s_in_every_5_fails_and_is_named(tmp_path, target, run_loadkit):
    server = target("stall")
    plan = plain_plan(
        [
            {"name": "warmup", "duration": "2s", "qps": 100, "users": 5},
            {"name": "hold", "duration": "12s", "qps": 100, "users": 5, "gate": True},
        ],
        {"qps_min": 90, "latency_ms": {"p99": 300}},
    )
    result = run_loadkit("run", str(write_plan(tmp_path, plan)), "--headless", "--host", server.url)
    assert result.code == 1, result.output
    summary = result.summary
    reasons = reasons_of(result)
    assert "All 5 users were waiting on the target" in reasons, reasons
    assert GENERATOR_LIMIT not in reasons, reasons
    assert summary["latency_ms"]["p99"] >= 500  # the stalls, counted from when each arrival was due
    late = summary["generator"]["late"]
    assert late["target"] >= 100 and late["target"] > 5 * late["generator"], late


def test_a_target_stopped_for_5s_mid_run_is_named_not_the_generator(tmp_path, target, run_loadkit):
    server = target("fast")
    plan = plain_plan(
        [
            {"name": "warmup", "duration": "2s", "qps": 100, "users": 10},
            {"name": "hold", "duration": "14s", "qps": 100, "users": 10, "gate": True},
        ],
        {"qps_min": 90, "latency_ms": {"p99": 500}},
    )
    stop = threading.Timer(6.0, os.kill, (server.proc.pid, signal.SIGSTOP))
    cont = threading.Timer(11.0, os.kill, (server.proc.pid, signal.SIGCONT))
    stop.start()
    cont.start()
    try:
        result = run_loadkit("run", str(write_plan(tmp_path, plan)), "--headless", "--host", server.url)
    finally:
        stop.cancel()
        cont.cancel()
        os.kill(server.proc.pid, signal.SIGCONT)
    assert result.code == 1, result.output
    reasons = reasons_of(result)
    assert "All 10 users were waiting on the target" in reasons, reasons
    assert GENERATOR_LIMIT not in reasons and "To measure the target" not in reasons, reasons
    assert result.summary["latency_ms"]["p99"] >= 3000
