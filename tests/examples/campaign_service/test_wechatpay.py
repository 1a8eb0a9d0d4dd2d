"""The WeChat Pay v3 protocol without I/O: the Authorization header is what the mock (and so
WeChat Pay's rules) accepts, and answers are believed only when the platform signed them."""

from __future__ import annotations

import time

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from campaign_service.wechatpay import AnswerError, PayReply, authorization, read_answer
from mock_platform.model import WxMerchant
from mock_platform.wxpay import Platform, SignError, parse_authorization, verify_request
from tests.examples.campaign_service.conftest import pem_public

MERCHANT = rsa.generate_private_key(public_exponent=65537, key_size=2048)
STRANGER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PLATFORM = Platform()
KEY = PLATFORM.key.public_key()
KEY_ID = PLATFORM.public_key_id
TARGET = "/v3/marketing/favor/users/oAbc_-123/coupons"
BODY = orjson.dumps({"stock_id": "9856000", "out_request_no": "1900000001X1", "appid": "wx1"})


def signed(body: bytes, status: int = 200, *, key: Platform = PLATFORM) -> tuple[int, dict[str, str], bytes]:
    return status, key.sign_headers(body, certificate_mode=False), body


def test_the_authorization_header_verifies_at_the_platform() -> None:
    now = time.time()
    header = authorization(
        MERCHANT, mchid="1900000001", serial_no="ABC123", method="POST", target=TARGET, body=BODY, now=now
    )
    auth = parse_authorization(header)
    assert (auth.mchid, auth.serial_no, auth.timestamp) == ("1900000001", "ABC123", str(int(now)))
    assert len(auth.nonce_str) == 32
    merchant = WxMerchant("1900000001", "ABC123", pem_public(MERCHANT), None)
    verify_request(merchant, auth, "POST", TARGET, BODY, now)  # raises if it does not verify
    for method, target, body in (
        ("GET", TARGET, BODY),
        ("POST", TARGET + "?x=1", BODY),
        ("POST", TARGET, b"{}"),
    ):
        with pytest.raises(SignError):
            verify_request(merchant, auth, method, target, body, now)
    stranger = WxMerchant("1900000001", "ABC123", pem_public(STRANGER), None)
    with pytest.raises(SignError):
        verify_request(stranger, auth, "POST", TARGET, BODY, now)


def test_a_signed_answer_is_read() -> None:
    status, headers, raw = signed(b'{"coupon_id":"123"}')
    reply = read_answer(status, headers, raw, key=KEY, key_id=KEY_ID, now=time.time())
    assert reply == PayReply(200, {"coupon_id": "123"}) and reply.ok and reply.code is None
    status, headers, raw = signed(b'{"code":"NOT_ENOUGH","message":"no stock"}', 403)
    reply = read_answer(status, headers, raw, key=KEY, key_id=KEY_ID, now=time.time())
    assert reply is not None and (reply.code, reply.failure_code) == ("NOT_ENOUGH", "NOT_ENOUGH")
    assert reply.detail == "HTTP 403 NOT_ENOUGH no stock"


def test_forged_altered_stale_or_unsigned_answers_are_refused() -> None:
    now = time.time()
    body = b'{"coupon_id":"123"}'
    status, headers, _ = signed(body)
    cases = {
        "altered body": (status, headers, b'{"coupon_id":"124"}'),
        "another key": signed(body, key=Platform(public_key_id=KEY_ID)),
        "another key id": (status, {**headers, "Wechatpay-Serial": "PUB_KEY_ID_0000"}, body),
        "no signature type": (status, {k: v for k, v in headers.items() if "Type" not in k}, body),
        "unsigned 2xx": (200, {}, body),
        "unsigned business refusal": (403, {}, b'{"code":"NOT_ENOUGH","message":"x"}'),
        "not base64": (status, {**headers, "Wechatpay-Signature": "%%%"}, body),
        "no nonce": (status, {k: v for k, v in headers.items() if "Nonce" not in k}, body),
    }
    believed = []
    for name, (st, hd, raw) in cases.items():
        try:
            read_answer(st, hd, raw, key=KEY, key_id=KEY_ID, now=now)
        except AnswerError:
            continue
        believed.append(name)
    assert believed == []
    with pytest.raises(AnswerError, match="5 minutes"):
        read_answer(status, headers, body, key=KEY, key_id=KEY_ID, now=now + 301)
    status, headers, raw = signed(b"[1]")
    with pytest.raises(AnswerError, match="not a JSON object"):
        read_answer(status, headers, raw, key=KEY, key_id=KEY_ID, now=now)


def test_trouble_and_unverified_requests_need_no_signature() -> None:
    now = time.time()
    for status in (429, 500, 502, 503):
        assert read_answer(status, {}, b"<html>busy</html>", key=KEY, key_id=KEY_ID, now=now) is None
    reply = read_answer(401, {}, b'{"code":"SIGN_ERROR","message":"bad"}', key=KEY, key_id=KEY_ID, now=now)
    assert reply is not None and reply.code == "SIGN_ERROR"
    # Without a platform key (CAMPAIGN_INSECURE_NO_VERIFY=1) nothing is checked.
    assert read_answer(200, {}, b'{"coupon_id":"9"}', key=None, key_id=None, now=now) == PayReply(
        200, {"coupon_id": "9"}
    )
