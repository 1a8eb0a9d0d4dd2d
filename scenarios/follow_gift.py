"""Follow-to-get-a-coupon: see the coupon, follow the life account, receive the voucher.

Event: a life-account (生活号) campaign: the mini-program shows a coupon, asks the visitor to follow
the merchant's life account, checks the follow (`alipay.open.public.user.follow.query`) and sends
the voucher (`alipay.marketing.activity.voucher.send`).

Traffic: a funnel at the plan's arrival rate, each extra step losing ~30% of visitors (see ->
follow -> claim), with think times between steps. Following is what the phone does: the mock's
client simulator (`POST /sim/follow`, request name "follow.sim"). Returning visitors who already
claimed get the per-user limit answer, an expected outcome.

Gated: latency per endpoint and error rate over the hold stage; expected outcomes are the per-user
limit (EXCEED_USER_LIMIT) and sold out (BUDGET_NOT_ENOUGH_ERROR); with the mock, audit and
reconciliation of vouchers seen vs issued.

Your own service: point `host` at it; replace `follow()` with the call your front end makes after
the follow event (there is no /sim/ on a real service), and set ACTIVITY_ID / EXPECTED.
"""

from __future__ import annotations

from locust import task

from loadkit.platform.client import new_biz_no
from loadkit.platform.funnel import Funnel, think
from loadkit.platform.user import PlatformUser

ACTIVITY_ID = "FOLLOW-GIFT"
EXPECTED = {"EXCEED_USER_LIMIT": "already_claimed", "BUDGET_NOT_ENOUGH_ERROR": "sold_out"}
THINK_S = (0.2, 0.6)


def follow_and_claim(user: PlatformUser) -> int:
    """The funnel; returns how many steps the visitor completed."""
    session = user.login(user.population.next())
    if session is None:
        return 0
    uid = session.user_id

    def see_coupon() -> bool:
        return (
            user.platform.call("alipay.marketing.activity.voucher.query", {"activity_id": ACTIVITY_ID})
            is not None
        )

    def follow() -> bool:
        think(*THINK_S)
        if user.platform.sim("/sim/follow", {"user_id": uid}, name="follow.sim") is None:
            return False
        node = user.platform.call("alipay.open.public.user.follow.query", {"user_id": uid})
        return node is not None and node.get("is_follow") == "T"

    def receive() -> bool:
        think(*THINK_S)
        node = user.platform.call(
            "alipay.marketing.activity.voucher.send",
            {"activity_id": ACTIVITY_ID, "out_biz_no": new_biz_no("FG"), "user_id": uid},
            expected=EXPECTED,
        )
        return node is not None

    return Funnel(see_coupon, follow, receive).run()


class FollowGiftVisitor(PlatformUser):
    population_shares = (0.6, 0.3, 0.1)

    @task
    def follow_gift(self) -> None:
        follow_and_claim(self)
