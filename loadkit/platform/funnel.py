"""Funnel drop-off and think times: what makes a journey look like people, not a loop.

Campaign funnels lose about 30% of users at each extra step (see a coupon, follow, claim), and
people pause between steps. Both are cheap and explicit so a scenario reads like its journey.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import gevent

DROP = 0.30


def proceed(step_index: int, drop: float = DROP, rng: random.Random | None = None) -> bool:
    """Whether a user goes on to step `step_index` (0 = the first step: always). Reaching step k
    has probability (1 - drop) ** k."""
    if step_index <= 0:
        return True
    return (rng or random).random() >= drop


def think(min_s: float, max_s: float | None = None) -> None:
    """Pause like a person between two steps (uniform in [min_s, max_s]), yielding to gevent."""
    delay = min_s if max_s is None else random.uniform(min_s, max_s)
    if delay > 0:
        gevent.sleep(delay)


class Funnel:
    """Steps run in order; before each step after the first, the user leaves with probability
    `drop`; a step returning False (e.g. its call failed) also ends the journey."""

    def __init__(
        self, *steps: Callable[[], object], drop: float = DROP, rng: random.Random | None = None
    ) -> None:
        if not steps:
            raise ValueError("a funnel needs at least one step")
        if not 0.0 <= drop < 1.0:
            raise ValueError(f"funnel drop must be in [0, 1), got {drop}")
        self.steps = steps
        self.drop = drop
        self.rng = rng

    def run(self) -> int:
        """Run the journey; return how many steps were completed."""
        done = 0
        for index, step in enumerate(self.steps):
            if not proceed(index, self.drop, self.rng) or step() is False:
                break
            done += 1
        return done
