"""Mixed-link event: Jifenbao, flash sale, follow gift and red-envelope rain together.

Event: Alipay's pressure-test guide asks for mixed-link runs (混合压测) of at least 10 minutes before
an official event: all the event's journeys against the service at once, in their real
proportions, recording success rate, response time and resource use.

Traffic: one open stream of arrivals at the plan's rate, split by task weight: 60% Jifenbao channel
visits, 15% follow-gift funnels, 15% red-envelope players, 10% flash-sale shoppers. The flash sale
opens in rounds (every FLASH_ROUND_S seconds of the run, "on the hour" compressed): shoppers wait
for the next round, then claim together.

Gated: `points.send` QPS (the Jifenbao channel's requirement, scaled to its share), latency per
endpoint, error rate; with the mock, audit and reconciliation over every journey.

Your own service: as for each scenario (see their docstrings): point `host` at it and set the
activity / campaign / budget ids at the top of each scenario module.
"""

from __future__ import annotations

import math

import flash_sale
import follow_gift
import jifenbao
import red_envelope_rain
from locust import task

from loadkit import plan_clock
from loadkit.platform.user import PlatformUser

FLASH_ROUND_S = 10.0


def next_round(now: float | None = None) -> float | None:
    """The next flash-sale round on the run's shared clock; None (claim at once) without a plan or
    when no round is left before the plan ends."""
    clock = plan_clock()
    if clock is None:
        return None
    opening = math.ceil(clock.elapsed(now) / FLASH_ROUND_S) * FLASH_ROUND_S
    return clock.epoch(opening) if opening < clock.plan.duration_s else None


class EventVisitor(PlatformUser):
    """Task weights are the shares of arrivals: one paced arrival runs one weighted journey."""

    population_shares = (0.6, 0.3, 0.1)

    @task(60)
    def jifenbao_visit(self) -> None:
        jifenbao.visit(self)

    @task(15)
    def follow_gift(self) -> None:
        follow_gift.follow_and_claim(self)

    @task(15)
    def red_envelope_rain(self) -> None:
        red_envelope_rain.rain(self)

    @task(10)
    def flash_sale(self) -> None:
        flash_sale.claim(self, next_round)
