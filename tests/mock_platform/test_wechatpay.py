"""WeChat Pay v3 fidelity: signatures both ways, the two verification modes, the admin routes, the
coupon-stock rules, and bad input on every WeChat route.

The real client is the `wechatpayv3` package, run unchanged in its own process
(wechatpay_driver.py); the other tests sign requests here with `cryptography`.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DRIVER = Path(__file__).with_name("wechatpay_driver.py")
MCHID, SERIAL, APIV3 = "1900000001", "3775B6A45ACD588826D15E583A95F5DD", "0123456789abcdef0123456789ABCDEF"
APPID, USER = "wx0000000000000001", "2088000000000001"
CN = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def merchant_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> tuple[str, str]:
    """(PKCS#8 private PEM, SPKI public PEM)."""
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def authorization(
    key: rsa.RSAPrivateKey, method: str, target: str, body: bytes, *, timestamp: int | None = None
) -> str:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = secrets.token_hex(16)
    message = f"{method}\n{target}\n{ts}\n{nonce}\n".encode() + body + b"\n"
    signature = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    return (
        f'WECHATPAY2-SHA256-RSA2048 mchid="{MCHID}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{ts}",serial_no="{SERIAL}"'
    )


def call(
    mock: Any, method: str, target: str, payload: Any = None, *, key: rsa.RSAPrivateKey | None, **kw: Any
) -> tuple[int, dict[str, str], Any]:
    body = b"" if payload is None else payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if key is not None:
        headers["Authorization"] = authorization(key, method, target, body, **kw)
    status, resp_headers, raw = mock.request(method, target, body or None, headers)
    return status, resp_headers, json.loads(raw) if raw else None


def verify_answer(headers: dict[str, str], raw: bytes, public_key: Any) -> None:
    message = f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n".encode() + raw + b"\n"
    signature = base64.b64decode(headers["Wechatpay-Signature"])
    public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())  # raises if wrong
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"


def openid_of(mock: Any, user: str = USER) -> str:
    code = mock.sim("/sim/auth_code", {"user_id": user})[1]["auth_code"]
    query = urllib.parse.urlencode(
        {"appid": APPID, "secret": "s", "js_code": code, "grant_type": "authorization_code"}
    )
    _, _, raw = mock.request("GET", "/sns/jscode2session?" + query)
    return json.loads(raw)["openid"]


@pytest.fixture
def wx(make_mock, merchant_key) -> Any:
    """A mock with the merchant registered (with its APIv3 key) and a seeded running stock."""
    _, public = pem(merchant_key)
    seed = {
        "wechat": {
            "apps": [{"appid": APPID, "secret": "s"}],
            "merchants": [{"mchid": MCHID, "serial_no": SERIAL, "public_key": public, "apiv3_key": APIV3}],
            "stocks": [{"stock_id": "9856000", "max_coupons": 5, "stock_creator_mchid": MCHID}],
        }
    }
    return make_mock({"seed": seed})


def send_body(stock_id: str = "9856000", out_request_no: str = "r-1") -> dict[str, str]:
    return {
        "stock_id": stock_id,
        "out_request_no": out_request_no,
        "appid": APPID,
        "stock_creator_mchid": MCHID,
    }


# --- the real client ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["public_key", "certificate"])
def test_wechatpayv3_works_unchanged_with_every_answer_verified(make_mock, merchant_key, mode: str) -> None:
    pytest.importorskip("wechatpayv3")
    mock = make_mock({"seed": {"wechat": {"apps": [{"appid": APPID, "secret": "s"}]}}})
    private, public = pem(merchant_key)
    merchant = {"mchid": MCHID, "serial_no": SERIAL, "public_key": public}
    if mode == "certificate":
        merchant["apiv3_key"] = APIV3
    assert mock.admin("POST", "/admin/wechat/merchants", merchant) == (200, {"ok": True, "mchid": MCHID})
    status, platform = mock.admin("GET", "/admin/wechat/platform")
    assert status == 200 and platform["public_key_id"].startswith("PUB_KEY_ID_")
    job = {
        "url": mock.url,
        "mode": mode,
        "mchid": MCHID,
        "serial_no": SERIAL,
        "private_key": private,
        "apiv3_key": APIV3,
        "platform_public_key": platform["public_key"],
        "platform_public_key_id": platform["public_key_id"],
        "appid": APPID,
        "openid": openid_of(mock),
    }
    done = subprocess.run(
        [sys.executable, str(DRIVER)], input=json.dumps(job), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    steps = {s["step"]: s for s in result["steps"]}
    assert not [s for s in result["steps"] if "error" in s], result["steps"]
    got = {name: (s["status"], (s["body"] or {}).get("code")) for name, s in steps.items()}
    assert got == {
        "create": (200, None),
        "send_before_start": (400, "INVALID_REQUEST"),
        "start": (200, None),
        "start_again": (200, None),
        "query_stock": (200, None),
        "send": (200, None),
        "send_replay": (200, None),
        "send_rule_limit": (403, "RULE_LIMIT"),
        "query_coupon": (200, None),
        "pause": (200, None),
        "send_paused": (400, "INVALID_REQUEST"),
        "query_missing_stock": (404, "RESOURCE_NOT_EXISTS"),
    }
    assert steps["send_replay"]["body"] == steps["send"]["body"]
    assert steps["query_stock"]["body"]["status"] == "running"
    assert steps["query_stock"]["body"]["stock_use_rule"]["max_amount"] == 200
    assert steps["query_coupon"]["body"]["stock_id"] == result["stock_id"]
    stats = mock.state.ledger.stats["wechat.coupon.send"]
    assert (stats.ok, stats.effects, stats.replays, stats.business_failures) == (2, 1, 1, 1)
    assert mock.admin("GET", "/admin/audit")[1]["ok"]


def test_certificates_are_encrypted_under_the_apiv3_key(wx, merchant_key) -> None:
    status, headers, body = call(wx, "GET", "/v3/certificates", key=merchant_key)
    assert status == 200
    (entry,) = body["data"]
    sealed = entry["encrypt_certificate"]
    assert (sealed["algorithm"], sealed["associated_data"]) == ("AEAD_AES_256_GCM", "certificate")
    plain = AESGCM(APIV3.encode()).decrypt(
        sealed["nonce"].encode(), base64.b64decode(sealed["ciphertext"]), sealed["associated_data"].encode()
    )
    cert = x509.load_pem_x509_certificate(plain)
    assert format(cert.serial_number, "X") == entry["serial_no"] == headers["Wechatpay-Serial"]
    assert (
        datetime.fromisoformat(entry["effective_time"])
        < datetime.now(CN)
        < datetime.fromisoformat(entry["expire_time"])
    )
    # The answer just fetched is signed by that certificate's key.
    status, headers2, raw = wx.request(
        "GET",
        "/v3/certificates",
        headers={"Authorization": authorization(merchant_key, "GET", "/v3/certificates", b"")},
    )
    verify_answer(headers2, raw, cert.public_key())
    assert wx.admin("GET", "/admin/wechat/platform")[1]["certificate_serial"] == entry["serial_no"]


def test_public_key_mode_answers_name_the_key_id(wx, merchant_key) -> None:
    _, platform = wx.admin("GET", "/admin/wechat/platform")
    target = "/v3/marketing/favor/stocks/9856000?stock_creator_mchid=" + MCHID
    headers = {
        "Authorization": authorization(merchant_key, "GET", target, b""),
        "Wechatpay-Serial": platform["public_key_id"],
    }
    status, resp_headers, raw = wx.request("GET", target, headers=headers)
    assert status == 200 and resp_headers["Wechatpay-Serial"] == platform["public_key_id"]
    key = serialization.load_pem_public_key(platform["public_key"].encode())
    verify_answer(resp_headers, raw, key)


# --- forged and odd signatures ------------------------------------------------------------------


def test_a_forged_signature_is_401_and_changes_nothing(wx, merchant_key) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    openid = openid_of(wx)
    target = f"/v3/marketing/favor/users/{openid}/coupons"
    before = wx.admin("GET", "/admin/audit")[1]["totals"]
    status, headers, body = call(wx, "POST", target, send_body(), key=forger)
    assert (status, body["code"]) == (401, "SIGN_ERROR") and "Request-ID" in headers
    # A signature over other bytes than those sent (a tampered body) fails the same way.
    auth = authorization(merchant_key, "POST", target, json.dumps(send_body("9856000", "other")).encode())
    status, _, raw = wx.request(
        "POST",
        target,
        json.dumps(send_body()).encode(),
        {"Authorization": auth, "Content-Type": "application/json"},
    )
    assert (status, json.loads(raw)["code"]) == (401, "SIGN_ERROR")
    # So does a stale timestamp (more than 5 minutes off), even with the right key.
    status, _, body = call(
        wx, "POST", target, send_body(), key=merchant_key, timestamp=int(time.time()) - 301
    )
    assert (status, body["code"]) == (401, "SIGN_ERROR") and "5 minutes" in body["message"]
    assert wx.admin("GET", "/admin/audit")[1]["totals"] == before
    assert wx.state.ledger.wx_stocks["9856000"].issued == 0 and wx.state.ledger.effects.last_seq == 0
    status, _, body = call(wx, "POST", target, send_body(), key=merchant_key)
    assert status == 200 and body["coupon_id"]


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer x",
        "WECHATPAY2-SHA256-RSA2048",
        'WECHATPAY2-SHA256-RSA2048 mchid="1900000001"',
        'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="s",timestamp="t",serial_no="x"',
        'WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="n",signature="!!",timestamp="1",serial_no="'
        + SERIAL
        + '",extra="1"',
        'WECHATPAY2-SHA256-RSA2048 mchid=1900000001,nonce_str="n"',
        "WECHATPAY2-SHA256-RSA2048 " + "a" * 5000,
    ],
)
def test_odd_authorization_is_401(wx, header: str) -> None:
    status, _, raw = wx.request(
        "POST",
        "/v3/marketing/favor/users/oABC/coupons",
        json.dumps(send_body()).encode(),
        {"Authorization": header, "Content-Type": "application/json"},
    )
    assert (status, json.loads(raw)["code"]) == (401, "SIGN_ERROR")
    assert wx.state.ledger.wx_stocks["9856000"].issued == 0


def test_strict_mode_requires_the_signature(make_mock) -> None:
    mock = make_mock({"seed": {"wechat": {"stocks": [{"stock_id": "1", "max_coupons": 1}]}}}, strict=True)
    status, _, body = call(mock, "POST", "/v3/marketing/favor/users/oA/coupons", send_body("1"), key=None)
    assert (status, body["code"]) == (401, "SIGN_ERROR")


# --- stock rules --------------------------------------------------------------------------------


def stock_body(**changes: Any) -> dict[str, Any]:
    now = datetime.now(CN).replace(microsecond=0)
    body: dict[str, Any] = {
        "stock_name": "s",
        "belong_merchant": MCHID,
        "available_begin_time": (now + timedelta(seconds=5)).isoformat(),
        "available_end_time": (now + timedelta(days=10)).isoformat(),
        "stock_use_rule": {"max_coupons": 10, "max_amount": 1000, "max_coupons_per_user": 1},
        "coupon_use_rule": {"fixed_normal_coupon": {"coupon_amount": 100, "transaction_minimum": 0}},
        "stock_type": "NORMAL",
        "out_request_no": "c-1",
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = body
        for part in parents:
            target = target[part]
        target[last] = value
    return body


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"available_begin_time": "2020-01-01T00:00:00+08:00"}, "available_begin_time"),
        (
            {"available_end_time": (datetime.now(CN) + timedelta(days=95)).isoformat()},
            "available_end_time",
        ),
        ({"available_begin_time": "2026-13-01"}, "available_begin_time"),
        ({"stock_use_rule__max_amount": 999}, "max_amount"),
        ({"stock_use_rule__max_coupons": "10"}, "max_coupons"),
        ({"stock_use_rule__max_coupons_per_user": 61}, "max_coupons_per_user"),
        ({"stock_type": "DISCOUNT"}, "stock_type"),
        ({"belong_merchant": "1111"}, "belong_merchant"),
        ({"stock_name": None}, "stock_name"),
        ({"no_cash": "yes"}, "no_cash"),
    ],
)
def test_stock_rules_are_param_errors(wx, merchant_key, changes: dict, field: str) -> None:
    status, _, body = call(
        wx, "POST", "/v3/marketing/favor/coupon-stocks", stock_body(**changes), key=merchant_key
    )
    assert (status, body["code"]) == (400, "PARAM_ERROR") and field in body["message"], body
    assert len(wx.state.ledger.wx_stocks) == 1


def test_stock_create_is_idempotent_and_unstarted_stocks_cannot_send(wx, merchant_key) -> None:
    path = "/v3/marketing/favor/coupon-stocks"
    body = stock_body()  # once: its times are "now", and the replay must send the same
    status, _, first = call(wx, "POST", path, body, key=merchant_key)
    assert status == 200 and first["stock_id"] and first["create_time"]
    assert call(wx, "POST", path, body, key=merchant_key)[2] == first
    status, _, body = call(wx, "POST", path, {**body, "stock_name": "other"}, key=merchant_key)
    assert (status, body["code"]) == (400, "INVALID_REQUEST")
    stock_id = first["stock_id"]
    openid = openid_of(wx)
    target = f"/v3/marketing/favor/users/{openid}/coupons"
    status, _, body = call(wx, "POST", target, send_body(stock_id), key=merchant_key)
    assert (status, body["code"]) == (400, "INVALID_REQUEST")
    start = f"/v3/marketing/favor/stocks/{stock_id}/start"
    assert call(wx, "POST", start, {"stock_creator_mchid": MCHID}, key=merchant_key)[0] == 200
    # Started, but its window opens 5 s after creation.
    status, _, body = call(wx, "POST", target, send_body(stock_id, "r-2"), key=merchant_key)
    assert (status, body["code"]) == (400, "INVALID_REQUEST")
    status, _, body = call(wx, "POST", start, {"stock_creator_mchid": "1234"}, key=merchant_key)
    assert (status, body["code"]) == (403, "NO_AUTH")
    status, _, body = call(
        wx, "POST", "/v3/marketing/favor/stocks/404/start", {"stock_creator_mchid": MCHID}, key=merchant_key
    )
    assert (status, body["code"]) == (404, "RESOURCE_NOT_EXISTS")


def test_not_enough_and_frequency_limited(make_mock, merchant_key) -> None:
    _, public = pem(merchant_key)
    seed = {
        "wechat": {
            "merchants": [{"mchid": MCHID, "serial_no": SERIAL, "public_key": public}],
            "stocks": [{"stock_id": "77", "max_coupons": 1, "stock_creator_mchid": MCHID}],
        }
    }
    mock = make_mock(
        {"seed": seed, "faults": {"profile": "production", "wechat.coupon.send": {"latency": None}}}
    )
    target = "/v3/marketing/favor/users/oA/coupons"
    assert call(mock, "POST", target, send_body("77", "a"), key=merchant_key)[0] == 200
    status, _, body = call(
        mock, "POST", "/v3/marketing/favor/users/oB/coupons", send_body("77", "b"), key=merchant_key
    )
    assert (status, body["code"]) == (403, "NOT_ENOUGH")
    mock.admin(
        "PUT",
        "/admin/faults/layers/slow",
        {"faults": {"wechat.coupon.send": {"throttle": {"rate": 0.01, "burst": 1}}}},
    )
    call(mock, "POST", target, send_body("77", "c"), key=merchant_key)
    status, _, body = call(mock, "POST", target, send_body("77", "d"), key=merchant_key)
    assert (status, body["code"]) == (429, "FREQUENCY_LIMITED")


def test_production_profile_throttles_coupon_sends_at_the_documented_rate() -> None:
    from mock_platform.faults import load_profile

    assert load_profile("production")["wechat.coupon.send"]["throttle"] == {"rate": 500, "burst": 500}


# --- jscode2session -----------------------------------------------------------------------------


def test_jscode2session_used_and_invalid_codes(wx) -> None:
    def login(code: str) -> dict:
        query = {"appid": APPID, "secret": "s", "js_code": code, "grant_type": "authorization_code"}
        status, _, raw = wx.request("GET", "/sns/jscode2session?" + urllib.parse.urlencode(query))
        assert status == 200
        return json.loads(raw)

    code = wx.sim("/sim/auth_code", {"user_id": USER})[1]["auth_code"]
    assert set(login(code)) == {"openid", "session_key"}
    assert login(code) == {"errcode": 40163, "errmsg": "code been used"}
    assert login("never-minted") == {"errcode": 40029, "errmsg": "invalid code"}


def test_jscode2session_allows_100_calls_a_minute_per_user() -> None:
    from mock_platform.ledger import Ledger
    from mock_platform.methods import WECHAT, Call
    from mock_platform.methods.wechat import CODE2SESSION

    ledger = Ledger()
    minute = 1_780_000_030.0  # 10 s into a minute (1_780_000_020 is one)

    def login(user: str, now: float) -> dict:
        code = ledger.mint_auth_code(user, now)
        query = {"appid": "a", "secret": "s", "js_code": code, "grant_type": "authorization_code"}
        return WECHAT[CODE2SESSION](ledger, Call("", CODE2SESSION, query, {}, now))

    for i in range(100):
        login(USER, minute + i * 0.3)
    with pytest.raises(Exception) as info:
        login(USER, minute + 39)
    assert (info.value.status, info.value.code) == (200, "45011")  # type: ignore[attr-defined]
    assert "openid" in login("2088000000000002", minute + 39)  # another user has their own quota
    assert "openid" in login(USER, minute + 55)  # the next minute


def test_jscode2session_busy_is_minus_one(make_mock) -> None:
    mock = make_mock({"faults": {"wechat.jscode2session": {"error": {"rate": 1.0}}}})
    _, _, raw = mock.request(
        "GET", "/sns/jscode2session?appid=a&secret=s&js_code=c&grant_type=authorization_code"
    )
    assert json.loads(raw) == {"errcode": -1, "errmsg": "system error"}


# --- admin --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"serial_no": SERIAL, "public_key": "x"}, "mchid"),
        ({"mchid": "abc", "serial_no": SERIAL, "public_key": "x"}, "mchid"),
        ({"mchid": MCHID, "serial_no": SERIAL, "public_key": "not a key"}, "public_key"),
        ({"mchid": MCHID, "public_key": "x"}, "serial_no"),
        ({"mchid": MCHID, "serial_no": SERIAL, "public_key": "KEY", "apiv3_key": "short"}, "apiv3_key"),
        ({"mchid": MCHID, "serial_no": SERIAL, "public_key": "x", "nope": 1}, "nope"),
    ],
)
def test_bad_merchant_is_400_naming_the_field(mock_server, merchant_key, body: dict, field: str) -> None:
    if body.get("public_key") == "KEY":
        body = {**body, "public_key": pem(merchant_key)[1]}
    status, answer = mock_server.admin("POST", "/admin/wechat/merchants", body)
    assert status == 400 and field in answer["error"], answer


def test_platform_key_from_the_config(make_mock) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = pem(key)
    mock = make_mock(
        {"wechat_platform": {"private_key": private, "public_key_id": "PUB_KEY_ID_0114232134912410000"}}
    )
    _, platform = mock.admin("GET", "/admin/wechat/platform")
    assert platform["public_key"] == public and platform["public_key_id"] == "PUB_KEY_ID_0114232134912410000"


# --- bad input on every WeChat route ------------------------------------------------------------

PAY_TARGETS = [
    ("POST", "/v3/marketing/favor/coupon-stocks"),
    ("POST", "/v3/marketing/favor/stocks/9856000/start"),
    ("POST", "/v3/marketing/favor/stocks/9856000/pause"),
    ("GET", "/v3/marketing/favor/stocks/9856000?stock_creator_mchid=" + MCHID),
    ("POST", "/v3/marketing/favor/users/oABC/coupons"),
    ("GET", "/v3/marketing/favor/users/oABC/coupons/1?appid=" + APPID),
    ("GET", "/v3/certificates"),
]
BAD_BODIES = [
    b"{nope",
    b"[]",
    b'"x"',
    b"\xff\xfe",
    b'{"stock_id": 5, "out_request_no": [], "appid": {}}',
    b"null",
]


@pytest.mark.parametrize(("verb", "target"), PAY_TARGETS)
def test_bad_input_on_pay_routes_is_4xx_and_the_mock_keeps_serving(
    wx, merchant_key, verb: str, target: str
) -> None:
    seen = []
    plain = call(wx, verb, target, key=merchant_key)[0]  # a GET's body is ignored: it answers this
    for body in BAD_BODIES:
        status, headers, raw = wx.request(
            verb,
            target,
            body,
            {
                "Content-Type": "application/json",
                "Authorization": authorization(merchant_key, verb, target, body),
            },
        )
        seen.append(status)
        answer = json.loads(raw)
        if verb == "POST":
            assert (status, answer["code"]) == (400, "PARAM_ERROR"), (body, answer)
        else:
            assert status == plain, (body, answer)
        assert "Request-ID" in headers and "Wechatpay-Signature" in headers
    # Wrong types in the fields themselves, as JSON, signed.
    wrong = {
        "stock_id": 5,
        "out_request_no": 7,
        "appid": None,
        "stock_creator_mchid": [],
        "stock_use_rule": "x",
    }
    status, _, answer = call(wx, verb, target, wrong if verb == "POST" else None, key=merchant_key)
    assert status < 500, answer
    # A huge body: 413 before it is read whole.
    status, _, raw = wx.request(
        verb, target, b"{" + b" " * 200_000 + b"}", {"Content-Type": "application/json"}
    )
    assert status == 413 and json.loads(raw)["code"] == "PARAM_ERROR"
    assert wx.admin("GET", "/admin/health")[0] == 200
    assert all(s < 500 for s in seen)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "appid=&secret=&js_code=",
        "appid=x",
        "js_code=%ff%fe&appid=a&secret=s&grant_type=authorization_code",
        "appid=" + "a" * 5000 + "&secret=s&js_code=c&grant_type=authorization_code",
        "grant_type=authorization_code&appid=a&appid=b",
    ],
)
def test_bad_input_on_jscode2session_is_an_errcode(wx, query: str) -> None:
    status, _, raw = wx.request("GET", "/sns/jscode2session?" + query)
    assert status == 200 and json.loads(raw)["errcode"] > 0
