from loadkit.measure.reconcile import reconcile

NAMES = {
    "points.send": "alipay.user.alipaypoint.send",
    "voucher.send": "alipay.marketing.activity.voucher.send",
}


def audit(**methods):
    return {"ok": True, "violations": [], "totals": {"methods": methods}}


def test_matching_counts_reconcile():
    result = reconcile(
        {"points.send": {"successes": 100, "errors": 0}},
        audit(**{"alipay.user.alipaypoint.send": {"ok": 100, "effects": 100, "replays": 0}}),
        NAMES,
    )
    assert result["ok"] is True
    assert result["methods"]["alipay.user.alipaypoint.send"]["effects"] == 100


def test_more_successes_seen_than_effects_is_a_problem():
    result = reconcile(
        {"points.send": {"successes": 100, "errors": 0}},
        audit(**{"alipay.user.alipaypoint.send": {"ok": 100, "effects": 97, "replays": 0}}),
        NAMES,
    )
    assert result["ok"] is False
    assert "97 effects" in result["problems"][0]


def test_replays_and_client_errors_are_allowed_for():
    seen = {"voucher.send": {"successes": 50, "errors": 3}}
    # 5 of the 50 successes were replays; 2 timed-out calls still took effect in the ledger
    led = audit(**{"alipay.marketing.activity.voucher.send": {"ok": 50, "effects": 47, "replays": 5}})
    assert reconcile(seen, led, NAMES)["ok"] is True
    led = audit(**{"alipay.marketing.activity.voucher.send": {"ok": 50, "effects": 49, "replays": 5}})
    assert reconcile(seen, led, NAMES)["ok"] is False


def test_unmapped_names_are_left_out():
    result = reconcile({"home": {"successes": 5, "errors": 0}}, audit(), NAMES)
    assert result["ok"] is True and result["methods"] == {} and result["problems"] == []


def test_requests_in_flight_at_stop_are_allowed_for_up_to_the_pool():
    seen = {"points.send": {"successes": 3100, "errors": 0}}
    led = audit(**{"alipay.user.alipaypoint.send": {"ok": 3101, "effects": 3101, "replays": 0}})
    assert reconcile(seen, led, NAMES)["ok"] is False
    assert reconcile(seen, led, NAMES, in_flight=20)["ok"] is True


def test_expectations_on_audit_totals():
    from loadkit.measure.reconcile import check_expectations

    led = {"totals": {"vouchers": {"FLASH-SALE": {"stock": 150, "issued": 149}}}}
    assert check_expectations(led, {"vouchers.FLASH-SALE.stock": 150}) == []
    problems = check_expectations(led, {"vouchers.FLASH-SALE.issued": 150, "vouchers.NOPE.issued": 1})
    assert problems == [
        "the plan expects vouchers.FLASH-SALE.issued = 150, the ledger has 149",
        "the plan expects vouchers.NOPE.issued = 1, the ledger has None",
    ]
