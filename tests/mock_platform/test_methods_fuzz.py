"""Junk in biz_content or params never raises anything but GatewayError (WeChatError for WeChat).

A seeded random generator mutates valid requests field by field (hypothesis is not installed), so
the junk reaches past the first check into the business logic.
"""

from __future__ import annotations

import random

from mock_platform.errors import GatewayError, WeChatError
from mock_platform.ledger import Ledger
from mock_platform.methods import METHODS, WECHAT, Call
from mock_platform.methods.wechat import CODE2SESSION, SEND_COUPON


def code2session(ledger: Ledger, appid: object, secret: object, js_code: object, now: float) -> dict:
    query = {"appid": appid, "secret": secret, "js_code": js_code, "grant_type": "authorization_code"}
    params = {k: v for k, v in query.items() if v is not None}
    return WECHAT[CODE2SESSION](ledger, Call("", CODE2SESSION, params, {}, now))  # type: ignore[arg-type]


def send_coupon(ledger: Ledger, openid: str, body: object, now: float) -> dict:
    return WECHAT[SEND_COUPON](ledger, Call("", SEND_COUPON, {"openid": openid}, body, now))  # type: ignore[arg-type]


NOW = 1_780_000_000.0
U1 = "2088000000000001"
SEED = {
    "activities": [
        {
            "activity_id": "ACT1",
            "quantity": 50,
            "quantity_limit_per_user": 2,
            "amount": "5.00",
            "publish_start_time": "2026-01-01 00:00:00",
            "publish_end_time": "2027-01-01 00:00:00",
        }
    ],
    "cash_campaigns": [
        {
            "crowd_no": "CROWD1",
            "coupon_name": "rain",
            "prize_type": "random",
            "total_money": "100.00",
            "total_num": 40,
            "send_freqency": "D3|L10",
            "start_time": "2026-01-01 00:00:00",
            "end_time": "2027-01-01 00:00:00",
        }
    ],
    "point_budgets": [{"budget_code": "JFB1", "total_amount": 100000}],
    "wechat": {"stocks": [{"stock_id": "9856000", "max_coupons": 50}]},
}
VALID = {
    "alipay.system.oauth.token": {},
    "alipay.user.info.share": {},
    "alipay.open.public.user.follow.query": {"user_id": U1},
    "alipay.marketing.activity.voucher.create": {
        "out_biz_no": "C1",
        "activity_name": "n",
        "voucher_send_rule_info": {
            "quantity": 10,
            "quantity_limit_per_user": 1,
            "publish_start_time": "2026-01-01 00:00:00",
            "publish_end_time": "2027-01-01 00:00:00",
        },
        "voucher_deduct_info": {"amount": "1.00"},
    },
    "alipay.marketing.activity.voucher.send": {"activity_id": "ACT1", "out_biz_no": "S1", "user_id": U1},
    "alipay.marketing.activity.voucher.query": {"activity_id": "ACT1"},
    "alipay.marketing.campaign.cash.create": {
        "coupon_name": "c",
        "prize_type": "fixed",
        "total_money": "10.00",
        "total_num": 10,
        "send_freqency": "W2|L5",
        "start_time": "NowTime",
        "end_time": "2026-08-01 00:00:00",
    },
    "alipay.marketing.campaign.cash.trigger": {"crowd_no": "CROWD1", "out_biz_no": "T1", "user_id": U1},
    "alipay.user.alipaypoint.send": {
        "budget_code": "JFB1",
        "partner_biz_no": "P1",
        "point_amount": 5,
        "user_id": U1,
    },
    "alipay.user.alipaypoint.budgetlib.query": {"budget_code": "JFB1"},
}
PARAMS = {"grant_type": "authorization_code", "code": "x", "refresh_token": "y", "auth_token": "z"}


def junk(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(16 if depth < 2 else 13)
    simple = [
        None,
        True,
        0,
        -rng.randrange(10**12),
        10 ** rng.randrange(30),
        rng.random() * 1e12,
        float("nan"),
        float("inf"),
        "",
        "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(40))),
        str(rng.randrange(-(10**20), 10**20)),
        rng.choice(["NowTime", "2026-13-45 99:99:99", "1.005", "D3|L10", "L0", "x" * 5000, "\x00", "2088"]),
        "2088" + str(rng.randrange(10**12)).zfill(12),
    ]
    if kind < len(simple):
        return simple[kind]
    if kind == 13:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {
        rng.choice(["quantity", "amount", "a", ""]): junk(rng, depth + 1) for _ in range(rng.randrange(3))
    }


def mutate(rng: random.Random, value: object) -> object:
    if isinstance(value, dict) and value and rng.random() < 0.9:
        out = dict(value)
        for _ in range(rng.randrange(1, 3)):
            key = rng.choice([*out, "user_id", "open_id", "order_price", "memo"])
            choice = rng.random()
            if choice < 0.15:
                out.pop(key, None)
            elif choice < 0.4 and isinstance(out.get(key), dict):
                out[key] = mutate(rng, out[key])
            else:
                out[key] = junk(rng)
        return out
    return junk(rng)


def test_gateway_handlers_only_raise_gateway_errors() -> None:
    rng = random.Random(20261124)
    ledger = Ledger()
    ledger.seed(SEED, now=NOW)
    outcomes = {"ok": 0, "error": 0}
    for i in range(6000):
        method = rng.choice(sorted(VALID))
        biz = mutate(rng, VALID[method])
        params = {k: v if rng.random() < 0.5 else str(junk(rng)) for k, v in PARAMS.items()}
        call = Call(
            "2021", method, params, biz if isinstance(biz, dict) else {"x": biz}, NOW + rng.random() * 1e7
        )
        try:
            METHODS[method](ledger, call)
            outcomes["ok"] += 1
        except GatewayError as error:
            assert error.code in {"20001", "40001", "40002", "40004"}, (method, biz, error)
            outcomes["error"] += 1
        except Exception as error:  # pragma: no cover - the assertion message is the point
            raise AssertionError(f"{method} raised {error!r} for biz={biz!r} params={params!r}") from error
        if i % 500 == 0:
            assert ledger.audit()["ok"]
    assert outcomes["ok"] > 100 and outcomes["error"] > 1000
    assert ledger.audit()["ok"], ledger.audit()["violations"]


def test_wechat_functions_only_raise_wechat_errors() -> None:
    rng = random.Random(7)
    ledger = Ledger()
    ledger.seed(SEED, now=NOW)
    valid = {"stock_id": "9856000", "out_request_no": "R1", "appid": "wx1", "stock_creator_mchid": "1"}
    seen: dict[str, int] = {}
    for i in range(2000):
        openid = rng.choice(["oA", "oB", "", "o/../x", "x" * 200, str(junk(rng))])
        body = mutate(rng, valid) if rng.random() < 0.7 else {**valid, "out_request_no": f"R{i}"}
        args = [rng.choice([None, "", "wx1", str(junk(rng))]) for _ in range(3)]
        for fn, call_args in ((send_coupon, (openid, body)), (code2session, args)):
            try:
                fn(ledger, *call_args, NOW)
                outcome = "ok"
            except WeChatError as error:
                assert error.status in {200, 400, 403, 404}
                outcome = error.code
            seen[outcome] = seen.get(outcome, 0) + 1
    assert seen.get("ok", 0) > 10 and seen.get("PARAM_ERROR", 0) > 100 and seen.get("41002", 0) > 100
    assert ledger.audit()["ok"]
