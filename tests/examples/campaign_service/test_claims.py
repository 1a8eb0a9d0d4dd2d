"""The service against the real mock platform: grants, limits, idempotent retries, the planted
bug, try-later and the breaker, and its records matched with the platform's ledger."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.examples.campaign_service.conftest import Mock, StartService

POINTS_SEND = "alipay.user.alipaypoint.send"
VOUCHER_SEND = "alipay.marketing.activity.voucher.send"
CASH_TRIGGER = "alipay.marketing.campaign.cash.trigger"
FOLLOW_QUERY = "alipay.open.public.user.follow.query"
# Tight platform timings for the retry tests: 2 attempts of 0.25 s against a 0.6 s platform.
SLOW_PLATFORM = {POINTS_SEND: {"latency": {"dist": "constant", "ms": 600}}}
FAST_TIMEOUTS = {
    "CAMPAIGN_PLATFORM_TIMEOUT_S": "0.25",
    "CAMPAIGN_PLATFORM_RETRIES": "1",
    "CAMPAIGN_PLATFORM_BACKOFF_S": "0.05",
    "CAMPAIGN_REQUEST_DEADLINE_S": "2",
    "CAMPAIGN_BREAKER_FAILURES": "50",
}


def user(n: int) -> str:
    return f"2088{n:012d}"


def test_grants_of_every_kind_and_the_records_match_the_ledger_by_biz_number(
    mock: Mock, start_service: StartService
) -> None:
    svc = start_service(mock)
    uid = user(1)
    status, _, body = svc.request("GET", "/api/jifenbao/budget")
    assert (status, body) == (200, {"budget_code": "JFB-CHANNEL", "remain_points": 1_000_000_000})

    status, _, points = svc.claim("/api/jifenbao/claim", uid)
    assert status == 200 and points["result"] == "granted" and points["points"] == 100
    status, _, coupon = svc.claim("/api/coupons/flash-sale/claim", uid)
    assert status == 200 and coupon["result"] == "granted" and coupon["voucher_id"]
    status, _, body = svc.claim("/api/follow-gift/claim", uid)
    assert (status, body) == (200, {"result": "not_following"})
    mock.follow(uid)
    status, _, gift = svc.claim("/api/follow-gift/claim", uid)
    assert status == 200 and gift["result"] == "granted"
    status, _, cash = svc.claim("/api/red-envelope/tap", uid)
    assert status == 200 and cash["result"] == "granted" and float(cash["amount"]) > 0

    rows = {row["biz_no"]: row for row in svc.grants()}
    assert len(rows) == 4 and {r["status"] for r in rows.values()} == {"granted"}
    assert {r["kind"] for r in rows.values()} == {"points", "voucher", "cash"}
    audit = mock.audit()
    assert audit["ok"], audit["violations"]
    assert audit["totals"]["points"]["JFB-CHANNEL"]["sent"] == 100
    assert audit["totals"]["cash"]["RAIN-CAMPAIGN"]["paid_fen"] == rows[cash["biz_no"]]["amount"]
    assert mock.method_totals(VOUCHER_SEND)["effects"] == 2

    # Each row's biz number is in the ledger with the row's platform id: sent again with the same
    # parameters, the platform replays the first result instead of making a new effect.
    row = rows[points["biz_no"]]
    again = mock.gateway_call(
        POINTS_SEND,
        {"budget_code": "JFB-CHANNEL", "partner_biz_no": row["biz_no"], "point_amount": 100, "user_id": uid},
    )
    assert again["record_id"] == row["platform_id"]
    for biz_no in (coupon["biz_no"], gift["biz_no"]):
        row = rows[biz_no]
        again = mock.gateway_call(
            VOUCHER_SEND, {"activity_id": row["campaign"], "out_biz_no": biz_no, "user_id": uid}
        )
        assert again["voucher_id"] == row["platform_id"]
    row = rows[cash["biz_no"]]
    again = mock.gateway_call(
        CASH_TRIGGER, {"crowd_no": "RAIN-CAMPAIGN", "out_biz_no": row["biz_no"], "user_id": uid}
    )
    assert again["biz_no"] == row["platform_id"]
    assert mock.method_totals(POINTS_SEND)["effects"] == 1
    assert mock.method_totals(VOUCHER_SEND)["effects"] == 2
    assert mock.method_totals(CASH_TRIGGER)["effects"] == 1

    later = time.time() + 3600
    assert svc.grants(since=later) == []
    assert len(svc.grants(since=0)) == 4


def test_one_points_claim_per_day_and_the_per_user_limits(mock: Mock, start_service: StartService) -> None:
    svc = start_service(mock)
    uid = user(2)
    _, _, first = svc.claim("/api/jifenbao/claim", uid)
    status, _, again = svc.claim("/api/jifenbao/claim", uid)
    assert status == 200
    assert again == {"result": "already_claimed", "grant_id": first["grant_id"], "biz_no": first["biz_no"]}
    assert svc.claim("/api/coupons/flash-sale/claim", uid)[2]["result"] == "granted"
    assert svc.claim("/api/coupons/flash-sale/claim", uid)[2] == {"result": "limit_reached"}
    taps = [svc.claim("/api/red-envelope/tap", uid)[2]["result"] for _ in range(6)]
    assert taps == ["granted"] * 5 + ["limit_reached"]  # send_freqency L5, checked locally first
    # The repeats never reached the platform.
    assert mock.method_totals(POINTS_SEND)["ok"] == 1
    assert mock.method_totals(VOUCHER_SEND)["ok"] == 1
    assert mock.method_totals(CASH_TRIGGER)["ok"] == 5
    status, _, body = svc.claim("/api/coupons/no-such-sale/claim", uid)
    assert status == 404 and body["error"] == "unknown_campaign"


@pytest.mark.parametrize(
    ("path", "method", "granted"),
    [
        ("/api/jifenbao/claim", POINTS_SEND, "granted"),
        ("/api/coupons/flash-sale/claim", VOUCHER_SEND, "granted"),
    ],
)
def test_concurrent_double_taps_reach_the_platform_once(
    mock: Mock, start_service: StartService, path: str, method: str, granted: str
) -> None:
    # A little platform latency keeps the first tap at the platform while the others arrive.
    mock.faults({method: {"latency": {"dist": "constant", "ms": 150}}})
    svc = start_service(mock)
    uid = user(3)
    session = svc.login(uid)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: svc.request("POST", path, session=session), range(8)))
    results = sorted(body["result"] for status, _, body in answers if status == 200)
    assert len(results) == 8
    assert results.count(granted) == 1
    assert set(results) - {granted} <= {"already_claimed", "limit_reached"}
    assert mock.method_totals(method)["ok"] == 1
    assert mock.method_totals(method)["effects"] == 1
    assert len(svc.grants()) == 1


def test_a_timed_out_claim_is_retried_and_resumed_with_the_same_biz_number(
    mock: Mock, start_service: StartService
) -> None:
    svc = start_service(mock, env=FAST_TIMEOUTS)
    uid = user(4)
    svc.login(uid)
    mock.faults(SLOW_PLATFORM)
    started = time.monotonic()
    status, headers, body = svc.claim("/api/jifenbao/claim", uid)
    assert time.monotonic() - started < 2 + 1
    assert status == 503 and body["result"] == "try_later" and int(headers["Retry-After"]) >= 1
    (row,) = svc.grants()
    assert row["status"] == "unknown" and row["attempts"] == 2
    totals = mock.method_totals(POINTS_SEND)
    assert totals["effects"] == 1 and totals["replays"] == 1  # the retry used the same partner_biz_no

    mock.faults({})
    status, _, body = svc.claim("/api/jifenbao/claim", uid)
    assert status == 200 and body["result"] == "granted"
    assert body["biz_no"] == row["biz_no"] and body["grant_id"] == row["grant_id"]  # resumed, not re-issued
    (final,) = svc.grants()
    assert final["status"] == "granted" and final["attempts"] == 3
    assert mock.method_totals(POINTS_SEND)["effects"] == 1
    assert mock.audit()["totals"]["points"]["JFB-CHANNEL"]["sent"] == 100


def test_the_planted_bug_double_issues_under_platform_latency(
    mock: Mock, start_service: StartService
) -> None:
    svc = start_service(mock, env=FAST_TIMEOUTS, args=["--bug", "new-biz-no-on-retry"])
    assert "PLANTED BUG new-biz-no-on-retry" in svc.stderr()
    uid = user(5)
    svc.login(uid)
    mock.faults(SLOW_PLATFORM)
    status, _, body = svc.claim("/api/jifenbao/claim", uid)
    assert status == 503 and body["result"] == "try_later"
    mock.faults({})
    status, _, body = svc.claim("/api/jifenbao/claim", uid)
    assert status == 200 and body["result"] == "granted"
    (row,) = svc.grants()  # the service believes it granted once...
    assert row["status"] == "granted" and row["biz_no"] == body["biz_no"]
    assert mock.method_totals(POINTS_SEND)["effects"] == 2  # ...the platform paid twice
    assert mock.audit()["totals"]["points"]["JFB-CHANNEL"]["sent"] == 200


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_an_outage_answers_try_later_within_the_deadline_and_opens_the_breaker(
    mock: Mock, start_service: StartService, mode: str
) -> None:
    deadline_s = 1.5
    svc = start_service(
        mock,
        env={
            "CAMPAIGN_PLATFORM_TIMEOUT_S": "0.5",
            "CAMPAIGN_PLATFORM_BACKOFF_S": "0.05",
            "CAMPAIGN_REQUEST_DEADLINE_S": str(deadline_s),
            "CAMPAIGN_BREAKER_FAILURES": "3",
            "CAMPAIGN_BREAKER_COOLDOWN_S": "30",
        },
    )
    uid = user(6)
    for n in range(6, 10):
        svc.login(user(n))
    mock.faults(
        {"*": {"outage": {"mode": mode, "hang_s": 30}} if mode == "hang" else {"outage": {"mode": mode}}}
    )
    started = time.monotonic()
    status, headers, body = svc.claim("/api/jifenbao/claim", uid)
    assert time.monotonic() - started < deadline_s + 1
    assert (
        status == 503
        and body["result"] == "try_later"
        and headers["Retry-After"] == str(body["retry_after_s"])
    )
    # Three failed calls open the breaker; from then on the answer comes at once, without a call.
    for n in range(7, 10):
        started = time.monotonic()
        status, headers, body = svc.claim("/api/coupons/flash-sale/claim", user(n))
        assert status == 503 and body["result"] == "try_later"
    assert time.monotonic() - started < 0.5
    assert body["retry_after_s"] > 1  # the rest of the 30-s cool-down
    _, _, metrics = svc.request("GET", "/metrics")
    assert "campaign_breaker_state 2.0" in metrics
    assert (
        'campaign_platform_calls_total{method="alipay.marketing.activity.voucher.send",outcome="breaker_open"}'
        in metrics
    )
    # The grant that may have happened (a timeout, or 20000: "result unknown") stays unknown, with
    # every attempt counted; the claims the breaker refused left no row behind.
    rows = svc.grants()
    assert [(r["user_id"], r["status"], r["attempts"]) for r in rows] == [(uid, "unknown", 3)]
    status, _, body = svc.request("GET", "/api/jifenbao/budget")
    assert status == 503 and body["result"] == "try_later"
