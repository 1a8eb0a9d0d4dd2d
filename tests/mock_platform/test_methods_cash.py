"""alipay.marketing.campaign.cash.create / trigger: prizes, budget, send_freqency, idempotency."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from mock_platform.errors import GatewayError
from mock_platform.fields import CN_TZ
from mock_platform.ledger import Ledger, LedgerConfig
from mock_platform.methods import METHODS, Call

APP = "2021000000000001"
NOW = datetime(2026, 6, 3, 12, 0, tzinfo=CN_TZ).timestamp()  # a Wednesday
CREATE = "alipay.marketing.campaign.cash.create"
TRIGGER = "alipay.marketing.campaign.cash.trigger"
U1, U2 = "2088000000000001", "2088000000000002"
DAY = 86400.0


def call(ledger: Ledger, method: str, biz: dict, now: float = NOW) -> dict:
    return METHODS[method](ledger, Call(APP, method, {}, biz, now))


def fails(ledger: Ledger, method: str, biz: dict, now: float = NOW) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        call(ledger, method, biz, now)
    return info.value


def create(ledger: Ledger, **over) -> str:
    biz = {
        "coupon_name": "rain",
        "prize_type": "fixed",
        "total_money": "100.00",
        "total_num": 50,
        "send_freqency": "L100",
        "start_time": "NowTime",
        "end_time": "2026-09-01 00:00:00",
        "prize_msg": "lucky",
    }
    biz.update(over)
    return call(ledger, CREATE, biz)["crowd_no"]


def trigger(ledger: Ledger, crowd: str, key: str, user: str = U1, now: float = NOW, **extra) -> dict:
    return call(ledger, TRIGGER, {"crowd_no": crowd, "out_biz_no": key, "user_id": user, **extra}, now)


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(LedgerConfig(random_seed=7))


def test_create_and_fixed_trigger(ledger: Ledger) -> None:
    crowd = create(ledger)
    out = trigger(ledger, crowd, "t1")
    assert out["trigger_result"] == "true"
    assert out["prize_amount"] == "2.00"
    assert out["out_biz_no"] == "t1"
    assert out["coupon_name"] == "rain" and out["prize_msg"] == "lucky"
    assert out["biz_no"]
    assert ledger.campaigns[crowd].paid_fen == 200
    assert ledger.stats[CREATE].effects == 1


def test_trigger_replay_and_conflict(ledger: Ledger) -> None:
    crowd = create(ledger)
    first = trigger(ledger, crowd, "t1")
    assert trigger(ledger, crowd, "t1") is first
    err = fails(ledger, TRIGGER, {"crowd_no": crowd, "out_biz_no": "t1", "user_id": U2})
    assert err.sub_code == "IDEMPOTENT_PARAM_CONFLICT"
    assert ledger.campaigns[crowd].count == 1
    assert ledger.stats[TRIGGER].replays == 1


@pytest.mark.parametrize("seed", range(40))
def test_random_prizes_stay_in_range_and_never_exceed_budget(seed: int) -> None:
    ledger = Ledger(LedgerConfig(random_seed=seed))
    rng = random.Random(seed)
    total_num = rng.randint(1, 60)
    total_fen = rng.randint(20 * total_num, 20_000 * total_num)
    crowd = create(
        ledger,
        prize_type="random",
        total_money=f"{total_fen // 100}.{total_fen % 100:02d}",
        total_num=total_num,
    )
    lo, hi = total_fen / total_num * 0.5, total_fen / total_num * 1.5
    paid = 0
    for i in range(total_num):
        fen = round(float(trigger(ledger, crowd, f"t{i}", f"2088{i:012d}")["prize_amount"]) * 100)
        assert lo - 1 <= fen <= hi + 1, (fen, lo, hi)
        paid += fen
        assert paid <= total_fen
    assert paid == total_fen  # the last prize takes exactly what remains
    err = fails(ledger, TRIGGER, {"crowd_no": crowd, "out_biz_no": "more", "user_id": U1})
    assert err.sub_code == "CASH_CAMP_BUDGET_INSUFFICIENT"
    assert ledger.audit()["ok"]


def test_order_price_overrides_and_random_still_fits(ledger: Ledger) -> None:
    crowd = create(ledger, prize_type="random", total_money="10.00", total_num=10)
    assert trigger(ledger, crowd, "big", U1, order_price="9.00")["prize_amount"] == "9.00"
    err = fails(
        ledger, TRIGGER, {"crowd_no": crowd, "out_biz_no": "b2", "user_id": U2, "order_price": "5.00"}
    )
    assert err.sub_code == "CASH_CAMP_BUDGET_INSUFFICIENT"
    paid = 900
    for i in range(20):
        try:
            paid += round(float(trigger(ledger, crowd, f"r{i}", f"2088{i:012d}")["prize_amount"]) * 100)
        except GatewayError as error:
            assert error.sub_code == "CASH_CAMP_BUDGET_INSUFFICIENT"
    assert paid <= 1000
    assert ledger.campaigns[crowd].paid_fen == paid
    assert ledger.audit()["ok"]


def test_count_limit_with_fixed_prizes(ledger: Ledger) -> None:
    crowd = create(ledger, total_money="3.00", total_num=3, prize_type="fixed")
    for i in range(3):
        trigger(ledger, crowd, f"t{i}", f"2088{i:012d}")
    assert fails(ledger, TRIGGER, {"crowd_no": crowd, "out_biz_no": "x", "user_id": U1}).sub_code == (
        "CASH_CAMP_BUDGET_INSUFFICIENT"
    )


def test_default_frequency_is_one_per_user(ledger: Ledger) -> None:
    crowd = create(ledger, send_freqency=None)
    trigger(ledger, crowd, "a")
    err = fails(ledger, TRIGGER, {"crowd_no": crowd, "out_biz_no": "b", "user_id": U1})
    assert (err.code, err.sub_code) == ("40004", "EXCEED_TRIGGER_LIMIT")
    trigger(ledger, crowd, "c", U2)


def _limited(ledger: Ledger, crowd: str, key: str, now: float) -> bool:
    try:
        trigger(ledger, crowd, key, U1, now)
    except GatewayError as error:
        assert error.sub_code == "EXCEED_TRIGGER_LIMIT"
        return True
    return False


def test_daily_and_lifetime_limits(ledger: Ledger) -> None:
    crowd = create(ledger, send_freqency="D2|L3")
    assert not _limited(ledger, crowd, "a", NOW)
    assert not _limited(ledger, crowd, "b", NOW + 3600)
    assert _limited(ledger, crowd, "c", NOW + 7200)
    midnight = datetime(2026, 6, 4, 0, 0, tzinfo=CN_TZ).timestamp()  # GMT+8 day boundary
    assert _limited(ledger, crowd, "d", midnight - 1)
    assert not _limited(ledger, crowd, "e", midnight)
    assert _limited(ledger, crowd, "f", midnight + 60)  # lifetime L3 reached
    assert _limited(ledger, crowd, "g", midnight + 5 * DAY)


def test_weekly_limit_resets_on_monday(ledger: Ledger) -> None:
    crowd = create(ledger, send_freqency="W1|L10")
    assert not _limited(ledger, crowd, "a", NOW)
    sunday_night = datetime(2026, 6, 7, 23, 59, tzinfo=CN_TZ).timestamp()
    assert _limited(ledger, crowd, "b", sunday_night)
    assert not _limited(ledger, crowd, "c", sunday_night + 60)  # Monday 00:00 GMT+8


def test_monthly_limit_resets_on_the_first(ledger: Ledger) -> None:
    crowd = create(ledger, send_freqency="M2|L10")
    assert not _limited(ledger, crowd, "a", NOW)
    assert not _limited(ledger, crowd, "b", NOW + DAY)
    assert _limited(ledger, crowd, "c", datetime(2026, 6, 30, 23, 0, tzinfo=CN_TZ).timestamp())
    assert not _limited(ledger, crowd, "d", datetime(2026, 7, 1, 0, 0, tzinfo=CN_TZ).timestamp())


def test_window_and_unknown_campaign(ledger: Ledger) -> None:
    crowd = create(ledger, start_time="2026-07-01 00:00:00")
    err = fails(ledger, TRIGGER, {"crowd_no": crowd, "out_biz_no": "a", "user_id": U1})
    assert err.sub_code == "ACTIVITY_NOT_START"
    end = datetime(2026, 9, 1, tzinfo=CN_TZ).timestamp()
    assert fails(ledger, TRIGGER, {"crowd_no": crowd, "out_biz_no": "a", "user_id": U1}, end).sub_code == (
        "ACTIVITY_EXPIRED"
    )
    assert fails(ledger, TRIGGER, {"crowd_no": "NOPE", "out_biz_no": "a", "user_id": U1}).sub_code == (
        "CAMP_NOT_EXIST"
    )


@pytest.mark.parametrize(
    ("over", "code", "field"),
    [
        ({"send_freqency": "D3"}, "40002", "send_freqency"),
        ({"send_freqency": "D3|W2|L5"}, "40002", "send_freqency"),
        ({"send_freqency": "L101"}, "40002", "send_freqency"),
        ({"send_freqency": "X1|L2"}, "40002", "send_freqency"),
        ({"send_freqency": "D0|L2"}, "40002", "send_freqency"),
        ({"prize_type": "lottery"}, "40002", "prize_type"),
        ({"total_money": "10000000.01"}, "40002", "total_money"),
        ({"total_money": "0.50"}, "40002", "total_money"),
        ({"total_money": "1.00", "total_num": 50}, "40002", "total_money"),  # 0.02 per packet
        ({"total_money": "abc"}, "40002", "total_money"),
        ({"total_num": -3}, "40002", "total_num"),
        ({"total_num": None}, "40001", "total_num"),
        ({"coupon_name": None}, "40001", "coupon_name"),
        ({"end_time": "2027-06-01 00:00:00"}, "40002", "end_time"),  # more than 6 months
        ({"start_time": "2026-10-01 00:00:00"}, "40002", "end_time"),  # end before start
    ],
)
def test_create_validation(ledger: Ledger, over: dict, code: str, field: str) -> None:
    with pytest.raises(GatewayError) as info:
        create(ledger, **over)
    assert info.value.code == code
    assert field in (info.value.sub_msg or "")
    assert not ledger.campaigns


@pytest.mark.parametrize("price", ["0.19", "200.01", "-1", "1.001", True])
def test_trigger_rejects_bad_order_price(ledger: Ledger, price: object) -> None:
    crowd = create(ledger)
    err = fails(ledger, TRIGGER, {"crowd_no": crowd, "out_biz_no": "a", "user_id": U1, "order_price": price})
    assert err.code == "40002" and "order_price" in (err.sub_msg or "")
