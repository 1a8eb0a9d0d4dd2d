"""Envelope bytes: node names, sign placement, and that the SDK's regex finds the signed bytes."""

from __future__ import annotations

import json

from alipay.aop.api.constant.CommonConstants import PATTERN_RESPONSE_BEGIN, PATTERN_RESPONSE_SIGN_BEGIN

from mock_platform import envelope, signing


def test_node_name() -> None:
    assert envelope.node_name("alipay.user.alipaypoint.send") == "alipay_user_alipaypoint_send_response"


def test_success_puts_code_and_msg_first() -> None:
    assert list(envelope.success({"record_id": "R1"})) == ["code", "msg", "record_id"]


def test_unsigned_envelope_has_no_sign() -> None:
    body = envelope.render("x_response", {"code": "10000", "msg": "Success"})
    assert body == b'{"x_response":{"code":"10000","msg":"Success"}}'


def test_signed_envelope_sign_follows_the_node_over_the_exact_inner_bytes() -> None:
    key = signing.generate_private_key()
    inner = {"code": "10000", "msg": "Success", "nick_name": "小明", "amount": "5.00"}
    body = envelope.render("a_b_response", inner, lambda data: signing.sign(key, data))
    doc = json.loads(body)
    assert list(doc) == ["a_b_response", "sign"]
    assert doc["a_b_response"] == inner
    text = body.decode("utf-8")
    # What Alipay's Python SDK does to find the signed text.
    begin = PATTERN_RESPONSE_BEGIN.search(text)
    end = PATTERN_RESPONSE_SIGN_BEGIN.search(text)
    assert begin is not None and end is not None
    signed_text = text[begin.end() - 1 : end.start() + 1]
    assert signed_text == json.dumps(inner, ensure_ascii=False, separators=(",", ":"))
    public = signing.load_public_key(signing.public_pem(key))
    assert signing.verify(public, signed_text.encode("utf-8"), doc["sign"])
