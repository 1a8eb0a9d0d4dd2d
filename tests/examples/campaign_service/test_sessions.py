"""Signed session tokens."""

from __future__ import annotations

import pytest

from campaign_service.sessions import SessionSigner

USER = "2088000000000001"


def test_a_token_names_its_user_until_it_expires() -> None:
    signer = SessionSigner(b"k" * 32, ttl_s=60)
    token = signer.issue(USER, now=1000.0)
    assert signer.user_of(token, now=1000.0) == USER
    assert signer.user_of(token, now=1059.0) == USER
    assert signer.user_of(token, now=1060.0) is None


def test_tampered_foreign_or_malformed_tokens_are_refused() -> None:
    signer = SessionSigner(b"k" * 32, ttl_s=60)
    token = signer.issue(USER, now=1000.0)
    version, user, expires, mac = token.split(".")
    assert signer.user_of(f"{version}.2088000000000002.{expires}.{mac}", 1000.0) is None
    assert signer.user_of(f"{version}.{user}.{int(expires) + 3600}.{mac}", 1000.0) is None
    assert signer.user_of(SessionSigner(b"x" * 32, 60).issue(USER, 1000.0), 1000.0) is None
    for bad in (
        "",
        "v1",
        "v1...",
        f"v2.{user}.{expires}.{mac}",
        token + "x",
        "v1.2088.1.x",
        "é" * 10,
        "v1." * 100,
    ):
        assert signer.user_of(bad, 1000.0) is None


def test_wechat_sessions_are_apart_from_alipay_ones() -> None:
    signer = SessionSigner(b"k" * 32, ttl_s=60)
    openid = "oAbCdEf0123456789_-000000001"
    wx = signer.issue(openid, now=1000.0, wechat=True)
    assert wx.startswith("wx1.") and signer.user_of(wx, 1000.0, wechat=True) == openid
    assert signer.user_of(wx, 1000.0) is None  # not an Alipay session
    alipay = signer.issue(USER, now=1000.0)
    assert signer.user_of(alipay, 1000.0, wechat=True) is None
    _, user, expires, mac = wx.split(".")
    assert signer.user_of(f"v1.{user}.{expires}.{mac}", 1000.0, wechat=True) is None  # prefix is signed
    assert signer.user_of(f"wx1.{USER}.{expires}.{mac}", 1000.0, wechat=True) is None
    with pytest.raises(ValueError):
        signer.issue("not.an openid", 1000.0, wechat=True)
    with pytest.raises(ValueError):
        signer.issue(openid, 1000.0)  # an openid is not an Alipay user id
