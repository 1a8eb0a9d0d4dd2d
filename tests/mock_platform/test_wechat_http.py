"""WeChat routes over real HTTP, unsigned: jscode2session and the Pay v3 coupon send, faults included."""

from __future__ import annotations

import json
import urllib.parse

import pytest

USER = "2088000000000001"
APPID = "wx0000000000000001"
SEED = {
    "wechat": {
        "apps": [{"appid": APPID, "secret": "s3cret", "unionid": True}],
        "stocks": [{"stock_id": "9856000", "max_coupons": 2, "max_coupons_per_user": 1, "coupon_value": 100}],
    }
}


@pytest.fixture
def wx(make_mock):
    return make_mock({"seed": SEED})


def code2session(mock, **params: str) -> tuple[int, dict]:
    status, _, raw = mock.request("GET", "/sns/jscode2session?" + urllib.parse.urlencode(params))
    return status, json.loads(raw)


def login(mock, user: str = USER) -> str:
    code = mock.sim("/sim/auth_code", {"user_id": user})[1]["auth_code"]
    status, body = code2session(
        mock, appid=APPID, secret="s3cret", js_code=code, grant_type="authorization_code"
    )
    assert status == 200 and "errcode" not in body, body
    return body["openid"]


def send(mock, openid: str, out_request_no: str, stock_id: str = "9856000") -> tuple[int, dict, dict]:
    body = {
        "stock_id": stock_id,
        "out_request_no": out_request_no,
        "appid": APPID,
        "stock_creator_mchid": "8956000",
    }
    status, headers, raw = mock.request(
        "POST",
        f"/v3/marketing/favor/users/{openid}/coupons",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},  # unsigned load traffic (test_wechatpay.py signs)
    )
    return status, headers, json.loads(raw)


def test_jscode2session_success_and_single_use(wx) -> None:
    code = wx.sim("/sim/auth_code", {"user_id": USER})[1]["auth_code"]
    params = {"appid": APPID, "secret": "s3cret", "js_code": code, "grant_type": "authorization_code"}
    status, body = code2session(wx, **params)
    assert status == 200
    assert set(body) == {"openid", "session_key", "unionid"}
    assert code2session(wx, **params) == (200, {"errcode": 40163, "errmsg": "code been used"})
    params["js_code"] = "never-minted"
    assert code2session(wx, **params) == (200, {"errcode": 40029, "errmsg": "invalid code"})


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"secret": "s3cret", "js_code": "x", "grant_type": "authorization_code"}, 41002),
        ({"appid": APPID, "secret": "wrong", "js_code": "x", "grant_type": "authorization_code"}, 40125),
        ({"appid": "wxnope", "secret": "s3cret", "js_code": "x", "grant_type": "authorization_code"}, 40013),
        ({"appid": APPID, "secret": "s3cret", "js_code": "x", "grant_type": "password"}, 40002),
    ],
)
def test_jscode2session_errors_are_http_200(wx, params, errcode) -> None:
    status, body = code2session(wx, **params)
    assert status == 200 and body["errcode"] == errcode and body["errmsg"]


def test_coupon_send_replay_and_limits(wx) -> None:
    openid = login(wx)
    status, headers, body = send(wx, openid, "r-1")
    assert status == 200 and body["coupon_id"]
    assert len(headers["Request-ID"]) == 32
    assert send(wx, openid, "r-1")[2] == body  # idempotent replay
    status, _, error = send(wx, openid, "r-2")
    assert (status, error["code"]) == (403, "RULE_LIMIT")
    assert send(wx, login(wx, "2088000000000002"), "r-3")[0] == 200
    status, _, error = send(wx, login(wx, "2088000000000003"), "r-4")
    assert (status, error["code"]) == (403, "NOT_ENOUGH") and error["message"]
    status, _, error = send(wx, openid, "r-5", stock_id="404")
    assert (status, error["code"]) == (404, "RESOURCE_NOT_EXISTS")
    _, audit = wx.admin("GET", "/admin/audit")
    assert audit["ok"] and audit["totals"]["wechat_coupons"]["9856000"] == {"stock": 2, "issued": 2}


@pytest.mark.parametrize("body", [b"{nope", b"[]", b"{}", b'{"stock_id": 5}'])
def test_coupon_send_bad_bodies_are_400(wx, body) -> None:
    status, headers, raw = wx.request("POST", "/v3/marketing/favor/users/oABC/coupons", body)
    assert status == 400 and "Request-ID" in headers
    assert json.loads(raw)["code"] == "PARAM_ERROR"


def test_injected_faults_map_to_wechat_errors(make_mock) -> None:
    mock = make_mock(
        {
            "seed": SEED,
            "faults": {
                "wechat.coupon.send": {"error": {"rate": 1.0}},
                "wechat.jscode2session": {"throttle": {"rate": 0.001, "burst": 1}},
            },
        }
    )
    openid = login(mock)  # takes the one token of the bucket
    status, _, body = send(mock, openid, "r-1")
    assert (status, body["code"]) == (500, "SYSTEM_ERROR")
    status, body = code2session(
        mock, appid=APPID, secret="s3cret", js_code="x", grant_type="authorization_code"
    )
    assert (status, body["errcode"]) == (200, 45011)
    mock.admin("PUT", "/admin/faults", {"wechat.coupon.send": {"throttle": {"rate": 0.001, "burst": 1}}})
    assert send(mock, openid, "r-2")[0] == 200
    status, _, body = send(mock, openid, "r-3")
    assert (status, body["code"]) == (429, "FREQUENCY_LIMITED")
    _, stats = mock.admin("GET", "/admin/stats")
    assert stats["methods"]["wechat.coupon.send"]["outcomes"] == {
        "200": 1,
        "429/FREQUENCY_LIMITED": 1,
        "500/SYSTEM_ERROR": 1,
    }


def test_coupon_body_over_the_limit_is_413(make_mock) -> None:
    mock = make_mock({"seed": SEED, "limits": {"max_body_bytes": 1024}})
    status, headers, raw = mock.request(
        "POST", "/v3/marketing/favor/users/oABC/coupons", b"{" + b" " * 2000 + b"}"
    )
    assert status == 413 and "Request-ID" in headers
    assert json.loads(raw)["code"] == "PARAM_ERROR"


def test_outage_reset_drops_the_connection(make_mock) -> None:
    mock = make_mock({"seed": SEED, "faults": {"wechat.coupon.send": {"outage": {"mode": "reset"}}}})
    openid = login(mock)
    with pytest.raises(OSError):  # ConnectionResetError, or urllib's wrapper of it
        send(mock, openid, "r-1")
    _, audit = mock.admin("GET", "/admin/audit")
    assert audit["totals"]["wechat_coupons"]["9856000"]["issued"] == 0
