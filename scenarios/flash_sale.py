"""Coupon flash sale: shoppers gather before the hour, then all claim a small stock at once.

Event: a "today's benefits" flash sale opens on the hour. Shoppers open the mini-program early,
log in and look at the coupon (`voucher.query`), then wait for the opening instant; at T0 everyone
taps "claim" together (`alipay.marketing.activity.voucher.send`). The stock is small, so most get
the sold-out answer, which is the normal outcome, not an error.

Traffic: a rendezvous. Visitors arriving during the `gather` stage wait until T0, the start of the
plan's first stage whose name starts with "open"; at T0 they all fire, and latecomers during the
open stage claim at once. Without a plan (plain `locust -f`), shoppers claim immediately.

Gated: latency (the burst at T0 is the point) and zero errors over the open stage; sold out
(BUDGET_NOT_ENOUGH_ERROR) and per-user limit (EXCEED_USER_LIMIT) count as expected outcomes; with
the mock, the audit proves no oversell and the reconciliation proves every voucher a shopper was
told about exists. Issued should equal the stock: check `audit.totals.vouchers` in summary.json.

Your own service: point `host` at it, set ACTIVITY_ID to your activity, and set EXPECTED to the
sub_codes your service answers for sold out / limit reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import gevent
from locust import task

from loadkit import plan_clock
from loadkit.platform.client import new_biz_no
from loadkit.platform.user import PlatformUser

ACTIVITY_ID = "FLASH-SALE"
EXPECTED = {"BUDGET_NOT_ENOUGH_ERROR": "sold_out", "EXCEED_USER_LIMIT": "user_limit"}
OPEN_STAGE_PREFIX = "open"


def plan_opening() -> float | None:
    """Epoch of T0: the start of the plan's first "open*" stage on the run's shared clock (the
    master's t0 on workers), so every worker releases its shoppers at the same instant."""
    clock = plan_clock()
    return clock.stage_start(OPEN_STAGE_PREFIX) if clock is not None else None


def wait_until(epoch: float | None) -> None:
    if epoch is not None:
        delay = epoch - time.time()
        if delay > 0:
            gevent.sleep(delay)


def claim(
    user: PlatformUser,
    opening: Callable[[], float | None] = plan_opening,
    *,
    activity_id: str = ACTIVITY_ID,
    expected: Mapping[str, str] = EXPECTED,
) -> None:
    """Log in, look at the coupon, wait for the opening, claim."""
    session = user.login(user.population.next())
    if session is None:
        return
    if user.platform.call("alipay.marketing.activity.voucher.query", {"activity_id": activity_id}) is None:
        return
    wait_until(opening())
    user.platform.call(
        "alipay.marketing.activity.voucher.send",
        {"activity_id": activity_id, "out_biz_no": new_biz_no("FS"), "user_id": session.user_id},
        expected=expected,
    )


class FlashSaleShopper(PlatformUser):
    population_shares = (0.8, 0.2, 0.0)

    @task
    def flash_claim(self) -> None:
        claim(self)
