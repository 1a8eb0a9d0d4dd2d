"""Jifenbao points: alipay.user.alipaypoint.send and alipay.user.alipaypoint.budgetlib.query.

send is idempotent on partner_biz_no per app (100 points = 1 yuan; amounts are integers).
"""

from __future__ import annotations

from typing import Any

from mock_platform.fields import MAX_POINTS, Reader, format_time
from mock_platform.ledger import Ledger
from mock_platform.methods._common import Call, check_window, grant, remember, replay, require_user
from mock_platform.model import PointBudget

POINTS_SEND = "alipay.user.alipaypoint.send"
BUDGET_QUERY = "alipay.user.alipaypoint.budgetlib.query"


def _budget(ledger: Ledger, r: Reader) -> PointBudget:
    budget = ledger.budgets.get(r.text("budget_code"))
    if budget is None:
        raise ledger.codes.error("unknown_budget")
    return budget


def points_send(ledger: Ledger, call: Call) -> dict[str, Any]:
    r = Reader(call.biz)
    partner_biz_no = r.text("partner_biz_no")
    amount = r.integer("point_amount", 1, MAX_POINTS)
    r.opt_text("memo", max_len=256)
    user = require_user(ledger, r)
    budget = _budget(ledger, r)
    scope = (POINTS_SEND, call.app_id)
    fingerprint = (budget.budget_code, user.user_id, amount)
    prior = replay(ledger, call, scope, partner_biz_no, fingerprint)
    if prior is not None:
        return prior
    if not budget.enabled:
        raise ledger.codes.error("budget_disabled")
    check_window(ledger, budget.start, budget.end, call.now)
    outcome = budget.spend(amount)
    if outcome is not None:
        raise ledger.codes.error(outcome)
    result = {"record_id": ledger.new_id("PNT"), "transaction_id": ledger.new_id("TXN")}
    grant(
        ledger, call, partner_biz_no, user.user_id, budget.budget_code, amount, "points", result["record_id"]
    )
    return remember(ledger, call, scope, partner_biz_no, fingerprint, result)


def budget_query(ledger: Ledger, call: Call) -> dict[str, Any]:
    budget = _budget(ledger, Reader(call.biz))
    out: dict[str, Any] = {
        "budget_code": budget.budget_code,
        "budget_desc": budget.budget_desc,
        "enabled": budget.enabled,
        "remain_amount": budget.total - budget.sent,
        "cumulative_amount": budget.sent,
    }
    if budget.start is not None:
        out["start_time"] = format_time(budget.start)
    if budget.end is not None:
        out["end_time"] = format_time(budget.end)
    return out


HANDLERS = {POINTS_SEND: points_send, BUDGET_QUERY: budget_query}
