"""Signed session tokens."""

from __future__ import annotations

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
