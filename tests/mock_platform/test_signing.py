"""RSA2 sign content and signatures, cross-checked against Alipay's own Python SDK code."""

from __future__ import annotations

import base64

import pytest
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2, verify_with_rsa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mock_platform import signing


@pytest.fixture(scope="module")
def key():
    return signing.generate_private_key()


def pkcs1_private_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


PARAMS = {
    "method": "alipay.user.alipaypoint.send",
    "app_id": "2021000000000001",
    "charset": "utf-8",
    "sign_type": "RSA2",
    "timestamp": "2026-11-24 10:00:00",
    "biz_content": '{"budget_code":"JFB1","memo":"集分宝 & more"}',
    "sign": "ignored",
}


def test_sign_content_sorted_without_sign_raw_values() -> None:
    content = signing.sign_content(PARAMS)
    assert content.startswith("app_id=2021000000000001&biz_content={")
    assert "sign=" not in content.replace("sign_type=", "")
    assert content.endswith("sign_type=RSA2&timestamp=2026-11-24 10:00:00")
    assert "集分宝 & more" in content


def test_sign_content_matches_the_python_sdk() -> None:
    without_sign = {k: v for k, v in PARAMS.items() if k != "sign"}
    assert signing.sign_content(PARAMS) == get_sign_content(without_sign)


def test_empty_values_skipped_like_the_java_sdk_unless_asked() -> None:
    params = {"b": "", "a": "1", "c": "3"}
    assert signing.sign_content(params) == "a=1&c=3"
    assert signing.sign_content(params, skip_empty=False) == "a=1&b=&c=3"


def test_sign_then_verify_and_tamper(key) -> None:
    public = signing.load_public_key(signing.public_pem(key))
    sig = signing.sign(key, b"payload")
    assert signing.verify(public, b"payload", sig)
    assert not signing.verify(public, b"payload!", sig)
    assert not signing.verify(public, b"payload", "not base64 !!")
    assert not signing.verify(public, b"payload", base64.b64encode(b"short").decode())


def test_signature_made_by_the_sdk_verifies(key) -> None:
    params = {k: v for k, v in PARAMS.items() if k != "sign"}
    sig = sign_with_rsa2(pkcs1_private_pem(key), get_sign_content(params), "utf-8")
    public = signing.load_public_key(signing.public_pem(key))
    assert signing.verify_params(public, {**params, "sign": sig}, sig) == (True, signing.sign_content(params))


def test_python_sdk_style_empty_values_still_verify(key) -> None:
    params = {"app_id": "1", "method": "m", "notify_url": ""}
    sig = sign_with_rsa2(pkcs1_private_pem(key), get_sign_content(params), "utf-8")
    public = signing.load_public_key(signing.public_pem(key))
    ok, checked = signing.verify_params(public, params, sig)
    assert ok
    assert checked == "app_id=1&method=m&notify_url="
    ok, checked = signing.verify_params(public, {**params, "method": "other"}, sig)
    assert not ok
    assert checked == "app_id=1&method=other"


def test_our_signature_verifies_with_the_sdk(key) -> None:
    sig = signing.sign(key, b'{"code":"10000"}')
    bare = "".join(signing.public_pem(key).splitlines()[1:-1])
    assert verify_with_rsa(bare, b'{"code":"10000"}', sig)


def test_load_public_key_accepts_bare_base64_and_refuses_junk(key) -> None:
    pem = signing.public_pem(key)
    bare = "".join(pem.splitlines()[1:-1])
    assert signing.load_public_key(bare).public_numbers() == key.public_key().public_numbers()
    with pytest.raises(ValueError, match="public_key: not a PEM public key"):
        signing.load_public_key("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ValueError, match="must be an RSA key"):
        signing.load_public_key(ec_pem)
