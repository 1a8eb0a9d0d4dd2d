"""LoopProbe: how late the event loop wakes, per second of plan time, with CPU and free users."""

from __future__ import annotations

import time

import gevent
import pytest

from loadkit.engine.probe import LoopProbe
from loadkit.measure.histogram import LatencyHistogram


def lag_of(piece: dict) -> LatencyHistogram:
    return LatencyHistogram.from_sparse(piece["lag"])


def test_wake_ups_are_recorded_in_the_second_they_were_due():
    free = iter([5, 3, 4, 6, 7])
    probe = LoopProbe(free_users=lambda: next(free))
    probe.start(1000.0)
    probe.stop()  # recorded by hand below
    probe.record(1000.10, 1000.101)  # 1 ms late, second 0
    probe.record(1000.50, 1000.530)  # 30 ms late
    probe.record(1001.20, 1001.202)  # second 1 begins: second 0 is closed
    closed, under_way = probe.take()
    assert closed["s"] == 0 and closed["free_min"] == 3 and closed["cpu"] is not None
    assert lag_of(closed).count == 2 and lag_of(closed).max_ms == pytest.approx(30.0, rel=0.01)
    assert under_way["s"] == 1 and under_way["cpu"] is None and lag_of(under_way).count == 1
    probe.record(1001.40, 1001.401)
    probe.record(1002.00, 1002.001)
    rest, new = probe.take()
    assert rest["s"] == 1 and lag_of(rest).count == 1 and rest["free_min"] == 6 and rest["cpu"] is not None
    assert new["s"] == 2 and new["free_min"] == 7
    assert probe.take() == []  # nothing new since


def test_the_second_under_way_is_handed_over_in_pieces():
    probe = LoopProbe(free_users=lambda: None)
    probe.start(0.0)
    probe.stop()
    probe.record(5.1, 5.102)
    (first,) = probe.take()
    assert first == {"s": 5, "lag": first["lag"], "cpu": None, "cpu_wait": None, "free_min": None}
    assert lag_of(first).count == 1
    probe.record(5.2, 5.203)
    probe.record(6.0, 6.001)
    (rest,) = probe.take()[:1]
    assert rest["s"] == 5 and lag_of(rest).count == 1 and rest["cpu"] is not None  # the closing piece


def test_a_stall_counts_in_every_second_it_covered():
    probe = LoopProbe()
    probe.start(0.0)
    probe.stop()
    probe.record(0.9, 3.4)  # due at 0.9 s, woke 2.5 s later
    probe.record(3.5, 3.501)
    pieces = probe.take()
    by_second = {p["s"]: lag_of(p) for p in pieces}
    assert sorted(by_second) == [0, 1, 2, 3]
    assert by_second[0].max_ms == pytest.approx(2500, rel=0.01)
    assert by_second[1].max_ms == pytest.approx(2400, rel=0.01)  # a wake-up due at 1.0 s was 2.4 s late
    assert by_second[2].max_ms == pytest.approx(1400, rel=0.01)
    assert by_second[3].max_ms == pytest.approx(400, rel=0.01)


def test_the_running_probe_sees_a_blocked_loop():
    probe = LoopProbe(interval_s=0.01)
    probe.start(time.time())
    gevent.sleep(0.2)
    end = time.perf_counter() + 0.15
    while time.perf_counter() < end:  # holds the whole loop, as a saturated generator does
        pass
    gevent.sleep(0.1)
    probe.stop()
    lags = LatencyHistogram()
    for piece in probe.take():
        lags.add(lag_of(piece))
    assert lags.count >= 15  # ~100 wake-ups a second
    assert lags.max_ms >= 130
    assert lags.percentile_ms(50) < 10


def test_start_again_forgets_the_previous_test():
    probe = LoopProbe()
    probe.start(0.0)
    probe.stop()
    probe.record(0.5, 0.6)
    probe.start(100.0)
    probe.stop()
    assert probe.take() == []
