"""The gateway protocol: requests the mock (and so Alipay's rules) accept; responses verified over
the exact bytes of their node."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from campaign_service.alipay import (
    ResponseError,
    load_private_key,
    load_public_key,
    read_reply,
    sign_content,
    signed_request,
)
from mock_platform import envelope, signing

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
METHOD = "alipay.user.alipaypoint.send"


def _sign(data: bytes, key: rsa.RSAPrivateKey = KEY) -> str:
    return base64.b64encode(key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode()


def test_a_request_is_signed_as_the_platform_checks_it() -> None:
    biz = {"budget_code": "JFB", "partner_biz_no": "B1", "point_amount": 100, "user_id": "2088000000000001"}
    query, body = signed_request(KEY, "2021000000000001", METHOD, biz=biz, now=1_800_000_000.0)
    q, b = dict(parse_qsl(query)), dict(parse_qsl(body.decode()))
    assert {"app_id", "method", "sign", "sign_type", "timestamp", "version", "charset", "format"} <= set(q)
    assert set(b) == {"biz_content"} and json.loads(b["biz_content"]) == biz
    assert q["timestamp"] == "2027-01-15 16:00:00"  # GMT+8
    params = {**q, **b}
    ok, content = signing.verify_params(KEY.public_key(), params, params["sign"])  # the mock's own check
    assert ok and "sign=" not in content and content.startswith("app_id=")
    ok, _ = signing.verify_params(OTHER.public_key(), params, params["sign"])
    assert not ok


def test_oauth_params_go_top_level_and_empty_values_are_not_signed() -> None:
    _query, body = signed_request(
        KEY, "1", "alipay.system.oauth.token", params={"grant_type": "authorization_code", "code": "c"}, now=0
    )
    assert dict(parse_qsl(body.decode())) == {"grant_type": "authorization_code", "code": "c"}
    assert sign_content({"b": "2", "a": "1", "sign": "x", "empty": ""}) == "a=1&b=2"


@pytest.mark.parametrize("node", [envelope.node_name(METHOD), envelope.ERROR_NODE])
def test_reads_what_the_mock_renders(node: str) -> None:
    inner = {"code": "10000", "msg": "Success", "record_id": "R1", "note": '中文 "quoted" \\/'}
    raw = envelope.render(node, inner, lambda data: _sign(data))
    reply = read_reply(raw, METHOD, KEY.public_key())
    assert reply.node == node and reply.fields == inner
    assert reply.ok == (inner["code"] == "10000")


def test_the_signature_covers_the_exact_bytes_whatever_the_spacing() -> None:
    inner = '{ "code" : "40004", "msg":"Business Failed",\n "sub_code":"BUDGET_NOT_ENOUGH" }'
    raw = f'{{ "sign" : "{_sign(inner.encode())}" ,\n"{envelope.node_name(METHOD)}" : {inner} }}'.encode()
    reply = read_reply(raw, METHOD, KEY.public_key())
    assert (reply.code, reply.sub_code, reply.ok) == ("40004", "BUDGET_NOT_ENOUGH", False)
    compact = inner.replace(" ", "")  # the same object, other bytes: not what was signed
    forged = f'{{"{envelope.node_name(METHOD)}":{compact},"sign":"{_sign(inner.encode())}"}}'.encode()
    with pytest.raises(ResponseError, match="does not verify"):
        read_reply(forged, METHOD, KEY.public_key())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "not a JSON object"),
        (b"[]", "expected '{'"),
        (b'{"other_response": {"code": "10000"}}', "neither"),
        (b'{"alipay_user_alipaypoint_send_response": "x", "sign": "x"}', "not an object"),
        (b'{"alipay_user_alipaypoint_send_response": {"code": "10000"}}', "not signed"),
        (b'{"alipay_user_alipaypoint_send_response": {"code": "10000"}, "sign": 5}', "not signed"),
        (b'{"alipay_user_alipaypoint_send_response": {"code": "10000"}, "sign": "!!"}', "does not verify"),
        (b'{"alipay_user_alipaypoint_send_response": {"code": "10000"}} trailing', "after the response"),
        (b'{"alipay_user_alipaypoint_send_response": {"code": "10000"},}', "not a JSON object"),
        (b'\xff{"a": 1}', "not UTF-8"),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not a JSON object"),
    ],
)
def test_untrustworthy_answers_are_refused(raw: bytes, expected: str) -> None:
    with pytest.raises(ResponseError, match=None) as info:
        read_reply(raw, METHOD, KEY.public_key())
    assert expected in str(info.value)


def test_without_a_key_the_signature_is_not_checked() -> None:
    reply = read_reply(b'{"alipay_user_alipaypoint_send_response": {"code": "10000"}}', METHOD, None)
    assert reply.ok


def test_key_formats() -> None:
    pkcs1 = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    pkcs8_der = KEY.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for text in (pkcs1, base64.b64encode(pkcs8_der).decode()):
        assert load_private_key(text, "k").private_numbers() == KEY.private_numbers()
    spki = KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert (
        load_public_key(base64.b64encode(spki).decode(), "k").public_numbers()
        == KEY.public_key().public_numbers()
    )
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    small_pem = small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(ValueError, match="needs 2048"):
        load_private_key(small_pem, "k")
    for bad in ("", "not base64 !", "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----"):
        with pytest.raises(ValueError, match="k: not an unencrypted RSA private key"):
            load_private_key(bad, "k")
    with pytest.raises(ValueError, match="k: not an RSA public key"):
        load_public_key("nope", "k")
