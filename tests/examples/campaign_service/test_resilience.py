"""Breaker, bulkhead and backoff, on a fake clock."""

from __future__ import annotations

import random

from campaign_service.resilience import Breaker, BreakerState, Bulkhead, backoff_s


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_then_probes_once() -> None:
    clock, changes = Clock(), []
    breaker = Breaker(3, 5.0, clock=clock, on_change=changes.append)
    for _ in range(2):
        assert breaker.allow() is None
        breaker.record(failed=True)
    assert breaker.allow() is None
    breaker.record(failed=False)  # a success resets the count
    for _ in range(3):
        assert breaker.allow() is None
        breaker.record(failed=True)
    assert breaker.state is BreakerState.OPEN
    assert breaker.allow() == 5.0
    clock.now += 4.0
    assert breaker.allow() == 1.0
    clock.now += 1.0
    assert breaker.allow() is None  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() is not None  # only one probe at a time
    breaker.record(failed=True)  # the probe failed: open again for a full cool-down
    assert breaker.state is BreakerState.OPEN and breaker.allow() == 5.0
    clock.now += 5.0
    assert breaker.allow() is None
    breaker.record(failed=False)
    assert breaker.state is BreakerState.CLOSED and breaker.allow() is None
    assert changes == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


def test_a_cancelled_probe_lets_the_next_one_through() -> None:
    clock = Clock()
    breaker = Breaker(1, 1.0, clock=clock)
    breaker.allow()
    breaker.record(failed=True)
    clock.now += 1.0
    assert breaker.allow() is None
    breaker.record(failed=None)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() is None


def test_bulkhead_refuses_past_its_limit() -> None:
    bulkhead = Bulkhead(2)
    assert bulkhead.try_acquire() and bulkhead.try_acquire()
    assert not bulkhead.try_acquire()
    bulkhead.release()
    assert bulkhead.try_acquire()


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    for retry, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)):
        pauses = [backoff_s(retry, 0.1, 0.5, rng) for _ in range(200)]
        assert all(ceiling / 2 <= p <= ceiling for p in pauses)
        assert max(pauses) - min(pauses) > ceiling / 4  # jittered
