"""alipay.marketing.activity.voucher.create / send / query, called directly on a Ledger."""

from __future__ import annotations

from datetime import datetime

import pytest

from mock_platform.errors import GatewayError
from mock_platform.fields import CN_TZ
from mock_platform.ledger import Ledger
from mock_platform.methods import METHODS, Call

APP = "2021000000000001"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=CN_TZ).timestamp()
CREATE = "alipay.marketing.activity.voucher.create"
SEND = "alipay.marketing.activity.voucher.send"
QUERY = "alipay.marketing.activity.voucher.query"
U1, U2, U3 = "2088000000000001", "2088000000000002", "2088000000000003"


def call(ledger: Ledger, method: str, biz: dict, now: float = NOW) -> dict:
    return METHODS[method](ledger, Call(APP, method, {}, biz, now))


def fails(ledger: Ledger, method: str, biz: dict, now: float = NOW) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        call(ledger, method, biz, now)
    return info.value


def create_biz(**over) -> dict:
    biz = {
        "out_biz_no": "C1",
        "activity_name": "spring sale",
        "voucher_send_rule_info": {
            "quantity": 3,
            "quantity_limit_per_user": 2,
            "publish_start_time": "2026-05-01 00:00:00",
            "publish_end_time": "2026-07-01 00:00:00",
        },
        "voucher_deduct_info": {"amount": "5.00"},
    }
    biz.update(over)
    return biz


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def act(ledger: Ledger) -> str:
    return call(ledger, CREATE, create_biz())["activity_id"]


def send(ledger: Ledger, act: str, key: str, user: str = U1, now: float = NOW) -> dict:
    return call(ledger, SEND, {"activity_id": act, "out_biz_no": key, "user_id": user}, now)


def test_create_returns_activity_and_replays_on_same_out_biz_no(ledger: Ledger) -> None:
    first = call(ledger, CREATE, create_biz())
    assert first["activity_id"] in ledger.activities
    activity = ledger.activities[first["activity_id"]]
    assert (activity.quantity, activity.limit_per_user, activity.amount_fen) == (3, 2, 500)
    assert call(ledger, CREATE, create_biz()) is first
    assert len(ledger.activities) == 1
    stats = ledger.stats[CREATE]
    assert (stats.ok, stats.effects, stats.replays) == (2, 1, 1)


def test_create_conflict_on_other_params(ledger: Ledger) -> None:
    call(ledger, CREATE, create_biz())
    err = fails(ledger, CREATE, create_biz(activity_name="other"))
    assert (err.code, err.sub_code) == ("40004", "IDEMPOTENT_PARAM_CONFLICT")


@pytest.mark.parametrize(
    ("biz", "code", "field"),
    [
        (create_biz(activity_name=None), "40001", "activity_name"),
        (create_biz(voucher_deduct_info={"amount": "-1"}), "40002", "voucher_deduct_info.amount"),
        (create_biz(voucher_deduct_info={"amount": "10000000.01"}), "40002", "voucher_deduct_info.amount"),
        (create_biz(voucher_deduct_info={"amount": "1.234"}), "40002", "voucher_deduct_info.amount"),
        (create_biz(voucher_deduct_info=[]), "40002", "voucher_deduct_info"),
        (create_biz(voucher_send_rule_info="x"), "40002", "voucher_send_rule_info"),
        (
            create_biz(
                voucher_send_rule_info={
                    "quantity": 0,
                    "publish_start_time": "2026-05-01 00:00:00",
                    "publish_end_time": "2026-07-01 00:00:00",
                }
            ),
            "40002",
            "voucher_send_rule_info.quantity",
        ),
        (
            create_biz(
                voucher_send_rule_info={
                    "quantity": 5,
                    "publish_start_time": "2026-07-01 00:00:00",
                    "publish_end_time": "2026-05-01 00:00:00",
                }
            ),
            "40002",
            "voucher_send_rule_info.publish_end_time",
        ),
        (
            create_biz(voucher_send_rule_info={"quantity": 5, "publish_start_time": "tomorrow"}),
            "40002",
            "voucher_send_rule_info.publish_start_time",
        ),
    ],
)
def test_create_validation_names_the_field(ledger: Ledger, biz: dict, code: str, field: str) -> None:
    err = fails(ledger, CREATE, biz)
    assert err.code == code
    assert field in (err.sub_msg or "")
    assert not ledger.activities


def test_send_issues_and_replays_the_same_dict(ledger: Ledger, act: str) -> None:
    first = send(ledger, act, "K1")
    assert first["voucher_id"]
    again = send(ledger, act, "K1")
    assert again is first
    assert ledger.activities[act].issued == 1
    stats = ledger.stats[SEND]
    assert (stats.ok, stats.effects, stats.replays, stats.business_failures) == (2, 1, 1, 0)


def test_send_conflict_when_key_reused_for_another_user(ledger: Ledger, act: str) -> None:
    send(ledger, act, "K1", U1)
    err = fails(ledger, SEND, {"activity_id": act, "out_biz_no": "K1", "user_id": U2})
    assert err.sub_code == "IDEMPOTENT_PARAM_CONFLICT"
    assert ledger.activities[act].issued == 1


def test_per_user_limit_then_sold_out(ledger: Ledger, act: str) -> None:
    send(ledger, act, "a", U1)
    send(ledger, act, "b", U1)
    err = fails(ledger, SEND, {"activity_id": act, "out_biz_no": "c", "user_id": U1})
    assert (err.code, err.sub_code) == ("40004", "EXCEED_USER_LIMIT")
    send(ledger, act, "d", U2)
    err = fails(ledger, SEND, {"activity_id": act, "out_biz_no": "e", "user_id": U3})
    assert (err.code, err.sub_code) == ("40004", "BUDGET_NOT_ENOUGH_ERROR")
    assert ledger.activities[act].issued == 3
    assert ledger.stats[SEND].business_failures == 2
    assert ledger.audit()["ok"]


def test_failed_send_is_not_remembered(ledger: Ledger, act: str) -> None:
    send(ledger, act, "a", U1)
    send(ledger, act, "b", U1)
    fails(ledger, SEND, {"activity_id": act, "out_biz_no": "K", "user_id": U1})
    # the same key for another user is a fresh request, not a conflict: failures are not stored
    assert send(ledger, act, "K", U2)["voucher_id"]


def test_publish_window(ledger: Ledger, act: str) -> None:
    before = datetime(2026, 4, 30, 23, 59, 59, tzinfo=CN_TZ).timestamp()
    end = datetime(2026, 7, 1, 0, 0, 0, tzinfo=CN_TZ).timestamp()
    assert fails(ledger, SEND, {"activity_id": act, "out_biz_no": "x", "user_id": U1}, before).sub_code == (
        "ACTIVITY_NOT_START"
    )
    assert fails(ledger, SEND, {"activity_id": act, "out_biz_no": "x", "user_id": U1}, end).sub_code == (
        "ACTIVITY_EXPIRED"
    )
    assert send(ledger, act, "x", U1, end - 1)["voucher_id"]
    assert call(ledger, QUERY, {"activity_id": act}, before)["activity_status"] == "INIT"
    assert call(ledger, QUERY, {"activity_id": act}, end)["activity_status"] == "EXPIRED"


def test_replay_is_served_even_after_the_window(ledger: Ledger, act: str) -> None:
    end = datetime(2026, 7, 1, 0, 0, 0, tzinfo=CN_TZ).timestamp()
    first = send(ledger, act, "K", U1, end - 10)
    assert send(ledger, act, "K", U1, end + 10) is first


def test_send_by_open_id_and_bad_users(ledger: Ledger, act: str) -> None:
    open_id = ledger.user(U2).open_id
    call(ledger, SEND, {"activity_id": act, "out_biz_no": "o", "open_id": open_id})
    assert ledger.activities[act].per_user[U2] == 1
    for biz in ({"open_id": "074unknown"}, {"user_id": "12345"}):
        err = fails(ledger, SEND, {"activity_id": act, "out_biz_no": "z", **biz})
        assert (err.code, err.sub_code) == ("40004", "USER_NOT_EXIST")
    err = fails(ledger, SEND, {"activity_id": act, "out_biz_no": "z"})
    assert err.code == "40001" and "user_id" in (err.sub_msg or "")


def test_unknown_activity_and_missing_fields(ledger: Ledger) -> None:
    err = fails(ledger, SEND, {"activity_id": "NOPE", "out_biz_no": "k", "user_id": U1})
    assert err.sub_code == "ACTIVITY_NOT_EXIST"
    assert fails(ledger, QUERY, {"activity_id": "NOPE"}).sub_code == "ACTIVITY_NOT_EXIST"
    err = fails(ledger, SEND, {"activity_id": "NOPE", "user_id": U1})
    assert (err.code, err.sub_code) == ("40001", "isv.missing-parameter")
    assert "out_biz_no" in (err.sub_msg or "")


def test_unlimited_per_user_when_limit_absent(ledger: Ledger) -> None:
    rule = {"quantity": 5, "publish_start_time": "NowTime", "publish_end_time": "2026-07-01 00:00:00"}
    act = call(ledger, CREATE, create_biz(voucher_send_rule_info=rule))["activity_id"]
    for i in range(5):
        send(ledger, act, f"k{i}", U1)
    assert fails(ledger, SEND, {"activity_id": act, "out_biz_no": "k9", "user_id": U1}).sub_code == (
        "BUDGET_NOT_ENOUGH_ERROR"
    )


def test_query_reports_inventory(ledger: Ledger, act: str) -> None:
    send(ledger, act, "a", U1)
    out = call(ledger, QUERY, {"activity_id": act})
    assert out["activity_status"] == "ACTIVE"
    assert out["activity_name"] == "spring sale"
    assert out["voucher_inventory_info"] == {"send_count": 1, "use_count": 0}
    assert out["voucher_send_rule_info"]["quantity"] == 3
    assert out["voucher_send_rule_info"]["publish_start_time"] == "2026-05-01 00:00:00"


def test_create_accepts_the_official_sdk_model_shape():
    from mock_platform.ledger import Ledger
    from mock_platform.methods import METHODS, Call

    ledger = Ledger()
    biz = {
        "out_biz_no": "sdk-1",
        "activity_name": "SDK shaped",
        "voucher_send_rule": {"voucher_quantity": 5, "voucher_quantity_limit_per_user": 1},
        "publish_start_time": "2020-01-01 00:00:00",
        "publish_end_time": "2099-01-01 00:00:00",
        "voucher_deduct_info": {"voucher_type": "FIX_VOUCHER", "fix_voucher_info": {"amount": "3.00"}},
    }
    call = Call("app", "alipay.marketing.activity.voucher.create", {}, biz, 1_700_000_000.0)
    activity_id = METHODS["alipay.marketing.activity.voucher.create"](ledger, call)["activity_id"]
    assert ledger.activities[activity_id].quantity == 5
