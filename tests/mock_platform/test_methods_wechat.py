"""WeChat code2session and Pay v3 coupon send on the shared ledger."""

from __future__ import annotations

import pytest

from mock_platform.errors import WeChatError
from mock_platform.ledger import Ledger
from mock_platform.methods import METHODS, WECHAT, Call
from mock_platform.methods.wechat import CODE2SESSION, SEND_COUPON


def code2session(ledger: Ledger, appid, secret, js_code, now: float) -> dict:
    query = {"appid": appid, "secret": secret, "js_code": js_code, "grant_type": "authorization_code"}
    params = {k: v for k, v in query.items() if v is not None}
    return WECHAT[CODE2SESSION](ledger, Call("", CODE2SESSION, params, {}, now))


def send_coupon(ledger: Ledger, openid: str, body: object, now: float) -> dict:
    return WECHAT[SEND_COUPON](ledger, Call("", SEND_COUPON, {"openid": openid}, body, now))  # type: ignore[arg-type]


NOW = 1_780_000_000.0
U1 = "2088000000000001"
APPID, SECRET, MCH = "wx1234567890abcdef", "s3cret", "8956000"


@pytest.fixture
def ledger() -> Ledger:
    ledger = Ledger()
    ledger.seed(
        {
            "wechat": {
                "apps": [{"appid": APPID, "secret": SECRET, "unionid": True}],
                "stocks": [
                    {"stock_id": "9856000", "max_coupons": 3, "max_coupons_per_user": 2, "coupon_value": 500}
                ],
            }
        }
    )
    return ledger


def body(key: str = "R1", stock: str = "9856000", appid: str = APPID) -> dict:
    return {"stock_id": stock, "out_request_no": key, "appid": appid, "stock_creator_mchid": MCH}


def wx_fails(fn, *args) -> WeChatError:
    with pytest.raises(WeChatError) as info:
        fn(*args)
    return info.value


def test_code2session_with_a_minted_code(ledger: Ledger) -> None:
    code = ledger.mint_auth_code(U1, NOW)
    out = code2session(ledger, APPID, SECRET, code, NOW)
    assert out["openid"] == ledger.users[U1].wx_openid and out["openid"].startswith("o")
    assert len(out["session_key"]) == 24 and out["unionid"]
    again = code2session(ledger, APPID, SECRET, ledger.mint_auth_code(U1, NOW), NOW)
    assert again["openid"] == out["openid"] and again["unionid"] == out["unionid"]
    assert ledger.stats[CODE2SESSION].ok == 2


def test_code_is_single_use_across_dialects(ledger: Ledger) -> None:
    code = ledger.mint_auth_code(U1, NOW)
    code2session(ledger, APPID, SECRET, code, NOW)
    err = wx_fails(code2session, ledger, APPID, SECRET, code, NOW)
    assert (err.status, err.code, err.message) == (200, "40163", "code been used")
    code = ledger.mint_auth_code(U1, NOW)
    METHODS["alipay.system.oauth.token"](
        ledger,
        Call(
            "2021", "alipay.system.oauth.token", {"grant_type": "authorization_code", "code": code}, {}, NOW
        ),
    )
    assert wx_fails(code2session, ledger, APPID, SECRET, code, NOW).code == "40163"
    expired = ledger.mint_auth_code(U1, NOW)
    assert wx_fails(code2session, ledger, APPID, SECRET, expired, NOW + 300).code == "40029"


@pytest.mark.parametrize(
    ("appid", "secret", "code", "errcode"),
    [
        ("", SECRET, "c", "41002"),
        (None, SECRET, "c", "41002"),
        (APPID, "", "c", "41004"),
        (APPID, SECRET, "", "41008"),
        ("wxother", SECRET, "c", "40013"),
        (APPID, "wrong", "c", "40125"),
    ],
)
def test_code2session_errors(ledger: Ledger, appid, secret, code, errcode: str) -> None:
    err = wx_fails(code2session, ledger, appid, secret, code, NOW)
    assert (err.status, err.code) == (200, errcode)


def test_any_app_accepted_when_none_seeded() -> None:
    ledger = Ledger()
    out = code2session(ledger, "wxany", "any", ledger.mint_auth_code(U1, NOW), NOW)
    assert "unionid" not in out and out["openid"]


def test_send_coupon_replay_and_conflict(ledger: Ledger) -> None:
    first = send_coupon(ledger, "oUser1", body("R1"), NOW)
    assert first["coupon_id"]
    assert send_coupon(ledger, "oUser1", body("R1"), NOW) is first
    err = wx_fails(send_coupon, ledger, "oUser2", body("R1"), NOW)
    assert (err.status, err.code) == (400, "INVALID_REQUEST")
    stats = ledger.stats[SEND_COUPON]
    assert (stats.ok, stats.effects, stats.replays) == (2, 1, 1)


def test_send_coupon_limits(ledger: Ledger) -> None:
    send_coupon(ledger, "oA", body("1"), NOW)
    send_coupon(ledger, "oA", body("2"), NOW)
    err = wx_fails(send_coupon, ledger, "oA", body("3"), NOW)
    assert (err.status, err.code) == (403, "RULE_LIMIT")
    send_coupon(ledger, "oB", body("4"), NOW)
    err = wx_fails(send_coupon, ledger, "oC", body("5"), NOW)
    assert (err.status, err.code) == (403, "NOT_ENOUGH")
    audit = ledger.audit()
    assert audit["ok"] and audit["totals"]["wechat_coupons"]["9856000"] == {"stock": 3, "issued": 3}
    assert ledger.stats[SEND_COUPON].business_failures == 2


def test_send_coupon_bad_requests(ledger: Ledger) -> None:
    assert (wx_fails(send_coupon, ledger, "oA", body(stock="nope"), NOW).status) == 404
    assert wx_fails(send_coupon, ledger, "oA", body(stock="nope"), NOW).code == "RESOURCE_NOT_EXISTS"
    for bad in ({"stock_id": "9856000"}, [], "x", None, {**body(), "appid": 5}):
        err = wx_fails(send_coupon, ledger, "oA", bad, NOW)
        assert (err.status, err.code) == (400, "PARAM_ERROR")
    err = wx_fails(send_coupon, ledger, "o A/../", body(), NOW)
    assert (err.status, err.code) == (400, "PARAM_ERROR") and "openid" in err.message
    assert wx_fails(send_coupon, ledger, "oA", body(appid="wxother"), NOW).code == "INVALID_REQUEST"
    assert ledger.wx_stocks["9856000"].issued == 0
