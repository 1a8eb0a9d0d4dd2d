"""The one request pipeline (pipeline.py): every way a platform call reaches the mock (the gateway
front, aiohttp's gateway route, the WeChat Pay v3 and jscode2session routes) meets an injected
fault the same way, each in its own dialect, and is counted once in the metrics."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import mock_platform
from mock_platform.faults import Faults
from mock_platform.gateway import AlipayWire
from mock_platform.ledger import Ledger
from mock_platform.methods import METHODS, Call
from mock_platform.methods.wechat import CODE2SESSION, SEND_COUPON
from mock_platform.metrics import Metrics
from mock_platform.pipeline import Pipeline
from mock_platform.signing import generate_private_key
from mock_platform.wechat import LoginWire, PayWire
from mock_platform.wxpay import Platform

FOLLOW = "alipay.open.public.user.follow.query"
SEED = {"wechat": {"stocks": [{"stock_id": "9856000", "max_coupons": 1000, "max_coupons_per_user": 1}]}}
HANG_S, LATENCY_MS = 0.3, 150


def post(target: str, body: bytes, ctype: str) -> bytes:
    head = f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


def alipay_request(mock: Any, n: int, method: str = FOLLOW) -> bytes:
    biz = json.dumps({"user_id": "2088000000000001"})
    form = urllib.parse.urlencode({"app_id": "2021000000000001", "method": method, "biz_content": biz})
    return post("/gateway.do", form.encode(), "application/x-www-form-urlencoded;charset=utf-8")


def pay_request(mock: Any, n: int, body: bytes | None = None) -> bytes:
    if body is None:
        fields = {
            "stock_id": "9856000",
            "out_request_no": f"r-{n}",
            "appid": "wx1",
            "stock_creator_mchid": "1",
        }
        body = json.dumps(fields).encode()
    return post(f"/v3/marketing/favor/users/oUSER{n}/coupons", body, "application/json")


def login_request(mock: Any, n: int, grant_type: str = "authorization_code") -> bytes:
    code = mock.sim("/sim/auth_code", {"user_id": f"2088{n:012d}"})[1]["auth_code"]
    query = urllib.parse.urlencode({"appid": "wx1", "secret": "s", "js_code": code, "grant_type": grant_type})
    return f"GET /sns/jscode2session?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


@dataclass(frozen=True)
class Way:
    """One way in: the request it sends, whether the gateway front answers it, its method's name,
    how its dialect answers a success, an injected error and an injected throttle (status, the
    body's code, the metrics label), and a request it refuses (or fails) with its metrics label."""

    request: Callable[[Any, int], bytes]
    front: bool
    method: str
    code_of: Callable[[dict], Any]
    ok: tuple[int, Any, str]
    error: tuple[int, Any, str]
    throttle: tuple[int, Any, str]
    refused: Callable[[Any], bytes]
    refused_as: tuple[str, str]


def _alipay(front: bool) -> Way:
    return Way(
        alipay_request,
        front,
        FOLLOW,
        lambda doc: doc["alipay_open_public_user_follow_query_response"]["code"],
        (200, "10000", "10000"),
        (200, "20000", "20000/isp.unknow-error"),
        (200, "40005", "40005/isv.app-call-limited"),
        lambda mock: alipay_request(mock, 0, "no.such.method"),
        ("(invalid)", "40002/isv.invalid-method"),
    )


WAYS = {
    "gateway-front": _alipay(front=True),
    "gateway-aiohttp": _alipay(front=False),
    "wechat-pay": Way(
        pay_request,
        False,
        SEND_COUPON,
        lambda doc: doc.get("code", "coupon" if "coupon_id" in doc else None),
        (200, "coupon", "200"),
        (500, "SYSTEM_ERROR", "500/SYSTEM_ERROR"),
        (429, "FREQUENCY_LIMITED", "429/FREQUENCY_LIMITED"),
        lambda mock: pay_request(mock, 0, b"[]"),
        (SEND_COUPON, "400/PARAM_ERROR"),
    ),
    "wechat-login": Way(
        login_request,
        False,
        CODE2SESSION,
        lambda doc: doc.get("errcode", "openid" if "openid" in doc else None),
        (200, "openid", "0"),
        (200, -1, "-1"),
        (200, 45011, "45011"),
        lambda mock: login_request(mock, 0, "password"),
        (CODE2SESSION, "40002"),
    ),
}


def exchange(mock: Any, request: bytes, timeout: float = 5.0) -> tuple[int, dict] | None:
    """Send one request on a new connection: (status, JSON body), or None when the server closed
    without an answer; ConnectionResetError when it reset the connection."""
    with socket.create_connection(mock.serving.address, timeout=timeout) as sock:
        sock.sendall(request)
        raw = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
            head, _, body = raw.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\nContent-Length: (\d+)", head)
            if length and len(body) >= int(length.group(1)):
                break
    if not raw:
        return None
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def outcomes(mock: Any, method: str) -> dict[str, int]:
    stats = mock.admin("GET", "/admin/stats")[1]["methods"]
    return stats.get(method, {}).get("outcomes", {})


@pytest.fixture(params=WAYS, ids=list(WAYS))
def way(request: pytest.FixtureRequest, make_mock: Any) -> tuple[Way, Any]:
    entry = WAYS[request.param]
    return entry, make_mock({"seed": SEED}, front=entry.front)


def answered_by_front(mock: Any) -> int:
    return mock.serving.front.answered if mock.serving.front is not None else 0


def check(entry: Way, mock: Any, n: int | bytes, expected: tuple[int, Any, str]) -> None:
    """Send request `n` (or these bytes) and check its status and code."""
    status, doc = exchange(mock, n if isinstance(n, bytes) else entry.request(mock, n)) or (0, {})
    assert (status, entry.code_of(doc)) == expected[:2], doc


@pytest.mark.parametrize("fault", ["error", "throttle", "hang", "reset", "latency"])
def test_an_injected_fault_behaves_the_same_on_every_path(way: tuple[Way, Any], fault: str) -> None:
    entry, mock = way
    spec = {
        "error": {"error": {"rate": 1.0}},
        "throttle": {"throttle": {"rate": 0.001, "burst": 1}},
        "hang": {"outage": {"mode": "hang", "hang_s": HANG_S}},
        "reset": {"outage": {"mode": "reset"}},
        "latency": {"latency": {"dist": "constant", "ms": LATENCY_MS}},
    }[fault]
    assert mock.admin("PUT", "/admin/faults", {entry.method: spec})[0] == 200
    first = entry.request(mock, 1)
    started = time.perf_counter()
    if fault == "error":
        check(entry, mock, first, entry.error)
        expected = {entry.error[2]: 1}
    elif fault == "throttle":
        check(entry, mock, first, entry.ok)
        check(entry, mock, 2, entry.throttle)
        expected = {entry.ok[2]: 1, entry.throttle[2]: 1}
    elif fault == "hang":
        assert exchange(mock, first) is None  # closed, no answer
        assert time.perf_counter() - started >= HANG_S
        expected = {"hang": 1}
    elif fault == "reset":
        with pytest.raises(ConnectionResetError):
            exchange(mock, first)
        expected = {"reset": 1}
    else:
        check(entry, mock, first, entry.ok)
        assert time.perf_counter() - started >= LATENCY_MS / 1000
        expected = {entry.ok[2]: 1}
    calls = sum(expected.values())
    assert answered_by_front(mock) == (calls if entry.front else 0)
    # Counted once each, with its outcome; a delayed answer's latency includes the delay.
    assert outcomes(mock, entry.method) == expected
    if fault == "latency":
        stats = mock.admin("GET", "/admin/stats")[1]["methods"][entry.method]
        assert stats["latency_ms"]["mean"] >= LATENCY_MS
    assert mock.admin("GET", "/admin/health")[0] == 200  # still serving


def test_each_call_is_counted_once_refused_or_answered(way: tuple[Way, Any]) -> None:
    """A refused request (it never became a call) is counted once too: the gateway's under
    "(invalid)" when the method is unknown, Pay v3's under its route's method."""
    entry, mock = way
    for n in range(3):
        check(entry, mock, n, entry.ok)
    assert exchange(mock, entry.refused(mock)) is not None
    stats = mock.admin("GET", "/admin/stats")[1]["methods"]
    assert stats[entry.method]["outcomes"][entry.ok[2]] == 3
    method, outcome = entry.refused_as
    assert stats[method]["outcomes"][outcome] == 1
    assert sum(m["calls"] for m in stats.values()) == 4
    assert answered_by_front(mock) == (4 if entry.front else 0)


WIRES = {
    "alipay": (lambda: AlipayWire(generate_private_key()), METHODS, FOLLOW, b'"code":"20000"'),
    "wechat-pay": (lambda: PayWire(Platform()), None, SEND_COUPON, b'"code":"SYSTEM_ERROR"'),
    "wechat-login": (LoginWire, LoginWire.handlers, CODE2SESSION, b'"errcode":-1'),
}


@pytest.mark.parametrize("name", WIRES)
def test_a_mock_bug_answers_the_dialects_system_error_once(monkeypatch, name: str) -> None:
    make, handlers, method, expected = WIRES[name]
    wire = make()

    def boom(ledger: Ledger, call: Call) -> dict:
        raise RuntimeError("a bug in a handler")

    monkeypatch.setitem(handlers if handlers is not None else wire.handlers, method, boom)
    metrics = Metrics()
    pipeline = Pipeline(Faults(), Ledger(), metrics)
    reply = pipeline.run(wire, Call("", method, {}, {}, time.time()), "", None, time.perf_counter())
    assert expected in reply.body and reply.drop is None
    assert metrics.methods[method].calls == 1


def test_faults_and_metrics_are_applied_in_the_pipeline_only() -> None:
    """No front end or dialect asks the faults or counts a call itself."""
    package = Path(mock_platform.__file__).parent
    pattern = re.compile(r"\.(decide|latency_s|observe)\(")
    users = sorted(
        path.name
        for path in package.rglob("*.py")
        if path.name not in ("faults.py", "metrics.py") and pattern.search(path.read_text(encoding="utf-8"))
    )
    assert users == ["pipeline.py"]
