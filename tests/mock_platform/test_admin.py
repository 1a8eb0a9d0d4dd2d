"""/admin/* over real HTTP: token, seed/reset/audit, apps, keys, faults, stats, OpenAPI."""

from __future__ import annotations

import pytest

from mock_platform import signing
from mock_platform.openapi import openapi_document

USER = "2088000000000001"
ACTIVITY = {
    "activity_id": "ACT1",
    "activity_name": "flash sale",
    "quantity": 2,
    "quantity_limit_per_user": 1,
    "amount": "5.00",
    "publish_start_time": "2026-01-01 00:00:00",
    "publish_end_time": "2099-01-01 00:00:00",
}
ADMIN_GETS = [
    "/admin/health",
    "/admin/faults",
    "/admin/stats",
    "/admin/audit",
    "/admin/keys",
    "/admin/openapi.json",
]
ADMIN_WRITES = [
    ("PUT", "/admin/faults"),
    ("POST", "/admin/reset"),
    ("POST", "/admin/seed"),
    ("POST", "/admin/apps"),
]


def send(mock, out_biz_no: str, user: str = USER) -> dict:
    biz = {"activity_id": "ACT1", "out_biz_no": out_biz_no, "user_id": user}
    return mock.gateway("alipay.marketing.activity.voucher.send", biz)[1]


@pytest.mark.parametrize("token", [None, "", "wrong"])
def test_admin_needs_the_token(mock_server, token) -> None:
    headers = {} if token is None else {"X-Admin-Token": token}
    for path in ADMIN_GETS:
        status, _, raw = mock_server.request("GET", path, headers=headers)
        assert status == 401, path
        assert b"X-Admin-Token" in raw
    for method, path in ADMIN_WRITES:
        status, _, _ = mock_server.request(method, path, b"{}", headers=headers)
        assert status == 401, path
    assert mock_server.state.ledger.activities == {}  # nothing happened


def test_health(mock_server) -> None:
    status, body = mock_server.admin("GET", "/admin/health")
    assert status == 200 and body["status"] == "ok" and body["strict"] is False


def test_seed_audit_reset_round_trip(mock_server) -> None:
    status, body = mock_server.admin("POST", "/admin/seed", {"activities": [ACTIVITY]})
    assert status == 200 and body["seeded"]["activities"] == 1
    assert send(mock_server, "a")["code"] == "10000"
    assert send(mock_server, "b", "2088000000000002")["code"] == "10000"
    assert send(mock_server, "c", "2088000000000003")["sub_code"] == "BUDGET_NOT_ENOUGH_ERROR"
    status, audit = mock_server.admin("GET", "/admin/audit")
    assert status == 200 and audit["ok"] is True and audit["violations"] == []
    assert audit["totals"]["vouchers"]["ACT1"] == {"stock": 2, "issued": 2}
    totals = audit["totals"]["methods"]["alipay.marketing.activity.voucher.send"]
    assert (totals["ok"], totals["effects"], totals["business_failures"]) == (2, 2, 1)
    assert mock_server.admin("POST", "/admin/reset", {}) == (200, {"ok": True})
    _, audit = mock_server.admin("GET", "/admin/audit")
    assert audit["totals"]["vouchers"] == {} and audit["totals"]["methods"] == {}
    assert mock_server.admin("GET", "/admin/stats")[1] == {"methods": {}}


def test_reset_restores_the_start_up_seed(make_mock) -> None:
    mock = make_mock({"seed": {"activities": [ACTIVITY]}})
    assert send(mock, "a")["code"] == "10000"
    mock.admin("POST", "/admin/reset", {})
    _, audit = mock.admin("GET", "/admin/audit")
    assert audit["totals"]["vouchers"]["ACT1"] == {"stock": 2, "issued": 0}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"activities": [{**ACTIVITY, "quantity": -1}]}, "seed.activities[0].quantity"),
        ({"activities": "no"}, "seed.activities"),
        ({"bogus": []}, "seed.bogus"),
        ({"apps": [{"app_id": "1", "public_key": "junk"}]}, "seed.apps[0].public_key"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_seed_is_400_naming_the_key(mock_server, body, message) -> None:
    status, answer = mock_server.admin("POST", "/admin/seed", body)
    assert status == 400
    assert message in answer["error"]
    assert mock_server.state.ledger.activities == {}  # all or nothing


def test_non_json_body_is_400(mock_server) -> None:
    status, _, raw = mock_server.request(
        "POST", "/admin/seed", b"{nope", {"X-Admin-Token": mock_server.admin_token}
    )
    assert status == 400 and b"not JSON" in raw


def test_apps_validate_the_pem(mock_server) -> None:
    status, body = mock_server.admin("POST", "/admin/apps", {"app_id": "A1", "public_key": "not a key"})
    assert status == 400 and "public_key" in body["error"]
    status, body = mock_server.admin("POST", "/admin/apps", {"app_id": "A1"})
    assert status == 400 and "public_key" in body["error"]
    pem = signing.public_pem(signing.generate_private_key())
    assert mock_server.admin("POST", "/admin/apps", {"app_id": "A1", "public_key": pem})[0] == 200
    assert mock_server.state.ledger.app_public_key("A1") == pem


def test_keys_give_the_response_signing_key(mock_server) -> None:
    status, body = mock_server.admin("GET", "/admin/keys")
    assert status == 200 and body["sign_type"] == "RSA2"
    key = signing.load_public_key(body["alipay_public_key"])
    assert key.key_size == 2048
    assert key.public_numbers() == mock_server.state.private_key.public_key().public_numbers()


def test_faults_get_put_and_bad_spec(mock_server) -> None:
    assert mock_server.admin("GET", "/admin/faults") == (200, {})
    spec = {"alipay.user.info.share": {"error": {"rate": 1.0}}}
    assert mock_server.admin("PUT", "/admin/faults", spec) == (200, spec)
    assert mock_server.gateway("alipay.user.info.share")[1]["code"] == "20000"
    status, body = mock_server.admin("PUT", "/admin/faults", {"*": {"latency": {"dist": "bogus"}}})
    assert status == 400 and "dist" in body["error"]
    assert mock_server.admin("GET", "/admin/faults") == (200, spec)  # the old spec stays


def test_stats_per_method(mock_server) -> None:
    for _ in range(3):
        mock_server.gateway("alipay.user.info.share")
    status, body = mock_server.admin("GET", "/admin/stats")
    assert status == 200
    share = body["methods"]["alipay.user.info.share"]
    assert share["calls"] == 3
    assert share["outcomes"] == {"20001/aop.invalid-auth-token": 3}
    latency = share["latency_ms"]
    assert latency["count"] == 3 and 0 < latency["p50"] <= latency["p99"] and latency["mean"] > 0


def test_force_issue_only_with_debug_hooks(make_mock) -> None:
    plain = make_mock({"seed": {"activities": [ACTIVITY]}})
    assert plain.admin("POST", "/admin/debug/force_issue", {"activity_id": "ACT1", "user_id": USER})[0] == 404
    mock = make_mock({"seed": {"activities": [ACTIVITY]}}, debug_hooks=True)
    for _ in range(3):
        status, body = mock.admin(
            "POST", "/admin/debug/force_issue", {"activity_id": "ACT1", "user_id": USER}
        )
        assert status == 200 and body["voucher_id"]
    _, audit = mock.admin("GET", "/admin/audit")
    assert audit["ok"] is False
    assert any("issued 3 > stock 2" in v for v in audit["violations"])
    status, body = mock.admin("POST", "/admin/debug/force_issue", {"activity_id": "NOPE", "user_id": USER})
    assert status == 400 and "NOPE" in body["error"]


def test_openapi_describes_every_admin_and_sim_route(make_mock) -> None:
    mock = make_mock(debug_hooks=True)
    status, doc = mock.admin("GET", "/admin/openapi.json")
    assert status == 200 and doc == openapi_document(debug_hooks=True)
    assert doc["openapi"].startswith("3.1")
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in mock.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith(("/admin/", "/sim/"))
        and route.method != "HEAD"
    }
    documented = {(verb, path) for path, ops in doc["paths"].items() for verb in ops}
    assert served == documented
