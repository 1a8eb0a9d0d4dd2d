"""/sim/* and the login round trip a mini-program makes: auth code -> token -> user info."""

from __future__ import annotations

import pytest

USER = "2088000000000001"


def test_login_round_trip(mock_server) -> None:
    status, body = mock_server.sim("/sim/auth_code", {"user_id": USER})
    assert status == 200
    code = body["auth_code"]
    node, token = mock_server.gateway("alipay.system.oauth.token", grant_type="authorization_code", code=code)
    assert node == "alipay_system_oauth_token_response" and token["code"] == "10000"
    assert token["user_id"] == USER
    node, info = mock_server.gateway("alipay.user.info.share", auth_token=token["access_token"])
    assert node == "alipay_user_info_share_response"
    assert info["code"] == "10000" and info["user_id"] == USER and info["open_id"] == token["open_id"]
    # The code is single-use.
    node, again = mock_server.gateway("alipay.system.oauth.token", grant_type="authorization_code", code=code)
    assert node == "error_response" and again["sub_code"] == "isv.code-invalid"


def test_each_call_mints_a_new_code(mock_server) -> None:
    codes = {mock_server.sim("/sim/auth_code", {"user_id": USER})[1]["auth_code"] for _ in range(3)}
    assert len(codes) == 3


def test_follow_shows_in_follow_query(mock_server) -> None:
    query = ("alipay.open.public.user.follow.query", {"user_id": USER})
    assert mock_server.gateway(*query)[1]["is_follow"] == "F"
    assert mock_server.sim("/sim/follow", {"user_id": USER}) == (200, {"ok": True})
    assert mock_server.gateway(*query)[1]["is_follow"] == "T"


@pytest.mark.parametrize("path", ["/sim/auth_code", "/sim/follow"])
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", b"JSON object"),
        (b"{nope", b"not JSON"),
        (b"[1]", b"JSON object"),
        (b"{}", b"user_id"),
        (b'{"user_id": 42}', b"user_id"),
        (b'{"user_id": "12345"}', b"2088"),
    ],
)
def test_bad_bodies_are_400_with_a_clear_message(mock_server, path, body, message) -> None:
    status, headers, raw = mock_server.request("POST", path, body, {"Content-Type": "application/json"})
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    assert message in raw


def test_sim_needs_no_admin_token_but_only_post(mock_server) -> None:
    status, _, _ = mock_server.request("GET", "/sim/auth_code")
    assert status == 405
