"""alipay.system.oauth.token, alipay.user.info.share and alipay.open.public.user.follow.query."""

from __future__ import annotations

import re

import pytest

from mock_platform.errors import GatewayError
from mock_platform.ledger import Ledger, LedgerConfig
from mock_platform.methods import METHODS, Call

APP = "2021000000000001"
NOW = 1_780_000_000.0
TOKEN = "alipay.system.oauth.token"
INFO = "alipay.user.info.share"
FOLLOW = "alipay.open.public.user.follow.query"
U1 = "2088000000000001"


def call(ledger: Ledger, method: str, params: dict | None = None, biz: dict | None = None, now: float = NOW):
    return METHODS[method](ledger, Call(APP, method, params or {}, biz or {}, now))


def fails(ledger: Ledger, method: str, params=None, biz=None, now: float = NOW) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        call(ledger, method, params, biz, now)
    return info.value


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(LedgerConfig(auth_code_ttl_s=300, token_ttl_s=3600, refresh_token_ttl_s=7200))


def login(ledger: Ledger, now: float = NOW) -> dict:
    code = ledger.mint_auth_code(U1, now)
    return call(ledger, TOKEN, {"grant_type": "authorization_code", "code": code}, now=now)


def test_token_fields(ledger: Ledger) -> None:
    out = login(ledger)
    assert re.fullmatch(r"2088\d{12}", out["user_id"]) and out["user_id"] == U1
    assert out["open_id"] == ledger.users[U1].open_id
    assert out["access_token"] != out["refresh_token"]
    assert (out["expires_in"], out["re_expires_in"]) == ("3600", "7200")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", out["auth_start"])
    assert ledger.stats[TOKEN].ok == 1


def test_code_is_single_use(ledger: Ledger) -> None:
    code = ledger.mint_auth_code(U1, NOW)
    call(ledger, TOKEN, {"grant_type": "authorization_code", "code": code})
    err = fails(ledger, TOKEN, {"grant_type": "authorization_code", "code": code})
    assert (err.code, err.sub_code, err.error_node) == ("40002", "isv.code-invalid", True)


def test_code_expires(ledger: Ledger) -> None:
    code = ledger.mint_auth_code(U1, NOW)
    err = fails(ledger, TOKEN, {"grant_type": "authorization_code", "code": code}, now=NOW + 300)
    assert err.sub_code == "isv.code-invalid"
    code = ledger.mint_auth_code(U1, NOW)
    assert (
        call(ledger, TOKEN, {"grant_type": "authorization_code", "code": code}, now=NOW + 299)["user_id"]
        == U1
    )


def test_unknown_code_and_bad_grant(ledger: Ledger) -> None:
    assert (
        fails(ledger, TOKEN, {"grant_type": "authorization_code", "code": "nope"}).sub_code
        == "isv.code-invalid"
    )
    err = fails(ledger, TOKEN, {"grant_type": "password", "code": "x"})
    assert (err.code, err.sub_code) == ("40002", "isv.invalid-parameter") and "grant_type" in err.sub_msg
    err = fails(ledger, TOKEN, {"grant_type": "authorization_code"})
    assert (err.code, err.sub_code) == ("40001", "isv.missing-parameter") and "code" in err.sub_msg
    assert fails(ledger, TOKEN, {}).code == "40001"


def test_refresh_token_rotates_and_is_single_use(ledger: Ledger) -> None:
    first = login(ledger)
    second = call(ledger, TOKEN, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert second["user_id"] == U1 and second["access_token"] != first["access_token"]
    err = fails(ledger, TOKEN, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert (err.sub_code, err.error_node) == ("isv.refreshed-token-invalid", True)
    err = fails(
        ledger,
        TOKEN,
        {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
        now=NOW + 7200,
    )
    assert err.sub_code == "isv.refreshed-token-invalid"


def test_user_info_share(ledger: Ledger) -> None:
    ledger.seed({"users": [{"user_id": U1, "nick_name": "Ada", "city": "上海市"}]})
    token = login(ledger)["access_token"]
    out = call(ledger, INFO, {"auth_token": token})
    assert out["user_id"] == U1 and out["nick_name"] == "Ada" and out["city"] == "上海市"
    assert set(out) == {"user_id", "open_id", "nick_name", "avatar", "gender", "province", "city"}


def test_user_info_share_bad_or_expired_token(ledger: Ledger) -> None:
    token = login(ledger)["access_token"]
    assert call(ledger, INFO, {"auth_token": token}, now=NOW + 3599)["user_id"] == U1
    for params, now in (({"auth_token": token}, NOW + 3600), ({"auth_token": "junk"}, NOW), ({}, NOW)):
        err = fails(ledger, INFO, params, now=now)
        assert (err.code, err.sub_code) == ("20001", "aop.invalid-auth-token")


def test_mint_auth_code_validates_and_creates_user(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="user_id"):
        ledger.mint_auth_code("1234", NOW)
    ledger.mint_auth_code("2088999999999999", NOW)
    assert "2088999999999999" in ledger.users


def test_follow_query(ledger: Ledger) -> None:
    assert call(ledger, FOLLOW, biz={"user_id": U1}) == {"is_follow": "F"}
    assert U1 not in ledger.users  # a read does not create users
    ledger.follow(U1)
    assert call(ledger, FOLLOW, biz={"user_id": U1}) == {"is_follow": "T"}
    assert call(ledger, FOLLOW, biz={"open_id": ledger.users[U1].open_id}) == {"is_follow": "T"}
    assert fails(ledger, FOLLOW, biz={"open_id": "nobody"}).sub_code == "USER_NOT_EXIST"
    assert fails(ledger, FOLLOW, biz={}).code == "40001"
    with pytest.raises(ValueError, match="user_id"):
        ledger.follow("x")
