"""Red-envelope rain: bursts of taps on falling red envelopes, paid from a fixed money budget.

Event: during a "red-envelope rain" the screen fills with envelopes for a few seconds; every tap is
a cash trigger (`alipay.marketing.campaign.cash.trigger`) paying a random prize (0.5-1.5x the
average) out of the campaign's fixed budget, until the money or the prize count runs out.

Traffic: bursts. The plan alternates short `rain` stages at a high arrival rate with quiet `lull`
stages; each arrival is a player who logs in (or reuses a session) and taps 1-3 envelopes in quick
succession, each tap with its own out_biz_no.

Gated: latency and error rate over the waves; budget exhausted (CASH_CAMP_BUDGET_INSUFFICIENT) and
the per-user frequency limit (EXCEED_TRIGGER_LIMIT) are expected outcomes; with the mock, the audit
proves the money paid never exceeds the budget and the reconciliation matches prizes seen vs paid.

Your own service: point `host` at it, set CROWD_NO to your campaign and EXPECTED to the sub_codes
your service answers when the budget or a player's limit is reached.
"""

from __future__ import annotations

import random

from locust import task

from loadkit.platform.client import new_biz_no
from loadkit.platform.funnel import think
from loadkit.platform.user import PlatformUser

CROWD_NO = "RAIN-CAMPAIGN"
EXPECTED = {"CASH_CAMP_BUDGET_INSUFFICIENT": "budget_exhausted", "EXCEED_TRIGGER_LIMIT": "trigger_limit"}
TAPS = (1, 3)
TAP_GAP_S = (0.05, 0.3)


def rain(user: PlatformUser) -> None:
    """A player's turn in the rain: tap 1-3 envelopes."""
    session = user.login(user.population.next())
    if session is None:
        return
    for tap in range(random.randint(*TAPS)):
        if tap:
            think(*TAP_GAP_S)
        node = user.platform.call(
            "alipay.marketing.campaign.cash.trigger",
            {"crowd_no": CROWD_NO, "user_id": session.user_id, "out_biz_no": new_biz_no("RAIN")},
            expected=EXPECTED,
        )
        if node is None or node.get("sub_code"):
            return  # an error, or no more prizes for this player


class RainPlayer(PlatformUser):
    population_shares = (0.5, 0.4, 0.1)

    @task
    def tap_envelopes(self) -> None:
        rain(self)
