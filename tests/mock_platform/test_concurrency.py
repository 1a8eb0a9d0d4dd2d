"""Thousands of concurrent calls through the real gateway at a small stock or budget: the ledger
must never oversell, never exceed a per-user limit, and must replay a repeated out_biz_no with the
first answer, whatever order the requests arrive in."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

pytestmark = pytest.mark.timeout(60)

APP_ID = "2021000000000001"
CONNECTIONS = 300  # open sockets; every request is in flight at once from the client's side
BOUND_S = 15.0


def _form(method: str, biz: dict[str, Any]) -> dict[str, str]:
    return {
        "app_id": APP_ID,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2026-01-01 00:00:00",
        "version": "1.0",
        "biz_content": json.dumps(biz),
    }


async def _fire(url: str, method: str, bizs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST all calls at once; the `<method>_response` node of each answer, in request order."""
    node = method.replace(".", "_") + "_response"
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=BOUND_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(biz: dict[str, Any]) -> dict[str, Any]:
            async with session.post(url + "/gateway.do", data=_form(method, biz)) as resp:
                assert resp.status == 200
                return json.loads(await resp.read())[node]

        return await asyncio.gather(*(one(biz) for biz in bizs))


def _run(url: str, method: str, bizs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    started = time.monotonic()
    answers = asyncio.run(_fire(url, method, bizs))
    assert time.monotonic() - started < BOUND_S
    return answers


def _with_replays(rng: random.Random, originals: list[dict[str, Any]], share: float) -> list[dict[str, Any]]:
    """The originals plus `share` of them sent again (same parameters), all shuffled together."""
    calls = originals + [dict(rng.choice(originals)) for _ in range(int(len(originals) * share))]
    rng.shuffle(calls)
    return calls


def _users(n: int) -> list[str]:
    return [f"2088{700_000_000_000 + i:012d}" for i in range(n)]


def _audit_ok(mock: Any) -> dict[str, Any]:
    status, audit = mock.admin("GET", "/admin/audit")
    assert status == 200 and audit["ok"], audit["violations"]
    return audit["totals"]


def _group(answers: list[dict[str, Any]], calls: list[dict[str, Any]], key: str, id_field: str) -> dict:
    """out_biz_no -> set of ids its successful answers carried (replays must all agree)."""
    ids: dict[str, set[str]] = defaultdict(set)
    for biz, answer in zip(calls, answers, strict=True):
        if answer["code"] == "10000":
            ids[biz[key]].add(answer[id_field])
    return ids


def test_voucher_sends_never_oversell_nor_exceed_the_user_limit(make_mock: Any) -> None:
    stock, limit = 60, 2
    mock = make_mock(
        {
            "seed": {
                "activities": [
                    {
                        "activity_id": "ACT-RUSH",
                        "quantity": stock,
                        "quantity_limit_per_user": limit,
                        "amount": "5.00",
                        "publish_start_time": "2020-01-01 00:00:00",
                        "publish_end_time": "2099-01-01 00:00:00",
                    }
                ]
            }
        }
    )
    rng = random.Random(1)
    users = _users(300)
    originals = [
        {"activity_id": "ACT-RUSH", "out_biz_no": f"rush-{i}", "user_id": rng.choice(users)}
        for i in range(2400)
    ]
    calls = _with_replays(rng, originals, 0.25)
    answers = _run(mock.url, "alipay.marketing.activity.voucher.send", calls)

    outcomes = {(a["code"], a.get("sub_code")) for a in answers}
    assert outcomes <= {("10000", None), ("40004", "BUDGET_NOT_ENOUGH_ERROR"), ("40004", "EXCEED_USER_LIMIT")}
    ids = _group(answers, calls, "out_biz_no", "voucher_id")
    assert all(len(v) == 1 for v in ids.values()), "a replayed out_biz_no got a different voucher_id"
    vouchers = {next(iter(v)) for v in ids.values()}
    assert len(vouchers) == stock, "exactly the stock must be issued"
    per_user: dict[str, set[str]] = defaultdict(set)
    for biz, answer in zip(calls, answers, strict=True):
        if answer["code"] == "10000":
            per_user[biz["user_id"]].add(answer["voucher_id"])
    assert max(len(v) for v in per_user.values()) <= limit
    replays_served = sum(a["code"] == "10000" for a in answers) - stock
    assert replays_served > 0, "the test must exercise replays of successful sends"
    totals = _audit_ok(mock)
    assert totals["vouchers"]["ACT-RUSH"] == {"stock": stock, "issued": stock}


def test_cash_triggers_never_pay_more_than_the_budget(make_mock: Any) -> None:
    mock = make_mock(
        {
            "seed": {
                "cash_campaigns": [
                    {
                        "crowd_no": "CROWD-RUSH",
                        "coupon_name": "rush",
                        "prize_type": "random",
                        "total_money": "60.00",
                        "total_num": 150,
                        "send_freqency": "L2",
                        "start_time": "NowTime",
                        "end_time": "2099-01-01 00:00:00",
                    }
                ]
            }
        }
    )
    rng = random.Random(2)
    users = _users(500)
    originals = [
        {"crowd_no": "CROWD-RUSH", "out_biz_no": f"cash-{i}", "user_id": rng.choice(users)}
        for i in range(2400)
    ]
    calls = _with_replays(rng, originals, 0.25)
    answers = _run(mock.url, "alipay.marketing.campaign.cash.trigger", calls)

    outcomes = {(a["code"], a.get("sub_code")) for a in answers}
    assert outcomes <= {
        ("10000", None),
        ("40004", "CASH_CAMP_BUDGET_INSUFFICIENT"),
        ("40004", "EXCEED_TRIGGER_LIMIT"),
    }
    ids = _group(answers, calls, "out_biz_no", "biz_no")
    assert all(len(v) == 1 for v in ids.values()), "a replayed out_biz_no got a different biz_no"
    prizes: dict[str, Decimal] = {}
    per_user: dict[str, set[str]] = defaultdict(set)
    for biz, answer in zip(calls, answers, strict=True):
        if answer["code"] == "10000":
            prizes[answer["biz_no"]] = Decimal(answer["prize_amount"])
            per_user[biz["user_id"]].add(answer["biz_no"])
    paid = sum(prizes.values(), Decimal(0))
    assert paid <= Decimal("60.00") and len(prizes) <= 150
    assert paid >= Decimal("59.00") or len(prizes) == 150, "demand far exceeds the budget: it must run out"
    assert max(len(v) for v in per_user.values()) <= 2
    assert len({p for p in prizes.values()}) > 1, "random prizes"
    totals = _audit_ok(mock)
    assert totals["cash"]["CROWD-RUSH"]["paid_fen"] == int(paid * 100)
    assert totals["cash"]["CROWD-RUSH"]["count"] == len(prizes)


def test_points_sends_never_exceed_the_budget(make_mock: Any) -> None:
    budget = 20_000
    mock = make_mock({"seed": {"point_budgets": [{"budget_code": "JFB-RUSH", "total_amount": budget}]}})
    rng = random.Random(3)
    users = _users(800)
    originals = [
        {
            "budget_code": "JFB-RUSH",
            "partner_biz_no": f"pts-{i}",
            "point_amount": rng.randint(10, 200),
            "user_id": rng.choice(users),
        }
        for i in range(2400)
    ]
    calls = _with_replays(rng, originals, 0.25)
    answers = _run(mock.url, "alipay.user.alipaypoint.send", calls)

    outcomes = {(a["code"], a.get("sub_code")) for a in answers}
    assert outcomes <= {("10000", None), ("40004", "BUDGET_NOT_ENOUGH")}
    ids = _group(answers, calls, "partner_biz_no", "record_id")
    assert all(len(v) == 1 for v in ids.values()), "a replayed partner_biz_no got a different record_id"
    amount_of = {biz["partner_biz_no"]: biz["point_amount"] for biz in originals}
    sent = sum(amount_of[key] for key in ids)
    assert budget - 200 < sent <= budget
    totals = _audit_ok(mock)
    assert totals["points"]["JFB-RUSH"] == {"budget": budget, "sent": sent}
    _, query = mock.gateway("alipay.user.alipaypoint.budgetlib.query", {"budget_code": "JFB-RUSH"})
    assert int(query["remain_amount"]) == budget - sent
