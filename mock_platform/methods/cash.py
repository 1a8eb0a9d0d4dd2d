"""Cash red envelopes: alipay.marketing.campaign.cash.create / trigger.

A campaign is active as soon as it is created (no funding step). trigger is idempotent on
out_biz_no within a campaign; random prizes never make the money paid exceed total_money.
"""

from __future__ import annotations

from typing import Any

from mock_platform.fields import Reader, fen_to_yuan
from mock_platform.ledger import Ledger
from mock_platform.methods._common import Call, check_window, grant, remember, replay, require_user
from mock_platform.model import CashCampaign

CASH_CREATE = "alipay.marketing.campaign.cash.create"
CASH_TRIGGER = "alipay.marketing.campaign.cash.trigger"
MAX_SPAN_S = 183 * 86400  # "end_time at most 6 months"


def cash_create(ledger: Ledger, call: Call) -> dict[str, Any]:
    campaign = CashCampaign.from_fields(Reader(call.biz), "", call.now, max_span_s=MAX_SPAN_S)
    campaign.crowd_no = ledger.new_id("CRW")
    ledger.campaigns[campaign.crowd_no] = campaign
    ledger.method_stats(call.method).effects += 1
    return {"crowd_no": campaign.crowd_no, "origin_crowd_no": campaign.crowd_no, "pay_url": ""}


def cash_trigger(ledger: Ledger, call: Call) -> dict[str, Any]:
    r = Reader(call.biz)
    crowd_no = r.text("crowd_no")
    out_biz_no = r.text("out_biz_no")
    user = require_user(ledger, r)
    order_fen = r.opt_money("order_price", 20, 20_000)
    campaign = ledger.campaigns.get(crowd_no)
    if campaign is None:
        raise ledger.codes.error("unknown_campaign")
    scope = (CASH_TRIGGER, crowd_no)
    fingerprint = (user.user_id, order_fen)
    prior = replay(ledger, call, scope, out_biz_no, fingerprint)
    if prior is not None:
        return prior
    check_window(ledger, campaign.start, campaign.end, call.now)
    prize, outcome = campaign.take(user.user_id, call.now, order_fen, ledger.rng)
    if outcome is not None:
        raise ledger.codes.error(outcome)
    result = {
        "trigger_result": "true",
        "prize_amount": fen_to_yuan(prize),
        "repeat_trigger_flag": "false",
        "biz_no": ledger.new_id("CASH"),
        "out_biz_no": out_biz_no,
        "coupon_name": campaign.coupon_name,
        "prize_msg": campaign.prize_msg,
    }
    grant(ledger, call, out_biz_no, user.user_id, crowd_no, prize, "fen", result["biz_no"])
    return remember(ledger, call, scope, out_biz_no, fingerprint, result)


HANDLERS = {CASH_CREATE: cash_create, CASH_TRIGGER: cash_trigger}
