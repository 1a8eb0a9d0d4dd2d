"""Voucher activities: alipay.marketing.activity.voucher.create / send / query.

create is idempotent on out_biz_no per app; send on out_biz_no per activity. Creation takes
effect at once (the platform acknowledges it and confirms later by message).
"""

from __future__ import annotations

from typing import Any

from mock_platform.fields import MAX_MONEY_FEN, Reader, format_time, window
from mock_platform.ledger import Ledger
from mock_platform.methods._common import Call, check_window, grant, remember, replay, require_user
from mock_platform.model import Activity

VOUCHER_CREATE = "alipay.marketing.activity.voucher.create"
VOUCHER_SEND = "alipay.marketing.activity.voucher.send"
VOUCHER_QUERY = "alipay.marketing.activity.voucher.query"
MAX_QUANTITY = 99_999_999


def _accept_sdk_model(biz: dict[str, Any]) -> dict[str, Any]:
    """The official SDK's create model names things differently from the API docs: the rule is
    `voucher_send_rule` with `voucher_quantity` / `voucher_quantity_limit_per_user`, the publish
    window sits at the top level and a fixed amount under `voucher_deduct_info.fix_voucher_info`.
    Map that shape onto the documented one."""
    rule = biz.get("voucher_send_rule")
    deduct = biz.get("voucher_deduct_info")
    out = dict(biz)
    if "voucher_send_rule_info" not in biz and isinstance(rule, dict):
        rule = dict(rule)
        for sdk_key, key in (
            ("voucher_quantity", "quantity"),
            ("voucher_quantity_limit_per_user", "quantity_limit_per_user"),
        ):
            if sdk_key in rule and key not in rule:
                rule[key] = rule.pop(sdk_key)
        for key in ("publish_start_time", "publish_end_time"):
            if key in biz and key not in rule:
                rule[key] = biz[key]
        out["voucher_send_rule_info"] = rule
    if (
        isinstance(deduct, dict)
        and "amount" not in deduct
        and isinstance(deduct.get("fix_voucher_info"), dict)
    ):
        out["voucher_deduct_info"] = {**deduct, "amount": deduct["fix_voucher_info"].get("amount")}
    return out


def voucher_create(ledger: Ledger, call: Call) -> dict[str, Any]:
    r = Reader(_accept_sdk_model(call.biz))
    out_biz_no = r.text("out_biz_no")
    name = r.text("activity_name", max_len=64)
    rule = r.obj("voucher_send_rule_info")
    quantity = rule.integer("quantity", 1, MAX_QUANTITY)
    limit = rule.opt_integer("quantity_limit_per_user", 0, MAX_QUANTITY) or 0
    start, end = window(rule, "publish_start_time", "publish_end_time", call.now)
    amount = r.obj("voucher_deduct_info").money("amount", 1, MAX_MONEY_FEN)
    raw_times = (str(rule.data["publish_start_time"]), str(rule.data["publish_end_time"]))
    fingerprint = (name, quantity, limit, *raw_times, amount)
    scope = (VOUCHER_CREATE, call.app_id)
    prior = replay(ledger, call, scope, out_biz_no, fingerprint)
    if prior is not None:
        return prior
    activity = Activity(ledger.new_id("ACT"), name, quantity, limit, amount, start, end)
    ledger.activities[activity.activity_id] = activity
    return remember(ledger, call, scope, out_biz_no, fingerprint, {"activity_id": activity.activity_id})


def voucher_send(ledger: Ledger, call: Call) -> dict[str, Any]:
    r = Reader(call.biz)
    activity_id = r.text("activity_id")
    out_biz_no = r.text("out_biz_no")
    user = require_user(ledger, r)
    activity = ledger.activities.get(activity_id)
    if activity is None:
        raise ledger.codes.error("unknown_activity")
    scope = (VOUCHER_SEND, activity_id)
    fingerprint = (user.user_id,)
    prior = replay(ledger, call, scope, out_biz_no, fingerprint)
    if prior is not None:
        return prior
    check_window(ledger, activity.start, activity.end, call.now)
    outcome = activity.take(user.user_id)
    if outcome is not None:
        raise ledger.codes.error(outcome)
    voucher_id = ledger.new_id("VCH")
    grant(ledger, call, out_biz_no, user.user_id, activity_id, 1, "voucher", voucher_id)
    return remember(ledger, call, scope, out_biz_no, fingerprint, {"voucher_id": voucher_id})


def voucher_query(ledger: Ledger, call: Call) -> dict[str, Any]:
    activity = ledger.activities.get(Reader(call.biz).text("activity_id"))
    if activity is None:
        raise ledger.codes.error("unknown_activity")
    if call.now < activity.start:
        status = "INIT"
    elif call.now >= activity.end:
        status = "EXPIRED"
    else:
        status = "ACTIVE"
    return {
        "activity_id": activity.activity_id,
        "activity_name": activity.activity_name,
        "activity_status": status,
        "voucher_send_rule_info": {
            "quantity": activity.quantity,
            "quantity_limit_per_user": activity.limit_per_user,
            "publish_start_time": format_time(activity.start),
            "publish_end_time": format_time(activity.end),
        },
        "voucher_inventory_info": {"send_count": activity.issued, "use_count": 0},
    }


HANDLERS = {VOUCHER_CREATE: voucher_create, VOUCHER_SEND: voucher_send, VOUCHER_QUERY: voucher_query}
