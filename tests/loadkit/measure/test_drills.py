"""Drills judged apart: the gate's budgets leave their spans out; error rate, p99 and recovery
are measured per drill."""

from __future__ import annotations

from loadkit.measure.drills import judge_drills, recovery_time
from loadkit.measure.recorder import Recorder
from loadkit.plan import parse_plan

T0 = 1_000_000.0


def plan(**budgets):
    return parse_plan(
        {
            "name": "t",
            "stages": [{"name": "hold", "duration": "60s", "qps": 10, "gate": True}],
            "budgets": {"error_rate_max": 0.01, "latency_ms": {"p99": 200}, **budgets},
            "drills": [{"name": "outage", "at": "10s", "for": "10s", "faults": {"*": {"outage": {}}}}],
        }
    )


def feed(rec: Recorder, seconds: range, ok: bool, ms: float = 20.0, per_second: int = 10) -> None:
    for s in seconds:
        for i in range(per_second):
            rec.record("claim", t=T0 + s + i / per_second, response_ms=ms, ok=ok)


def test_gate_budgets_leave_the_drill_and_its_recovery_out():
    p = plan(recovery_s=5)
    rec = Recorder(p)
    rec.start(T0)
    feed(rec, range(0, 10), ok=True)
    feed(rec, range(10, 20), ok=False, ms=900)  # the outage
    feed(rec, range(20, 25), ok=True, ms=400)  # recovering, inside the allowance
    feed(rec, range(25, 60), ok=True)
    figures = rec.figures()
    assert figures["window"]["seconds"] == 45  # 60 - (10 drill + 5 recovery)
    assert figures["requests"]["errors"] == 0 and figures["latency_ms"]["p99"] < 30
    assert figures["qps"]["target"] == 10 and figures["qps"]["held"] == 10
    window = rec.window(10, 20)
    assert window["requests"] == 100 and window["errors"] == 100 and window["error_rate"] == 1.0
    assert 890 <= window["max_ms_service"] <= 910


def test_recovery_time_and_judgement():
    p = plan(recovery_s=8)
    rec = Recorder(p)
    rec.start(T0)
    feed(rec, range(0, 10), ok=True)
    feed(rec, range(10, 20), ok=False)
    feed(rec, range(20, 26), ok=False)  # still failing 6 s after the drill
    feed(rec, range(26, 60), ok=True)
    ts = rec.figures()["timeseries"]
    # 5-s p99 windows: 25-29 holds errors' latency too (same 20 ms), so errors decide: back at 26
    assert recovery_time(p, 20.0, ts, 60.0) == 6
    (doc,) = judge_drills(p, rec.window, ts, 60.0)
    assert doc["ok"] and doc["recovered"] and doc["recovery_s"] == 6 and doc["recovery_budget_s"] == 8
    assert doc["error_rate"] == 1.0 and doc["for"] == 10 and doc["at"] == 10
    tight = plan(recovery_s=3)
    (late,) = judge_drills(tight, rec.window, ts, 60.0)
    assert not late["ok"] and "above the 3-s recovery budget" in late["reason"]


def test_slow_seconds_delay_recovery_and_never_recovering_is_said():
    p = plan()
    rec = Recorder(p)
    rec.start(T0)
    feed(rec, range(0, 20), ok=True)
    feed(rec, range(20, 30), ok=True, ms=800)  # errors gone, latency not
    feed(rec, range(30, 60), ok=True)
    ts = rec.figures()["timeseries"]
    assert recovery_time(p, 20.0, ts, 60.0) == 10
    assert recovery_time(p, 20.0, ts, 33.0) is None  # not 5 good seconds before the run ended
    (doc,) = judge_drills(p, rec.window, ts, 33.0)
    assert not doc["recovered"] and not doc["ok"] and "did not recover within the run" in doc["reason"]
    (cut,) = judge_drills(p, rec.window, ts, 15.0)
    assert not cut["ok"] and "before it was over" in cut["reason"]


def test_seconds_without_requests_are_no_evidence():
    p = plan()
    rec = Recorder(p)
    rec.start(T0)
    feed(rec, range(20, 22), ok=True)
    feed(rec, range(25, 28), ok=True)
    ts = rec.figures()["timeseries"]
    assert recovery_time(p, 20.0, ts, 60.0) == 0


def test_worker_deltas_carry_the_service_windows():
    p = plan()
    worker, master = Recorder(p), Recorder(p)
    worker.start(T0)
    master.start(T0)
    feed(worker, range(10, 12), ok=False, ms=700)
    master.merge(worker.take_delta())
    assert master.window(10, 20)["max_ms_service"] >= 690
    assert master.figures()["requests"]["count"] == 0  # all inside the drill's span
