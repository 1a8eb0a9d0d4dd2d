"""Funnel drop-off rates and think times."""

from __future__ import annotations

import random
import time

import pytest

from loadkit.platform.funnel import Funnel, proceed, think


def test_first_step_always_proceeds():
    rng = random.Random(1)
    assert all(proceed(0, 0.9, rng) for _ in range(1000))


def test_each_extra_step_loses_about_thirty_percent():
    rng = random.Random(2)
    reached = [0, 0, 0, 0]
    calls = [0, 0, 0]
    steps = [(lambda i=i: calls.__setitem__(i, calls[i] + 1)) for i in range(3)]
    funnel = Funnel(*steps, drop=0.3, rng=rng)
    for _ in range(20_000):
        reached[funnel.run()] += 1
    n = 20_000
    # completed k steps: P(k=1)=0.3, P(k=2)=0.7*0.3, P(k=3)=0.49
    assert reached[0] == 0
    assert abs(reached[1] / n - 0.30) < 0.015
    assert abs(reached[2] / n - 0.21) < 0.015
    assert abs(reached[3] / n - 0.49) < 0.015
    assert calls[0] == n and abs(calls[1] / n - 0.7) < 0.015 and abs(calls[2] / n - 0.49) < 0.015


def test_a_failed_step_ends_the_journey():
    called = []
    funnel = Funnel(lambda: called.append(1), lambda: False, lambda: called.append(3), drop=0.0)
    assert funnel.run() == 1
    assert called == [1]


def test_bad_funnels_are_refused():
    with pytest.raises(ValueError, match="at least one step"):
        Funnel()
    with pytest.raises(ValueError, match="drop"):
        Funnel(lambda: None, drop=1.0)


def test_think_sleeps_within_bounds():
    start = time.perf_counter()
    think(0.05, 0.1)
    elapsed = time.perf_counter() - start
    assert 0.045 <= elapsed < 0.5
    start = time.perf_counter()
    think(0)
    assert time.perf_counter() - start < 0.05
