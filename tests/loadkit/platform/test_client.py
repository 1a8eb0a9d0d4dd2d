"""PlatformClient against a tiny loopback gateway serving canned envelopes, through a real
FastHttpUser client inside a Locust Environment; the request event is what the plugin sees."""

from __future__ import annotations

import base64
import json
import socket
from urllib.parse import parse_qsl

import gevent
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from gevent.pywsgi import WSGIServer
from locust import FastHttpUser, task
from locust.env import Environment

from loadkit.platform.client import (
    READ_NAMES,
    REQUEST_NAMES,
    PlatformClient,
    SigningKeyError,
    WeChatClient,
    load_private_key,
    new_biz_no,
    sign_content,
)

pytestmark = pytest.mark.timeout(30)


def envelope(method: str, node: dict) -> bytes:
    return json.dumps({method.replace(".", "_") + "_response": node, "sign": "c2ln"}).encode()


CANNED: dict[str, tuple[str, bytes]] = {
    "alipay.user.alipaypoint.send": (
        "200 OK",
        envelope("alipay.user.alipaypoint.send", {"code": "10000", "msg": "Success", "record_id": "R1"}),
    ),
    "alipay.marketing.activity.voucher.send": (
        "200 OK",
        envelope(
            "alipay.marketing.activity.voucher.send",
            {
                "code": "40004",
                "msg": "Business Failed",
                "sub_code": "BUDGET_NOT_ENOUGH_ERROR",
                "sub_msg": "sold out",
            },
        ),
    ),
    "alipay.marketing.campaign.cash.trigger": (
        "200 OK",
        envelope(
            "alipay.marketing.campaign.cash.trigger",
            {
                "code": "40004",
                "msg": "Business Failed",
                "sub_code": "CASH_CAMP_BUDGET_INSUFFICIENT",
                "sub_msg": "no money",
            },
        ),
    ),
    "alipay.system.oauth.token": (
        "200 OK",
        json.dumps(
            {
                "error_response": {
                    "code": "40002",
                    "msg": "Invalid Arguments",
                    "sub_code": "isv.code-invalid",
                    "sub_msg": "bad code",
                }
            }
        ).encode(),
    ),
    "alipay.user.alipaypoint.budgetlib.query": ("500 Internal Server Error", b"boom"),
    "alipay.user.info.share": ("200 OK", b"<html>not json</html>"),
    "alipay.open.public.user.follow.query": ("200 OK", b'{"unrelated_response": {"code": "10000"}}'),
    "throttled": (
        "200 OK",
        envelope("throttled", {"code": "40005", "msg": "Call Limited", "sub_code": "isv.app-call-limited"}),
    ),
}


WX_CANNED = {
    "ok": ("200 OK", b'{"coupon_id": "9867041"}'),
    "empty": ("403 Forbidden", b'{"code": "NOT_ENOUGH", "message": "stock used up"}'),
    "limited": ("403 Forbidden", b'{"code": "RULE_LIMIT", "message": "per-user limit"}'),
    "throttled": ("429 Too Many Requests", b'{"code": "FREQUENCY_LIMITED", "message": "slow down"}'),
    "broken": ("500 Internal Server Error", b'{"code": "SYSTEM_ERROR", "message": "busy"}'),
}


class Gateway:
    """Loopback WSGI app on gevent (Locust's own loop), recording every form it receives."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None, error_log=None)

    def app(self, environ, start_response):
        size = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(size).decode()
        if environ["PATH_INFO"] == "/sim/auth_code":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"auth_code": "AC-" + json.loads(raw)["user_id"]}).encode()]
        if environ["PATH_INFO"] == "/sns/jscode2session":
            query = dict(parse_qsl(environ["QUERY_STRING"]))
            self.forms.append(query)
            start_response("200 OK", [("Content-Type", "application/json")])
            if query["js_code"] == "bad":
                return [b'{"errcode": 40029, "errmsg": "invalid code"}']
            return [json.dumps({"openid": "o-" + query["js_code"], "session_key": "k"}).encode()]
        if environ["PATH_INFO"].startswith("/v3/marketing/favor/users/"):
            openid = environ["PATH_INFO"].split("/")[5]
            self.forms.append(json.loads(raw))
            status, body = WX_CANNED[openid]
            start_response(status, [("Content-Type", "application/json")])
            return [body]
        form = dict(parse_qsl(raw, keep_blank_values=True))
        self.forms.append(form)
        if form.get("method") == "slow":
            gevent.sleep(2)
        status, body = CANNED.get(form.get("method", ""), ("404 Not Found", b"no"))
        start_response(status, [("Content-Type", "application/json;charset=utf-8")])
        return [body]


@pytest.fixture
def gateway():
    gw = Gateway()
    gw.server.start()
    try:
        yield gw
    finally:
        gw.server.stop(timeout=1)


class ProbeUser(FastHttpUser):
    network_timeout = 0.5
    connection_timeout = 0.5
    max_retries = 0

    @task
    def noop(self) -> None:  # never run: the test drives the client directly
        pass


def make_client(host: str, **kwargs) -> tuple[PlatformClient, list[dict]]:
    user_class = type("Probe", (ProbeUser,), {"host": host})
    env = Environment(user_classes=[user_class], host=host)
    events: list[dict] = []
    env.events.request.add_listener(lambda **kw: events.append(kw))
    user = user_class(env)
    return PlatformClient(user.client, app_id="2021000000000001", **kwargs), events


def url(gw: Gateway) -> str:
    return f"http://127.0.0.1:{gw.server.server_port}"


def test_success_returns_node_and_reports_success(gateway):
    client, events = make_client(url(gateway))
    node = client.call("alipay.user.alipaypoint.send", {"budget_code": "JFB1", "point_amount": 100})
    assert node is not None and node["record_id"] == "R1"
    (ev,) = events
    assert ev["name"] == "points.send"
    assert ev["exception"] is None
    assert "loadkit_outcome" not in ev["context"]
    form = gateway.forms[0]
    assert form["method"] == "alipay.user.alipaypoint.send"
    assert form["app_id"] == "2021000000000001"
    assert (form["format"], form["charset"], form["sign_type"], form["version"]) == (
        "JSON",
        "utf-8",
        "RSA2",
        "1.0",
    )
    assert json.loads(form["biz_content"]) == {"budget_code": "JFB1", "point_amount": 100}
    assert " " not in form["biz_content"]  # compact JSON
    assert len(form["timestamp"]) == 19 and form["timestamp"][4] == "-" and form["timestamp"][13] == ":"
    assert "sign" not in form


def test_expected_sub_code_is_a_marked_success(gateway):
    client, events = make_client(url(gateway))
    node = client.call(
        "alipay.marketing.activity.voucher.send",
        {"activity_id": "A"},
        expected={"BUDGET_NOT_ENOUGH_ERROR": "sold_out"},
    )
    assert node is not None and node["sub_code"] == "BUDGET_NOT_ENOUGH_ERROR"
    node = client.call(
        "alipay.marketing.campaign.cash.trigger", {}, expected=["CASH_CAMP_BUDGET_INSUFFICIENT"]
    )
    assert node is not None
    assert client.call("alipay.user.alipaypoint.send", {}) is not None  # the mark must not leak
    assert [e["exception"] for e in events] == [None, None, None]
    assert [e["context"].get("loadkit_outcome") for e in events] == [
        "sold_out",
        "CASH_CAMP_BUDGET_INSUFFICIENT",
        None,
    ]
    assert [e["name"] for e in events] == ["voucher.send", "cash.trigger", "points.send"]


def test_undeclared_sub_code_is_a_failure_with_codes_in_message(gateway):
    client, events = make_client(url(gateway))
    assert client.call("alipay.marketing.activity.voucher.send", {}, expected=["OTHER"]) is None
    assert client.call("throttled", name="x") is None
    messages = [str(e["exception"]) for e in events]
    assert "40004 BUDGET_NOT_ENOUGH_ERROR: sold out" in messages[0]
    assert "40005 isv.app-call-limited" in messages[1]
    assert all("loadkit_outcome" not in e["context"] for e in events)


def test_error_response_node_is_read(gateway):
    client, events = make_client(url(gateway))
    assert (
        client.call("alipay.system.oauth.token", params={"grant_type": "authorization_code", "code": "x"})
        is None
    )
    assert "40002 isv.code-invalid: bad code" in str(events[0]["exception"])
    assert events[0]["name"] == "login.oauth"
    assert gateway.forms[0]["grant_type"] == "authorization_code" and "biz_content" not in gateway.forms[0]


@pytest.mark.parametrize(
    ("method", "needle"),
    [
        ("alipay.user.alipaypoint.budgetlib.query", "HTTP 500: boom"),
        ("alipay.user.info.share", "unparsable gateway envelope: <html>"),
        ("alipay.open.public.user.follow.query", "unparsable gateway envelope"),
    ],
)
def test_http_errors_and_garbage_are_failures(gateway, method, needle):
    client, events = make_client(url(gateway))
    assert client.call(method) is None
    (ev,) = events
    assert ev["exception"] is not None and needle in str(ev["exception"])


def test_timeout_and_refused_connection_are_failures(gateway):
    client, events = make_client(url(gateway))
    assert client.call("slow", name="slow") is None
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    client2, events2 = make_client(f"http://127.0.0.1:{closed}")
    assert client2.call("alipay.user.alipaypoint.send", {}) is None
    for ev in (*events, *events2):
        assert ev["exception"] is not None
        assert "loadkit_outcome" not in ev["context"]


def test_sim_call_returns_json(gateway):
    client, events = make_client(url(gateway))
    assert client.sim("/sim/auth_code", {"user_id": "2088000000000001"}, name="login.sim_code") == {
        "auth_code": "AC-2088000000000001"
    }
    assert events[0]["name"] == "login.sim_code" and events[0]["exception"] is None


def test_rsa2_signature_verifies_with_public_key(gateway):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    client, _ = make_client(url(gateway), private_key_pem=pem)
    assert client.signing
    client.call("alipay.user.alipaypoint.send", {"memo": "积分 & more=1"}, params={"auth_token": "T"})
    form = gateway.forms[0]
    content = "&".join(f"{k}={form[k]}" for k in sorted(form) if k != "sign")
    assert content == sign_content(form)
    key.public_key().verify(
        base64.b64decode(form["sign"]), content.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    form["point_amount"] = "999"  # a tampered form must not verify
    with pytest.raises(InvalidSignature):
        key.public_key().verify(
            base64.b64decode(form["sign"]), sign_content(form).encode(), padding.PKCS1v15(), hashes.SHA256()
        )


def test_private_key_from_env_file_and_bare_base64(tmp_path, monkeypatch):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    bare = "".join(line for line in pem.splitlines() if "-----" not in line)
    assert load_private_key(bare).private_numbers() == key.private_numbers()
    path = tmp_path / "app.pem"
    path.write_text(pem)
    monkeypatch.delenv("LOADKIT_APP_PRIVATE_KEY", raising=False)
    monkeypatch.setenv("LOADKIT_APP_PRIVATE_KEY_FILE", str(path))
    assert PlatformClient(None, app_id="A").signing
    monkeypatch.setenv("LOADKIT_APP_PRIVATE_KEY_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(SigningKeyError, match=r"missing\.pem"):
        PlatformClient(None, app_id="A")
    with pytest.raises(SigningKeyError, match="not a readable"):
        load_private_key("not a key")


def test_request_names_are_one_to_one_and_biz_nos_unique():
    names = {**REQUEST_NAMES, **READ_NAMES}
    assert len(names) == len(REQUEST_NAMES) + len(READ_NAMES)
    assert len(set(names.values())) == len(names)
    assert REQUEST_NAMES["points.send"] == "alipay.user.alipaypoint.send"
    assert "points.budget" not in REQUEST_NAMES  # a read has no ledger effect to reconcile
    nos = {new_biz_no() for _ in range(1000)}
    assert len(nos) == 1000 and all(len(n) <= 64 for n in nos)


def test_wechat_login_and_coupon_classification(gateway):
    client, events = make_client(url(gateway))
    wx = WeChatClient(client.http, appid="wx1", secret="s")
    assert wx.code2session("abc") == {"openid": "o-abc", "session_key": "k"}
    assert wx.code2session("bad") is None
    assert "errcode 40029: invalid code" in str(events[1]["exception"])
    assert wx.send_coupon("ok", "9856000", out_request_no="R1") == {"coupon_id": "9867041"}
    assert gateway.forms[-1] == {
        "stock_id": "9856000",
        "out_request_no": "R1",
        "appid": "wx1",
        "stock_creator_mchid": "1900000001",
    }
    expected = {"NOT_ENOUGH": "sold_out", "RULE_LIMIT": "user_limit", "FREQUENCY_LIMITED": "throttled"}
    assert wx.send_coupon("empty", "9856000", expected=expected)["code"] == "NOT_ENOUGH"
    assert wx.send_coupon("limited", "9856000", expected=expected)["code"] == "RULE_LIMIT"
    assert wx.send_coupon("throttled", "9856000", expected=expected) is None  # 429 is never normal
    assert wx.send_coupon("broken", "9856000", expected=expected) is None
    assert wx.send_coupon("limited", "9856000") is None  # undeclared
    coupon = events[2:]
    assert [e["name"] for e in coupon] == ["wx.coupon.send"] * 6
    assert [e["context"].get("loadkit_outcome") for e in coupon[:3]] == [None, "sold_out", "user_limit"]
    assert all(e["exception"] is None for e in coupon[:3])
    assert "HTTP 429 FREQUENCY_LIMITED: slow down" in str(coupon[3]["exception"])
    assert "HTTP 500 SYSTEM_ERROR: busy" in str(coupon[4]["exception"])
    assert "HTTP 403 RULE_LIMIT" in str(coupon[5]["exception"])


def test_gateway_timestamp_is_china_time_now() -> None:
    from datetime import datetime, timedelta

    from loadkit.platform.client import CHINA_TZ, gateway_timestamp

    before = datetime.now(CHINA_TZ).replace(microsecond=0)
    stamp = gateway_timestamp()
    after = datetime.now(CHINA_TZ)
    parsed = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA_TZ)
    assert before <= parsed <= after
    assert after - parsed < timedelta(seconds=1)


def test_gateway_timestamp_follows_the_clock_second_by_second(monkeypatch) -> None:
    import loadkit.platform.client as client_module

    now = [1_764_000_000.2]  # 2025-11-25 00:00:00 in China
    monkeypatch.setattr(client_module.time, "time", lambda: now[0])
    assert client_module.gateway_timestamp() == "2025-11-25 00:00:00"
    now[0] += 0.7
    assert client_module.gateway_timestamp() == "2025-11-25 00:00:00"
    now[0] += 0.2
    assert client_module.gateway_timestamp() == "2025-11-25 00:00:01"
    now[0] += 3600
    assert client_module.gateway_timestamp() == "2025-11-25 01:00:01"
