"""The service's WeChat side against the real mock: wx.login through jscode2session, coupons
through WeChat Pay v3 (the mock verifies every request's signature and signs every answer),
limits, the same out_request_no on a retry, platform trouble, and the records matched with the
mock's effects journal."""

from __future__ import annotations

import time

import pytest

from tests.examples.campaign_service.conftest import (
    WX_LOGIN,
    WX_MCHID,
    WX_SEND,
    WX_SERIAL,
    WX_STOCK,
    Mock,
    StartService,
    WxKeys,
    WxMock,
    WxService,
    pem_public,
    wx_seed,
)

FAST_TIMEOUTS = {
    "CAMPAIGN_PLATFORM_TIMEOUT_S": "0.25",
    "CAMPAIGN_PLATFORM_RETRIES": "1",
    "CAMPAIGN_PLATFORM_BACKOFF_S": "0.05",
    "CAMPAIGN_REQUEST_DEADLINE_S": "2",
    "CAMPAIGN_BREAKER_FAILURES": "50",
}


def user(n: int) -> str:
    return f"2088{n:012d}"


@pytest.fixture
def start_wx(wx_mock: WxMock, wx_keys: WxKeys, start_service: StartService):
    def start(env: dict[str, str] | None = None, args: list[str] | None = None) -> WxService:
        svc = start_service(wx_mock.mock, env=wx_mock.env(wx_keys, **(env or {})), args=args)
        return WxService(svc, wx_mock)

    return start


def test_login_claim_and_the_records_match_the_effects_journal(start_wx, wx_mock: WxMock) -> None:
    wx = start_wx()
    status, _, coupon = wx.claim(user(1))
    assert status == 200 and coupon["result"] == "granted" and coupon["coupon_id"], coupon
    openid = wx.openids[user(1)]
    (row,) = wx.svc.grants()
    assert row == {
        **row,
        "grant_id": coupon["grant_id"],
        "kind": "coupon",
        "method": WX_SEND,
        "campaign": WX_STOCK,
        "biz_no": coupon["biz_no"],
        "user_id": openid,
        "amount": 1,
        "status": "granted",
        "platform_id": coupon["coupon_id"],
        "attempts": 1,
    }
    assert row["biz_no"].startswith(WX_MCHID)  # out_request_no: mchid + date + serial
    # The mock verified the request's signature (it answers 401 otherwise) and journaled the effect
    # under the very numbers the service recorded.
    (effect,) = [e for e in wx_mock.effects() if e["method"] == WX_SEND]
    assert (effect["biz_no"], effect["user_id"], effect["campaign"], effect["id"], effect["app_id"]) == (
        row["biz_no"],
        openid,
        WX_STOCK,
        row["platform_id"],
        WX_MCHID,
    )
    audit = wx_mock.mock.audit()
    assert audit["ok"], audit["violations"]
    assert audit["totals"]["wechat_coupons"][WX_STOCK]["issued"] == 1
    # A second claim is answered from the records, without a platform call.
    assert wx.claim(user(1))[2] == {"result": "limit_reached"}
    assert wx_mock.mock.method_totals(WX_SEND)["ok"] == 1
    # The listing shows the stock; the explicit forms of the body pick the same campaign.
    _, _, listing = wx.svc.request("GET", "/api/campaigns")
    (wx_row,) = [c for c in listing["campaigns"] if c["kind"] == "coupon"]
    assert wx_row["stock_id"] == WX_STOCK and wx_row["claim"] == "/api/wx/coupons/claim"
    assert wx.claim(user(2), {"campaign": wx_row["name"]})[2]["result"] == "granted"
    assert wx.claim(user(3), {"stock_id": WX_STOCK})[2]["result"] == "granted"


def test_sessions_do_not_cross_platforms(start_wx, wx_mock: WxMock) -> None:
    wx = start_wx()
    wx_session = wx.login(user(5))
    alipay_session = wx.svc.login(user(6))
    status, _, body = wx.svc.request("POST", "/api/wx/coupons/claim", session=alipay_session)
    assert status == 401 and body["error"] == "invalid_session" and "/api/wx/login" in body["message"]
    status, _, body = wx.svc.request("POST", "/api/jifenbao/claim", session=wx_session)
    assert status == 401 and body["error"] == "invalid_session"
    assert wx.svc.grants() == []


def test_wechat_login_failures(start_wx, wx_mock: WxMock) -> None:
    wx = start_wx({"CAMPAIGN_PLATFORM_BACKOFF_S": "0.02"})
    mock = wx_mock.mock
    status, _, body = wx.svc.request("POST", "/api/wx/login", {"code": "never-minted"})
    assert (status, body["error"]) == (401, "invalid_code")
    code = wx.code(user(10))
    assert wx.svc.request("POST", "/api/wx/login", {"code": code})[0] == 200
    status, _, body = wx.svc.request("POST", "/api/wx/login", {"code": code})  # used: 40163
    assert (status, body["error"]) == (401, "invalid_code")
    # 45011 (the user's minute quota, injected as a throttle) and -1 (busy): try later, and the
    # single-use code is never sent twice.
    for fault in ({"throttle": {"rate": 0.001, "burst": 1}}, {"error": {"rate": 1.0}}):
        mock.faults({WX_LOGIN: fault})
        if "throttle" in fault:
            assert wx.svc.request("POST", "/api/wx/login", {"code": wx.code(user(11))})[0] == 200
        before = mock.audit()["totals"]["methods"].get(WX_LOGIN, {})
        status, headers, body = wx.svc.request("POST", "/api/wx/login", {"code": wx.code(user(12))})
        assert status == 503 and body["result"] == "try_later" and 1 <= int(headers["Retry-After"]) <= 60
        after = mock.audit()["totals"]["methods"].get(WX_LOGIN, {})
        assert after == before  # no successful exchange happened
    _, _, metrics = wx.svc.request("GET", "/metrics")
    assert f'campaign_platform_calls_total{{method="{WX_LOGIN}",outcome="unavailable"}} 1.0' in metrics
    assert f'campaign_platform_calls_total{{method="{WX_LOGIN}",outcome="business"}}' in metrics


def test_a_timed_out_send_is_retried_with_the_same_out_request_no(start_wx, wx_mock: WxMock) -> None:
    wx = start_wx(FAST_TIMEOUTS)
    mock = wx_mock.mock
    wx.login(user(20))
    mock.faults({WX_SEND: {"latency": {"dist": "constant", "ms": 600}}})
    status, _, body = wx.claim(user(20))
    assert status == 503 and body["result"] == "try_later"
    (row,) = wx.svc.grants()
    assert row["status"] == "unknown" and row["attempts"] == 2
    time.sleep(0.5)  # the second attempt lands at the mock
    totals = mock.method_totals(WX_SEND)
    assert totals["effects"] == 1 and totals["replays"] == 1  # the retry: same out_request_no, a replay

    mock.faults({})
    status, _, body = wx.claim(user(20))
    assert status == 200 and body["result"] == "granted"
    assert (body["biz_no"], body["grant_id"]) == (row["biz_no"], row["grant_id"])  # resumed, not re-issued
    assert mock.method_totals(WX_SEND)["effects"] == 1
    (effect,) = [e for e in wx_mock.effects() if e["method"] == WX_SEND]
    assert effect["biz_no"] == row["biz_no"] and effect["id"] == body["coupon_id"]


def test_the_planted_bug_sends_twice_under_latency(start_wx, wx_mock: WxMock) -> None:
    """With enough stock per user, the renumbered retry is a second coupon: what reconciliation
    must catch (paid twice) is really there."""
    wx_mock.mock.admin("POST", "/admin/seed", wx_seed(per_user=5))
    wx = start_wx(FAST_TIMEOUTS, args=["--bug", "new-biz-no-on-retry"])
    wx.login(user(21))
    wx_mock.mock.faults({WX_SEND: {"latency": {"dist": "constant", "ms": 600}}})
    assert wx.claim(user(21))[0] == 503
    time.sleep(0.5)
    wx_mock.mock.faults({})
    assert wx.claim(user(21))[2]["result"] == "granted"
    (row,) = wx.svc.grants()
    effects = [e for e in wx_mock.effects() if e["method"] == WX_SEND]
    assert len(effects) >= 2 and row["biz_no"] in {e["biz_no"] for e in effects}


def test_stock_and_per_user_limits_are_answers(start_wx, wx_mock: WxMock, tmp_path) -> None:
    mock = wx_mock.mock
    mock.admin("POST", "/admin/seed", wx_seed(max_coupons=2, per_user=1))
    # The service allows two per user, the stock one: the platform's RULE_LIMIT is the answer.
    config = tmp_path / "campaigns.yaml"
    config.write_text(f"wechat_coupons:\n  share: {{stock_id: '{WX_STOCK}', per_user_limit: 2}}\n")
    wx = start_wx(args=["--config", str(config)])
    assert wx.claim(user(30))[2]["result"] == "granted"
    status, _, body = wx.claim(user(30))
    assert (status, body) == (200, {"result": "limit_reached"})
    assert wx.claim(user(31))[2]["result"] == "granted"
    status, _, body = wx.claim(user(32))
    assert (status, body) == (200, {"result": "sold_out"})
    failed = sorted((r["code"], r["status"]) for r in wx.svc.grants() if r["status"] != "granted")
    assert failed == [("NOT_ENOUGH", "failed"), ("RULE_LIMIT", "failed")]
    assert mock.audit()["ok"]


@pytest.mark.parametrize(
    ("fault", "row_status"),
    [
        ({"throttle": {"rate": 0.001, "burst": 1}}, "failed"),  # 429 FREQUENCY_LIMITED: nothing done
        ({"error": {"rate": 1.0}}, "unknown"),  # 500 SYSTEM_ERROR: may have happened
    ],
)
def test_platform_trouble_answers_try_later(start_wx, wx_mock: WxMock, fault, row_status) -> None:
    wx = start_wx({"CAMPAIGN_PLATFORM_BACKOFF_S": "0.02"})
    wx.login(user(40)), wx.login(user(41))
    wx_mock.mock.faults({WX_SEND: fault})
    if "throttle" in fault:
        assert wx.claim(user(40))[2]["result"] == "granted"  # the one call the bucket allows
    status, headers, body = wx.claim(user(41))
    assert status == 503 and body["result"] == "try_later" and "Retry-After" in headers
    row = next(r for r in wx.svc.grants() if r["user_id"] == wx.openids[user(41)])
    assert (row["status"], row["attempts"]) == (row_status, 3)


def test_a_request_the_platform_cannot_verify_is_a_502(
    start_wx, wx_mock: WxMock, keys, wx_keys: WxKeys
) -> None:
    """The mock knows the merchant under another key: every request is 401 SIGN_ERROR (signed by
    the platform, so believed), a refusal to fix in the configuration, not to retry."""
    wx = start_wx()
    wx.login(user(50))
    wx_mock.mock.admin(
        "POST",
        "/admin/wechat/merchants",
        {"mchid": WX_MCHID, "serial_no": WX_SERIAL, "public_key": pem_public(keys.other_private)},
    )
    try:
        status, _, body = wx.claim(user(50))
    finally:
        wx_mock.mock.admin(
            "POST",
            "/admin/wechat/merchants",
            {"mchid": WX_MCHID, "serial_no": WX_SERIAL, "public_key": wx_keys.merchant_public_pem},
        )
    assert status == 502 and body["error"] == "platform_rejected" and "SIGN_ERROR" in body["message"]
    (row,) = wx.svc.grants()
    assert (row["status"], row["code"], row["attempts"]) == ("failed", "SIGN_ERROR", 1)
    assert wx_mock.mock.method_totals(WX_SEND)["effects"] == 0


def test_answers_signed_with_another_key_are_refused(start_wx, wx_mock: WxMock, wx_keys: WxKeys) -> None:
    """The service distrusts the platform's key (a forger's answers look like this): the coupon
    the mock did send is never taken as granted; the row stays unknown, same number."""
    wx = start_wx({"CAMPAIGN_WX_PLATFORM_PUBLIC_KEY_FILE": str(wx_keys.other_public)})
    status, _, body = wx.claim(user(60))
    assert status == 503 and body["result"] == "try_later"
    (row,) = wx.svc.grants()
    assert row["status"] == "unknown" and row["platform_id"] is None
    assert "does not verify" in wx.svc.stderr()
    _, _, metrics = wx.svc.request("GET", "/metrics")
    assert f'campaign_platform_calls_total{{method="{WX_SEND}",outcome="bad_response"}} 3.0' in metrics
    totals = wx_mock.mock.method_totals(WX_SEND)
    assert totals["effects"] == 1 and totals["replays"] == 2  # one coupon, whatever the retries


def test_without_wechat_the_routes_are_404(mock: Mock, start_service: StartService) -> None:
    svc = start_service(mock)
    for path, body in (("/api/wx/login", {"code": "x"}), ("/api/wx/coupons/claim", None)):
        status, _, answer = svc.request("POST", path, body)
        assert (status, answer["error"]) == (404, "wechat_not_configured")
    _, _, listing = svc.request("GET", "/api/campaigns")
    assert "coupon" not in {c["kind"] for c in listing["campaigns"]}


def test_bad_input_on_the_wechat_routes_is_a_clear_4xx(start_wx, wx_mock: WxMock) -> None:
    wx = start_wx()
    session = wx.login(user(70))
    alipay = wx.svc.login(user(71))
    auth = {"Authorization": f"Bearer {session}"}
    json = {"Content-Type": "application/json"}
    huge = b'{"code": "' + b"x" * 100_000 + b'"}'
    rows = [
        ("/api/wx/login", b"{bad", json, 400, "invalid_json"),
        ("/api/wx/login", b"[]", json, 400, "invalid_body"),
        ("/api/wx/login", b"", json, 400, "missing_body"),
        ("/api/wx/login", b"{}", json, 400, "missing_field"),
        ("/api/wx/login", b'{"auth_code": "x"}', json, 400, "missing_field"),
        ("/api/wx/login", b'{"code": 7}', json, 400, "invalid_field"),
        ("/api/wx/login", b'{"code": ""}', json, 400, "invalid_field"),
        ("/api/wx/login", b'{"code": "a\\u0000b"}', json, 400, "invalid_field"),
        ("/api/wx/login", b'{"code": "' + b"c" * 300 + b'"}', json, 400, "invalid_field"),
        ("/api/wx/login", b"code=x", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ("/api/wx/login", huge, json, 413, "body_too_large"),
        ("/api/wx/coupons/claim", None, {}, 401, "unauthorized"),
        ("/api/wx/coupons/claim", None, {"Authorization": "Bearer x.y.z"}, 401, "invalid_session"),
        ("/api/wx/coupons/claim", None, {"Authorization": f"Bearer {alipay}"}, 401, "invalid_session"),
        ("/api/wx/coupons/claim", None, {"Authorization": f"Bearer {session}0"}, 401, "invalid_session"),
        ("/api/wx/coupons/claim", b"{bad", {**auth, **json}, 400, "invalid_json"),
        ("/api/wx/coupons/claim", b"[1]", {**auth, **json}, 400, "invalid_body"),
        ("/api/wx/coupons/claim", b'{"coupon": "x"}', {**auth, **json}, 400, "invalid_body"),
        (
            "/api/wx/coupons/claim",
            b'{"campaign": "a", "stock_id": "1"}',
            {**auth, **json},
            400,
            "invalid_body",
        ),
        ("/api/wx/coupons/claim", b'{"campaign": 5}', {**auth, **json}, 400, "invalid_field"),
        ("/api/wx/coupons/claim", b'{"stock_id": null}', {**auth, **json}, 400, "invalid_field"),
        (
            "/api/wx/coupons/claim",
            b'{"campaign": "' + b"n" * 65 + b'"}',
            {**auth, **json},
            400,
            "invalid_field",
        ),
        ("/api/wx/coupons/claim", b'{"campaign": "nope"}', {**auth, **json}, 404, "unknown_campaign"),
        ("/api/wx/coupons/claim", b'{"stock_id": "1"}', {**auth, **json}, 404, "unknown_campaign"),
        ("/api/wx/coupons/claim", huge, {**auth, **json}, 413, "body_too_large"),
    ]
    wrong = []
    for path, body, headers, status, code in rows:
        got, resp_headers, answer = wx.svc.request("POST", path, body, headers=headers)
        ok = (
            got == status
            and isinstance(answer, dict)
            and answer.get("error") == code
            and len(answer.get("message", "")) > 10
        )
        if not ok:
            wrong.append((path, body[:40] if body else body, status, code, got, answer))
    assert not wrong, "\n".join(map(repr, wrong))
    got, resp_headers, answer = wx.svc.request("GET", "/api/wx/coupons/claim")
    assert (got, answer["error"], resp_headers["Allow"]) == (405, "method_not_allowed", "POST")
    assert wx.svc.grants() == []  # nothing reached the platform as a grant
    _, _, metrics = wx.svc.request("GET", "/metrics")
    assert 'status="500"' not in metrics
