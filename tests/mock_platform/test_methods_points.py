"""alipay.user.alipaypoint.send and alipay.user.alipaypoint.budgetlib.query."""

from __future__ import annotations

from datetime import datetime

import pytest

from mock_platform.errors import GatewayError
from mock_platform.fields import CN_TZ
from mock_platform.ledger import Ledger
from mock_platform.methods import METHODS, Call

APP = "2021000000000001"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=CN_TZ).timestamp()
SEND = "alipay.user.alipaypoint.send"
QUERY = "alipay.user.alipaypoint.budgetlib.query"
U1, U2 = "2088000000000001", "2088000000000002"


def call(ledger: Ledger, method: str, biz: dict, now: float = NOW, app: str = APP) -> dict:
    return METHODS[method](ledger, Call(app, method, {}, biz, now))


def fails(ledger: Ledger, method: str, biz: dict, now: float = NOW) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        call(ledger, method, biz, now)
    return info.value


def send_biz(key: str = "P1", amount: object = 100, user: str = U1, budget: str = "JFB1") -> dict:
    return {
        "budget_code": budget,
        "partner_biz_no": key,
        "point_amount": amount,
        "user_id": user,
        "memo": "hi",
    }


@pytest.fixture
def ledger() -> Ledger:
    ledger = Ledger()
    ledger.seed(
        {
            "point_budgets": [
                {
                    "budget_code": "JFB1",
                    "total_amount": 1000,
                    "start_time": "2026-05-01 00:00:00",
                    "end_time": "2026-07-01 00:00:00",
                    "budget_desc": "june",
                },
                {"budget_code": "OFF", "total_amount": 1000, "enabled": False},
            ]
        },
        now=NOW,
    )
    return ledger


def test_send_and_query(ledger: Ledger) -> None:
    out = call(ledger, SEND, send_biz(amount="250"))
    assert out["record_id"] and out["transaction_id"] and out["record_id"] != out["transaction_id"]
    q = call(ledger, QUERY, {"budget_code": "JFB1"})
    assert q == {
        "budget_code": "JFB1",
        "budget_desc": "june",
        "enabled": True,
        "remain_amount": 750,
        "cumulative_amount": 250,
        "start_time": "2026-05-01 00:00:00",
        "end_time": "2026-07-01 00:00:00",
    }


def test_replay_conflict_and_exhaustion(ledger: Ledger) -> None:
    first = call(ledger, SEND, send_biz("P1", 600))
    assert call(ledger, SEND, send_biz("P1", 600)) is first
    assert fails(ledger, SEND, send_biz("P1", 601)).sub_code == "IDEMPOTENT_PARAM_CONFLICT"
    err = fails(ledger, SEND, send_biz("P2", 401))
    assert (err.code, err.sub_code) == ("40004", "BUDGET_NOT_ENOUGH")
    call(ledger, SEND, send_biz("P2", 400))  # not remembered after the failure: may succeed now
    assert ledger.budgets["JFB1"].sent == 1000
    stats = ledger.stats[SEND]
    assert (stats.ok, stats.effects, stats.replays, stats.business_failures) == (3, 2, 1, 2)
    assert ledger.audit()["totals"]["points"]["JFB1"] == {"budget": 1000, "sent": 1000}


def test_scope_is_per_app(ledger: Ledger) -> None:
    call(ledger, SEND, send_biz("P1", 10))
    call(ledger, SEND, send_biz("P1", 10), app="2021000000000002")
    assert ledger.budgets["JFB1"].sent == 20


def test_budget_outcomes(ledger: Ledger) -> None:
    assert fails(ledger, SEND, send_biz(budget="NOPE")).sub_code == "BUDGET_NOT_EXIST"
    assert fails(ledger, QUERY, {"budget_code": "NOPE"}).sub_code == "BUDGET_NOT_EXIST"
    assert fails(ledger, SEND, send_biz(budget="OFF")).sub_code == "BUDGET_DISABLED"
    early = datetime(2026, 4, 1, tzinfo=CN_TZ).timestamp()
    late = datetime(2026, 7, 1, tzinfo=CN_TZ).timestamp()
    assert fails(ledger, SEND, send_biz(), early).sub_code == "ACTIVITY_NOT_START"
    assert fails(ledger, SEND, send_biz(), late).sub_code == "ACTIVITY_EXPIRED"
    assert call(ledger, QUERY, {"budget_code": "OFF"})["enabled"] is False


def test_send_by_open_id(ledger: Ledger) -> None:
    open_id = ledger.user(U2).open_id
    biz = send_biz()
    del biz["user_id"]
    biz["open_id"] = open_id
    call(ledger, SEND, biz)
    assert ledger.budgets["JFB1"].sent == 100


@pytest.mark.parametrize("amount", [0, -5, 10**9 + 1, "abc", "1e3", 1.5, True, [], {"a": 1}, "９９"])
def test_bad_amounts_are_invalid_parameters(ledger: Ledger, amount: object) -> None:
    err = fails(ledger, SEND, send_biz(amount=amount))
    assert (err.code, err.sub_code) == ("40002", "isv.invalid-parameter")
    assert "point_amount" in (err.sub_msg or "")
    assert ledger.budgets["JFB1"].sent == 0


@pytest.mark.parametrize("field", ["budget_code", "partner_biz_no", "point_amount"])
def test_missing_fields(ledger: Ledger, field: str) -> None:
    biz = send_biz()
    del biz[field]
    err = fails(ledger, SEND, biz)
    assert (err.code, err.sub_code) == ("40001", "isv.missing-parameter")
    assert field in (err.sub_msg or "")


def test_memo_too_long(ledger: Ledger) -> None:
    biz = send_biz()
    biz["memo"] = "x" * 257
    assert "memo" in (fails(ledger, SEND, biz).sub_msg or "")
