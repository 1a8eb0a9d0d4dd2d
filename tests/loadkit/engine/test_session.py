"""RunSession.live(): no verdict before the gate window starts; journeys started reach the recorder."""

from __future__ import annotations

import time

import gevent
import pytest

from loadkit.engine.session import RunSession
from loadkit.plan import parse_plan
from loadkit.reports.progress import progress_line

PLAN = parse_plan(
    {
        "name": "event",
        "stages": [
            {"name": "warmup", "duration": "30s", "qps": 50},
            {"name": "hold", "duration": "60s", "qps": 100, "gate": True},
        ],
        "budgets": {"qps_min": 90, "endpoints": {"send": {"qps_min": 90}}},
    }
)


def session_at(elapsed_s: float) -> RunSession:
    """A local session whose plan time 0 was `elapsed_s` seconds ago, with 10 requests a second so far."""
    session = RunSession(PLAN)
    session.new_pacer()
    t0 = time.time() - elapsed_s
    session.begin(t0)
    for second in range(int(elapsed_s)):
        for k in range(10):
            session.recorder.record("send", t=t0 + second + k / 10, response_ms=5, ok=True)
    return session


def live_of(session: RunSession) -> dict:
    assert session.pacer is not None
    return session.live(session.pacer.counts(), session.generator(1))


def test_before_the_gate_live_gives_no_verdict_and_says_when_the_gate_starts() -> None:
    live = live_of(session_at(10))
    assert live["gate"]["started"] is False
    assert live["gate"]["starts_in_s"] == pytest.approx(20, abs=0.5)
    assert "verdict" not in live and "reasons" not in live
    # the figures so far still stand beside their limits (10 req/s is far below 90 in warm-up)
    checks = {c["name"]: c for c in live["checks"]}
    assert checks["send qps_min"]["observed"] == pytest.approx(10, abs=0.5)
    assert checks["send qps_min"]["limit"] == 90
    assert live["window"]["stages"] == ["warmup"]


def test_once_the_gate_has_started_live_judges_as_before() -> None:
    live = live_of(session_at(35))
    assert live["gate"] == {"started": True, "starts_in_s": 0.0}
    assert live["verdict"] == "fail" and live["window"]["stages"] == ["hold"]
    assert any("below the 90 QPS budget" in reason for reason in live["reasons"])


def test_a_run_aborted_before_the_gate_has_its_verdict() -> None:
    session = session_at(10)
    session.abort_reason = "error rate 25% above 20% for 5 s"
    live = live_of(session)
    assert live["gate"]["started"] is False
    assert live["verdict"] == "fail" and live["abort"] == {"reason": session.abort_reason}
    assert progress_line(live).endswith("| so far: fail")


def test_journeys_the_pacer_starts_are_counted_as_arrivals_held() -> None:
    session = session_at(0)
    assert session.pacer is not None
    takers = [gevent.spawn(session.pacer.take) for _ in range(5)]
    gevent.joinall(takers, timeout=2)
    live = live_of(session)
    assert session.pacer.sent == 5
    assert live["qps"]["arrivals_held"] > 0 and live["qps"]["held"] == 0.0


def test_the_live_snapshot_holds_what_a_dead_generator_would_leave(tmp_path) -> None:
    from loadkit.measure.summary import LIVE_NAME, read_snapshot

    session = session_at(40)
    session.report_dir = tmp_path
    session.host = "http://127.0.0.1:1"
    assert session.pacer is not None
    now = time.time()
    session.write_snapshot(session.pacer.counts(), session.generator(1), now=now)
    snapshot = read_snapshot(tmp_path)
    assert snapshot is not None and snapshot["written_at"] == now and snapshot["t0"] == session.t0
    evidence = snapshot["evidence"]
    assert evidence["requests"]["count"] == 100  # the 10 s of the gate that ran, 10 a second
    assert evidence["window"]["seconds"] == pytest.approx(10, abs=0.1) and "ending" not in evidence
    session.judged = True  # once judged, no more snapshots; the reports replace it
    session.write_snapshot(session.pacer.counts(), session.generator(1), now=now + 2)
    assert read_snapshot(tmp_path)["written_at"] == now
    session.drop_snapshot()
    assert not (tmp_path / LIVE_NAME).exists()
    session.drop_snapshot()  # twice is harmless


def test_the_generators_own_health_reaches_the_figures_and_the_series() -> None:
    session = session_at(3)
    assert session.pacer is not None
    takers = [gevent.spawn(session.pacer.take) for _ in range(3)]  # slots 3 s overdue, nobody free
    gevent.sleep(0.3)  # the probe measures
    session.collect_health("local")
    generator = session.generator(1, until=time.time())  # before the gate: the run so far
    (local,) = generator["processes"]
    assert local["name"] == "local" and local["paces"] and local["lag_p99_ms"] is not None
    assert generator["late"]["users"] + generator["late"]["generator"] == 3  # first tickets: the pool
    assert generator["unsent"]["users"] + generator["unsent"]["generator"] > 100
    evidence = session.evidence(session.pacer.counts(), generator, finished=time.time())
    series = evidence["timeseries"]
    assert len(series["lag_p99_ms"]) == len(series["t"]) == len(series["late_users"]) == 3
    assert sum(series["late_users"]) + sum(series["late_generator"]) > 100
    gevent.killall(takers, timeout=1)
