"""Bad input anywhere gets a 4xx with {"error", "message"}: never a 5xx, never a traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from campaign_service.api import STATE, create_app
from campaign_service.settings import load_settings
from tests.examples.campaign_service.conftest import (
    SERVICE_ADMIN_TOKEN,
    KeyFiles,
    Mock,
    StartService,
    base_env,
)

JSON = {"Content-Type": "application/json"}
HUGE = b'{"auth_code": "' + b"x" * 100_000 + b'"}'


def bad_inputs(session: str) -> list[tuple[str, str, Any, dict[str, str], int, str]]:
    """(method, path, body, headers, expected status, expected error code)."""
    auth = {"Authorization": f"Bearer {session}"}
    _user, expires, mac = session.split(".")[1:]
    other_user = f"v1.2088999999999999.{expires}.{mac}"
    claims = [
        "/api/jifenbao/claim",
        "/api/coupons/flash-sale/claim",
        "/api/follow-gift/claim",
        "/api/red-envelope/tap",
    ]
    rows: list[tuple[str, str, Any, dict[str, str], int, str]] = [
        ("POST", "/api/login", b"{bad", JSON, 400, "invalid_json"),
        ("POST", "/api/login", b'{"auth_code": "\xff\xfe"}', JSON, 400, "invalid_json"),
        ("POST", "/api/login", b"[1, 2]", JSON, 400, "invalid_body"),
        ("POST", "/api/login", b'"auth_code"', JSON, 400, "invalid_body"),
        ("POST", "/api/login", b"null", JSON, 400, "invalid_body"),
        ("POST", "/api/login", b"", JSON, 400, "missing_body"),
        ("POST", "/api/login", b"{}", JSON, 400, "missing_field"),
        ("POST", "/api/login", b'{"auth_code": 12345}', JSON, 400, "invalid_field"),
        ("POST", "/api/login", b'{"auth_code": null}', JSON, 400, "invalid_field"),
        ("POST", "/api/login", b'{"auth_code": ""}', JSON, 400, "invalid_field"),
        ("POST", "/api/login", b'{"auth_code": "a\\nb"}', JSON, 400, "invalid_field"),
        ("POST", "/api/login", b'{"auth_code": "' + b"c" * 300 + b'"}', JSON, 400, "invalid_field"),
        (
            "POST",
            "/api/login",
            b"auth_code=x",
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        ("POST", "/api/login", HUGE, JSON, 413, "body_too_large"),
        ("POST", "/api/login", b'{"auth_code": "never-minted"}', JSON, 401, "invalid_auth_code"),
        ("GET", "/api/login", None, {}, 405, "method_not_allowed"),
        ("DELETE", "/api/campaigns", None, {}, 405, "method_not_allowed"),
        ("GET", "/api/jifenbao/claim", None, {}, 405, "method_not_allowed"),
        ("GET", "/nowhere", None, {}, 404, "not_found"),
        ("POST", "/api/coupons/no-such-sale/claim", None, auth, 404, "unknown_campaign"),
        ("POST", "/api/coupons/%00%ff/claim", None, auth, 404, "unknown_campaign"),
        ("GET", "/admin/grants", None, {}, 401, "unauthorized"),
        ("GET", "/admin/grants", None, {"X-Admin-Token": "wrong-token"}, 401, "unauthorized"),
        (
            "GET",
            "/admin/grants?since=yesterday",
            None,
            {"X-Admin-Token": SERVICE_ADMIN_TOKEN},
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/admin/grants?since=nan",
            None,
            {"X-Admin-Token": SERVICE_ADMIN_TOKEN},
            400,
            "invalid_query",
        ),
    ]
    for path in claims:
        rows += [
            ("POST", path, None, {}, 401, "unauthorized"),
            ("POST", path, None, {"Authorization": session}, 401, "invalid_session"),
            ("POST", path, None, {"Authorization": f"Basic {session}"}, 401, "invalid_session"),
            ("POST", path, None, {"Authorization": "Bearer "}, 401, "invalid_session"),
            ("POST", path, None, {"Authorization": "Bearer garbage"}, 401, "invalid_session"),
            ("POST", path, None, {"Authorization": f"Bearer {other_user}"}, 401, "invalid_session"),
            ("POST", path, None, {"Authorization": f"Bearer {session}x"}, 401, "invalid_session"),
            (
                "POST",
                path,
                None,
                {"Authorization": "Bearer v1.2088000000000001.9.9.é"},
                401,
                "invalid_session",
            ),
            ("POST", path, b"{bad", {**auth, **JSON}, 400, "invalid_json"),
            ("POST", path, b"[]", {**auth, **JSON}, 400, "invalid_body"),
            ("POST", path, b"{}", {**auth, "Content-Type": "text/plain"}, 415, "unsupported_media_type"),
            ("POST", path, HUGE, {**auth, **JSON}, 413, "body_too_large"),
        ]
    return rows


def test_bad_input_across_all_endpoints_is_a_clear_4xx(mock: Mock, start_service: StartService) -> None:
    svc = start_service(mock)
    session = svc.login("2088000000000101")
    wrong = []
    for method, path, body, headers, status, code in bad_inputs(session):
        got, resp_headers, answer = svc.request(method, path, body, headers=headers)
        ok = (
            got == status
            and resp_headers.get("Content-Type", "").startswith("application/json")
            and isinstance(answer, dict)
            and answer.get("error") == code
            and isinstance(answer.get("message"), str)
            and len(answer["message"]) > 10
            and "Traceback" not in answer["message"]
        )
        if not ok:
            wrong.append((method, path, status, code, got, answer))
    assert not wrong, "\n".join(map(repr, wrong))
    # None of it reached the platform but the one unknown auth code, and nothing was granted.
    assert svc.grants() == []
    _, _, metrics = svc.request("GET", "/metrics")
    assert 'status="500"' not in metrics


def test_admin_grants_is_hidden_without_an_admin_token(mock: Mock, start_service: StartService) -> None:
    svc = start_service(mock, env={"CAMPAIGN_ADMIN_TOKEN": ""})
    status, _, body = svc.request("GET", "/admin/grants", headers={"X-Admin-Token": SERVICE_ADMIN_TOKEN})
    assert status == 404 and body["error"] == "not_found"


def test_campaigns_and_health(mock: Mock, start_service: StartService) -> None:
    svc = start_service(mock)
    status, _, body = svc.request("GET", "/api/campaigns")
    assert status == 200
    by_name = {c["name"]: c for c in body["campaigns"]}
    assert by_name["jifenbao"]["budget_code"] == "JFB-CHANNEL"
    assert by_name["flash-sale"]["claim"] == "/api/coupons/flash-sale/claim"
    assert by_name["follow-gift"]["requires"] == "follow"
    assert by_name["red-envelope"]["crowd_no"] == "RAIN-CAMPAIGN"
    assert svc.request("GET", "/healthz")[:3:2] == (200, {"ok": True})


def test_healthz_answers_503_while_draining(keys: KeyFiles, tmp_path: Path) -> None:
    env = base_env(keys, None)
    env["CAMPAIGN_INSECURE_NO_VERIFY"] = "1"
    settings = load_settings(env, db=str(tmp_path / "g.sqlite3"))

    async def scenario() -> list[tuple[int, Any]]:
        app = create_app(settings)
        async with TestClient(TestServer(app)) as client:
            seen = []
            for draining in (False, True):
                app[STATE].draining = draining
                resp = await client.get("/healthz")
                seen.append((resp.status, await resp.json()))
            return seen

    assert asyncio.run(scenario()) == [(200, {"ok": True}), (503, {"ok": False, "draining": True})]
