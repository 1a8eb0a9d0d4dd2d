"""POST /gateway.do over real HTTP: envelopes, signatures, bad input, faults."""

from __future__ import annotations

import http.client
import json
import random
import re
import socket
import time
import urllib.parse

import pytest
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2
from cryptography.hazmat.primitives import serialization

from mock_platform import envelope, signing
from mock_platform.app import GATEWAY, create_app
from mock_platform.config import MockConfig
from mock_platform.gateway import parse_form
from mock_platform.methods import METHODS

APP_ID = "2021000000000001"
USER = "2088000000000001"
FORM = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
SEED = {
    "activities": [
        {
            "activity_id": "ACT1",
            "activity_name": "test",
            "quantity": 5,
            "quantity_limit_per_user": 1,
            "amount": "5.00",
            "publish_start_time": "2026-01-01 00:00:00",
            "publish_end_time": "2099-01-01 00:00:00",
        }
    ],
    "point_budgets": [{"budget_code": "JFB1", "total_amount": 100000}],
}
RESPONSE_RE = re.compile(rb'^\{"(\w+)":(\{.*\}),"sign":"([A-Za-z0-9+/=]+)"\}$', re.S)


@pytest.fixture(params=[True, False], ids=["fast-path", "aiohttp-only"])
def front(request: pytest.FixtureRequest) -> bool:
    """Both ways /gateway.do is served: the gateway front, and aiohttp's route alone."""
    return request.param


@pytest.fixture(scope="module")
def app_key():
    return signing.generate_private_key()


def sdk_sign(key, params: dict[str, str]) -> dict[str, str]:
    """Sign like Alipay's Python SDK (its own code, PKCS#1 private key), independent of ours."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return {**params, "sign": sign_with_rsa2(pem, get_sign_content(params), "utf-8")}


def common(method: str, biz: dict | None = None, **extra: str) -> dict[str, str]:
    params = {
        "app_id": APP_ID,
        "method": method,
        "format": "json",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2026-11-24 10:00:00",
        "version": "1.0",
        **extra,
    }
    if biz is not None:
        params["biz_content"] = json.dumps(biz, ensure_ascii=False)
    return params


def verify_response(mock, raw: bytes) -> tuple[str, dict]:
    """Check the envelope's sign against /admin/keys over the exact inner bytes."""
    match = RESPONSE_RE.match(raw)
    assert match, raw
    status, keys = mock.admin("GET", "/admin/keys")
    assert status == 200
    public = signing.load_public_key(keys["alipay_public_key"])
    assert signing.verify(public, match.group(2), match.group(3).decode())
    return match.group(1).decode(), json.loads(match.group(2))


def post(mock, body: bytes, headers: dict[str, str] | None = None, path: str = "/gateway.do"):
    return mock.request("POST", path, body, FORM if headers is None else headers)


def doc_of(raw: bytes) -> tuple[str, dict]:
    doc = json.loads(raw)
    node = next(iter(doc))
    return node, doc[node]


# ----------------------------------------------------------------------------- form decoding


def reference_form(raw: bytes) -> dict[str, str]:
    """What urllib makes of a form body (bytes, so bad UTF-8 fails the same way)."""
    out = {}
    for pair in raw.split(b"&"):
        if pair:
            key, _, value = pair.partition(b"=")
            key_text = urllib.parse.unquote_to_bytes(key.replace(b"+", b" ")).decode("utf-8")
            out[key_text] = urllib.parse.unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
    return out


def assert_reads_like_stdlib(raw: bytes) -> None:
    try:
        expected = reference_form(raw)
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            parse_form(raw)
    else:
        assert parse_form(raw) == expected, raw


def test_form_decoding_matches_the_stdlib_on_random_input() -> None:
    rnd = random.Random(7)
    pieces = [
        b"a",
        b"&",
        b"=",
        b"%",
        b"+",
        b" ",
        b"3",
        b"D",
        b"f",
        b"z",
        b"\t",
        b"\n",
        b"\r",
        b"\x00",
        b"\x01",
    ]
    pieces += ["集".encode(), b"\xff", b"%e9%9b%86", b"%3D", b"%26", b"%0A", b"%00", b"%01"]
    for _ in range(20000):
        raw = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12)))
        assert_reads_like_stdlib(raw)
    # Well-formed k=v&k=v bodies take the one-pass path: stray, trailing and doubled %, encoded
    # NUL and separators, line breaks and bad UTF-8 inside them must still read as the stdlib reads.
    atoms = [p for p in pieces if p not in (b"&", b"=")] + [b"%", b"%%", b"%4", b"%3d", b"%zz", b"%\n"]
    with_escapes = 0
    for _ in range(20000):
        pairs = [
            b"".join(rnd.choice(atoms) for _ in range(rnd.randint(0, 3)))
            + b"="
            + b"".join(rnd.choice(atoms) for _ in range(rnd.randint(0, 5)))
            for _ in range(rnd.randint(1, 4))
        ]
        raw = b"&".join(pairs)
        with_escapes += b"%" in raw and b"\n" not in raw
        assert_reads_like_stdlib(raw)
    assert with_escapes > 5000
    biz = json.dumps({"memo": "集分宝 & = + %", "n": 1}, ensure_ascii=False)
    body = urllib.parse.urlencode({"method": "m", "biz_content": biz}).encode()
    assert parse_form(body) == {"method": "m", "biz_content": biz}


# ----------------------------------------------------------------------------- envelopes


def test_every_method_answers_its_own_node(mock_server) -> None:
    for method in METHODS:
        node, inner = mock_server.gateway(method, {})
        assert node in (envelope.node_name(method), "error_response"), (method, node)
        assert inner["code"] in ("10000", "20001", "40001", "40002", "40004"), (method, inner)
        assert inner["msg"]


def test_success_envelope_and_unsigned_fast_path(make_mock) -> None:
    mock = make_mock({"seed": SEED})
    raw = mock.gateway_raw(common("alipay.user.alipaypoint.budgetlib.query", {"budget_code": "JFB1"}))
    doc = json.loads(raw)
    assert list(doc) == ["alipay_user_alipaypoint_budgetlib_query_response"]  # no sign: no crypto
    inner = doc["alipay_user_alipaypoint_budgetlib_query_response"]
    assert inner["code"] == "10000" and inner["msg"] == "Success"
    assert list(inner)[:2] == ["code", "msg"]


def test_bad_auth_code_answers_error_response(mock_server) -> None:
    node, inner = mock_server.gateway(
        "alipay.system.oauth.token", grant_type="authorization_code", code="nope"
    )
    assert node == "error_response"
    assert (inner["code"], inner["sub_code"]) == ("40002", "isv.code-invalid")


def test_common_params_in_query_biz_content_in_body(make_mock) -> None:
    mock = make_mock({"seed": SEED})
    query = common("alipay.user.alipaypoint.budgetlib.query")
    body = urllib.parse.urlencode({"biz_content": json.dumps({"budget_code": "JFB1"})}).encode()
    status, _, raw = post(mock, body, path="/gateway.do?" + urllib.parse.urlencode(query))
    assert status == 200
    node, inner = doc_of(raw)
    assert node == "alipay_user_alipaypoint_budgetlib_query_response"
    assert inner["code"] == "10000", inner
    # On a clash the form wins.
    form = urllib.parse.urlencode({"method": "alipay.user.alipaypoint.budgetlib.query"}).encode()
    query = common("no.such.method", {"budget_code": "JFB1"})
    status, _, raw = post(mock, form, path="/gateway.do?" + urllib.parse.urlencode(query))
    assert doc_of(raw)[1]["code"] == "10000"


# ----------------------------------------------------------------------------- signatures


def register(mock, key) -> None:
    status, body = mock.admin(
        "POST", "/admin/apps", {"app_id": APP_ID, "public_key": signing.public_pem(key)}
    )
    assert status == 200, body


def test_signed_request_passes_and_the_response_is_signed(make_mock, app_key) -> None:
    mock = make_mock({"seed": SEED})
    register(mock, app_key)
    biz = {"activity_id": "ACT1", "out_biz_no": "o-1", "user_id": USER}
    raw = mock.gateway_raw(sdk_sign(app_key, common("alipay.marketing.activity.voucher.send", biz)))
    node, inner = verify_response(mock, raw)
    assert node == "alipay_marketing_activity_voucher_send_response"
    assert inner["code"] == "10000" and inner["voucher_id"]
    # Same out_biz_no: the replay is byte-identical inside the node.
    again = mock.gateway_raw(sdk_sign(app_key, common("alipay.marketing.activity.voucher.send", biz)))
    assert RESPONSE_RE.match(again).group(2) == RESPONSE_RE.match(raw).group(2)


def test_tampered_request_is_refused_with_the_checked_string(make_mock, app_key) -> None:
    mock = make_mock({"seed": SEED})
    register(mock, app_key)
    params = sdk_sign(app_key, common("alipay.user.alipaypoint.budgetlib.query", {"budget_code": "JFB1"}))
    params["biz_content"] = json.dumps({"budget_code": "JFB2"})
    node, inner = verify_response(mock, mock.gateway_raw(params))  # errors are signed too
    assert node == "alipay_user_alipaypoint_budgetlib_query_response"
    assert (inner["code"], inner["sub_code"]) == ("40002", "isv.invalid-signature")
    assert signing.sign_content(params) in inner["sub_msg"]


def test_wrong_sign_type_is_refused(make_mock, app_key) -> None:
    mock = make_mock()
    register(mock, app_key)
    params = sdk_sign(app_key, common("alipay.user.alipaypoint.budgetlib.query", {}, sign_type="RSA"))
    _, inner = verify_response(mock, mock.gateway_raw(params))
    assert inner["sub_code"] == "isv.invalid-signature-type"


def test_strict_refuses_unsigned_and_unconfigured(make_mock, app_key) -> None:
    mock = make_mock(strict=True)
    _, inner = doc_of(mock.gateway_raw(common("alipay.user.alipaypoint.budgetlib.query", {})))
    assert (inner["code"], inner["sub_code"]) == ("40001", "isv.missing-signature")
    signed = sdk_sign(app_key, common("alipay.user.alipaypoint.budgetlib.query", {}))
    _, inner = verify_response(mock, mock.gateway_raw(signed))
    assert (inner["code"], inner["sub_code"]) == ("40003", "isv.missing-signature-config")
    register(mock, app_key)
    _, inner = verify_response(mock, mock.gateway_raw(signed))
    assert inner["sub_code"] != "isv.missing-signature-config"


def test_sign_responses_signs_unsigned_calls(make_mock) -> None:
    mock = make_mock(sign_responses=True)
    node, inner = verify_response(mock, mock.gateway_raw(common("no.such.method")))
    assert node == "error_response" and inner["sub_code"] == "isv.invalid-method"


# ----------------------------------------------------------------------------- bad input


BAD_INPUTS = [
    pytest.param(b"", FORM, "40001", "isv.missing-method", id="empty-body"),
    pytest.param(b"method=", FORM, "40001", "isv.missing-method", id="empty-method"),
    pytest.param(b"method=no.such.api&app_id=1", FORM, "40002", "isv.invalid-method", id="unknown-method"),
    pytest.param(
        b'{"method":"x"}', {"Content-Type": "application/json"}, "40002", "isv.invalid-parameter", id="json"
    ),
    pytest.param(b"\xff\xfemethod=x", FORM, "40002", "isv.invalid-charset", id="invalid-utf8"),
    pytest.param(b"method=%ff%fe", FORM, "40002", "isv.invalid-charset", id="invalid-utf8-escaped"),
    pytest.param(
        b"method=alipay.user.alipaypoint.send&app_id=1",
        {"Content-Type": "application/x-www-form-urlencoded; charset=gbk"},
        "40002",
        "isv.invalid-charset",
        id="gbk",
    ),
    pytest.param(
        "&".join(f"k{i}=v" for i in range(500)).encode(),
        FORM,
        "40002",
        "isv.invalid-parameter",
        id="many-fields",
    ),
    pytest.param(
        b"method=alipay.user.alipaypoint.send", FORM, "40001", "isv.missing-app-id", id="missing-app-id"
    ),
    pytest.param(
        b"method=alipay.user.alipaypoint.send&app_id=1&biz_content=%7Bnot+json",
        FORM,
        "40002",
        "isv.invalid-parameter",
        id="biz-not-json",
    ),
    pytest.param(
        b"method=alipay.user.alipaypoint.send&app_id=1&biz_content=%5B1%2C2%5D",
        FORM,
        "40002",
        "isv.invalid-parameter",
        id="biz-array",
    ),
    pytest.param(
        b"method=alipay.user.alipaypoint.send&app_id=1&biz_content="
        + urllib.parse.quote(
            json.dumps({"budget_code": "J", "partner_biz_no": "p", "user_id": USER, "point_amount": -5})
        ).encode(),
        FORM,
        "40002",
        "isv.invalid-parameter",
        id="negative-amount",
    ),
    pytest.param(
        b"method=alipay.user.alipaypoint.send&app_id=1&biz_content="
        + urllib.parse.quote(
            json.dumps({"budget_code": "J", "partner_biz_no": "p", "user_id": USER, "point_amount": 10**30})
        ).encode(),
        FORM,
        "40002",
        "isv.invalid-parameter",
        id="huge-amount",
    ),
]


@pytest.mark.parametrize(("body", "headers", "code", "sub_code"), BAD_INPUTS)
def test_bad_input_gets_a_well_formed_envelope(make_mock, front, body, headers, code, sub_code) -> None:
    mock_server = make_mock(front=front)
    status, resp_headers, raw = post(mock_server, body, headers)
    assert status == 200
    assert resp_headers["Content-Type"].startswith("application/json")
    _, inner = doc_of(raw)
    assert (inner["code"], inner.get("sub_code")) == (code, sub_code), inner
    assert inner["msg"] and inner["sub_msg"]
    assert mock_server.admin("GET", "/admin/health")[0] == 200  # still serving


def test_a_bad_query_is_refused_before_a_body_that_is_not_a_form(make_mock, front) -> None:
    mock = make_mock(front=front)
    status, _, raw = post(mock, b'{"a":1}', {"Content-Type": "application/json"}, "/gateway.do?method=%FF")
    assert status == 200 and doc_of(raw)[1]["sub_code"] == "isv.invalid-charset"


def test_a_body_that_cannot_be_decoded_answers_20000(make_mock, front) -> None:
    mock = make_mock(front=front)
    headers = {**FORM, "Content-Encoding": "gzip"}
    status, _, raw = post(mock, b"method=alipay.user.info.share&app_id=1", headers)
    assert status == 200
    node, inner = doc_of(raw)
    assert (node, inner["code"], inner["sub_code"]) == ("error_response", "20000", "isp.unknow-error")
    assert mock.admin("GET", "/admin/health")[0] == 200


def test_a_result_that_cannot_be_written_answers_20000(monkeypatch) -> None:
    """A mock bug (a handler result orjson cannot write) still answers an envelope."""
    gateway = create_app(MockConfig())[GATEWAY]
    monkeypatch.setitem(METHODS, "alipay.user.info.share", lambda ledger, call: {"bad": object()})
    reply = gateway.answer(b"", b"method=alipay.user.info.share&app_id=1", time.perf_counter(), time.time())
    node, inner = doc_of(reply.body)
    assert node == "alipay_user_info_share_response" and inner["code"] == "20000"


def test_get_is_refused_with_an_envelope(mock_server) -> None:
    status, headers, raw = mock_server.request("GET", "/gateway.do?method=alipay.user.info.share")
    assert status == 405 and headers["Allow"] == "POST"
    assert doc_of(raw) == (
        "error_response",
        {
            "code": "40002",
            "msg": "Invalid Arguments",
            "sub_code": "isv.invalid-parameter",
            "sub_msg": "gateway.do accepts POST only",
        },
    )


def test_body_over_the_limit_is_413(make_mock) -> None:
    mock = make_mock({"limits": {"max_body_bytes": 1024}})
    status, _, raw = post(mock, b"method=x&pad=" + b"a" * 2000)
    assert status == 413
    _, inner = doc_of(raw)
    assert inner["code"] == "40002" and "1024 bytes" in inner["sub_msg"]
    # Chunked, so the length is not known up front.
    host, port = mock.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(
            "POST",
            "/gateway.do",
            body=iter([b"method=x&pad=", b"a" * 1500]),
            headers=FORM,
            encode_chunked=True,
        )
        resp = conn.getresponse()
        assert resp.status == 413
        assert doc_of(resp.read())[1]["code"] == "40002"
    finally:
        conn.close()
    assert mock.admin("GET", "/admin/health")[0] == 200


# ----------------------------------------------------------------------------- faults


def test_injected_error_and_throttle(make_mock, front) -> None:
    method = "alipay.user.alipaypoint.budgetlib.query"
    mock = make_mock(
        {
            "seed": SEED,
            "faults": {method: {"error": {"rate": 1.0, "code": "20000", "sub_code": "isp.unknow-error"}}},
        },
        front=front,
    )
    _, inner = mock.gateway(method, {"budget_code": "JFB1"})
    assert (inner["code"], inner["sub_code"]) == ("20000", "isp.unknow-error")
    status, _ = mock.admin("PUT", "/admin/faults", {method: {"throttle": {"rate": 0.001, "burst": 2}}})
    assert status == 200
    codes = [mock.gateway(method, {"budget_code": "JFB1"})[1]["code"] for _ in range(4)]
    assert codes == ["10000", "10000", "40005", "40005"]
    _, inner = mock.gateway(method, {"budget_code": "JFB1"})
    assert inner["sub_code"] == "isv.app-call-limited"


def test_injected_latency_and_reset(make_mock, front) -> None:
    method = "alipay.user.alipaypoint.budgetlib.query"
    faults = {method: {"latency": {"dist": "constant", "ms": 80}}}
    mock = make_mock({"seed": SEED, "faults": faults}, front=front)
    started = time.perf_counter()
    assert mock.gateway(method, {"budget_code": "JFB1"})[1]["code"] == "10000"
    assert time.perf_counter() - started >= 0.08
    mock.admin("PUT", "/admin/faults", {method: {"outage": {"mode": "reset"}}})
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        mock.gateway(method, {"budget_code": "JFB1"})
    assert mock.gateway("alipay.user.info.share")[1]["code"] == "20001"  # other methods unaffected


def test_hang_closes_without_an_answer(make_mock, front) -> None:
    method = "alipay.user.info.share"
    mock = make_mock({"faults": {method: {"outage": {"mode": "hang", "hang_s": 0.3}}}}, front=front)
    started = time.perf_counter()
    with pytest.raises((ConnectionError, http.client.HTTPException, socket.timeout, OSError)):
        mock.gateway(method)
    assert time.perf_counter() - started >= 0.3


def test_metrics_count_outcomes(make_mock, front) -> None:
    mock_server = make_mock(front=front)
    mock_server.gateway("alipay.user.info.share")
    mock_server.gateway("no.such")
    status, headers, raw = mock_server.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = raw.decode()
    share = 'method="alipay.user.info.share",outcome="20001/aop.invalid-auth-token"'
    assert f"mock_platform_calls_total{{{share}}} 1.0" in text
    assert 'mock_platform_calls_total{method="(invalid)",outcome="40002/isv.invalid-method"} 1.0' in text
    assert 'mock_platform_latency_seconds_count{method="alipay.user.info.share"} 1.0' in text
