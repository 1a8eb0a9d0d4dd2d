"""Ledger seed/reset/audit, the bounded idempotency store, config and business codes."""

from __future__ import annotations

import copy
import time

import pytest

from mock_platform.codes import BusinessCodes
from mock_platform.errors import GatewayError
from mock_platform.fields import parse_send_freqency
from mock_platform.idempotency import ExpiringMap, IdempotencyConflict, IdempotencyStore
from mock_platform.ledger import Ledger, LedgerConfig
from mock_platform.methods import METHODS, Call

NOW = 1_780_000_000.0
U1, U2 = "2088000000000001", "2088000000000002"
SEED = {
    "apps": [
        {
            "app_id": "2021000000000001",
            "public_key": "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----",
        }
    ],
    "users": [{"user_id": U1, "nick_name": "Ada", "followed": True}],
    "activities": [
        {
            "activity_id": "ACT1",
            "activity_name": "flash",
            "quantity": 2,
            "quantity_limit_per_user": 1,
            "amount": "5.00",
            "publish_start_time": "2026-01-01 00:00:00",
            "publish_end_time": "2027-01-01 00:00:00",
        }
    ],
    "cash_campaigns": [
        {
            "crowd_no": "CROWD1",
            "coupon_name": "rain",
            "prize_type": "random",
            "total_money": "1000.00",
            "total_num": 2000,
            "send_freqency": "D3|L10",
            "start_time": "NowTime",
            "end_time": "2027-01-01 00:00:00",
        }
    ],
    "point_budgets": [
        {
            "budget_code": "JFB1",
            "total_amount": 10000000,
            "start_time": "NowTime",
            "end_time": "2027-01-01 00:00:00",
        }
    ],
    "wechat": {
        "apps": [{"appid": "wx1", "secret": "s"}],
        "stocks": [
            {"stock_id": "9856000", "max_coupons": 1000, "max_coupons_per_user": 1, "coupon_value": 100}
        ],
    },
}


@pytest.fixture
def ledger() -> Ledger:
    ledger = Ledger()
    ledger.seed(SEED, now=NOW)
    return ledger


def send(ledger: Ledger, key: str, user: str) -> dict:
    biz = {"activity_id": "ACT1", "out_biz_no": key, "user_id": user}
    return METHODS["alipay.marketing.activity.voucher.send"](
        ledger, Call("2021", "alipay.marketing.activity.voucher.send", {}, biz, NOW)
    )


# ---- seed


def test_seed_loads_every_section(ledger: Ledger) -> None:
    assert ledger.app_public_key("2021000000000001").startswith("-----BEGIN PUBLIC KEY")
    assert ledger.users[U1].nick_name == "Ada" and ledger.users[U1].followed
    assert ledger.activities["ACT1"].amount_fen == 500
    campaign = ledger.campaigns["CROWD1"]
    assert (campaign.total_fen, campaign.period, campaign.period_limit, campaign.life_limit) == (
        100000,
        "D",
        3,
        10,
    )
    assert campaign.start == NOW
    assert ledger.budgets["JFB1"].total == 10_000_000
    assert ledger.wx_apps["wx1"].secret == "s" and ledger.wx_stocks["9856000"].max_coupons == 1000


def test_seed_returns_counts() -> None:
    counts = Ledger().seed(SEED, now=NOW)
    assert counts == {
        "apps": 1,
        "users": 1,
        "activities": 1,
        "cash_campaigns": 1,
        "point_budgets": 1,
        "wechat_apps": 1,
        "wechat_stocks": 1,
        "wechat_merchants": 0,
    }


def _bad(path: list, value: object) -> dict:
    data = copy.deepcopy(SEED)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_bad(["activities", 0, "quantity"], -1), "seed.activities[0].quantity"),
        (_bad(["activities", 0, "quantity"], "many"), "seed.activities[0].quantity"),
        (_bad(["activities", 0, "amount"], "5.001"), "seed.activities[0].amount"),
        (
            _bad(["activities", 0, "publish_end_time"], "2025-01-01 00:00:00"),
            "seed.activities[0].publish_end_time",
        ),
        (_bad(["activities", 0, "stock"], 5), "seed.activities[0].stock"),
        (_bad(["cash_campaigns", 0, "send_freqency"], "D3"), "seed.cash_campaigns[0].send_freqency"),
        (_bad(["cash_campaigns", 0, "prize_type"], "big"), "seed.cash_campaigns[0].prize_type"),
        (_bad(["point_budgets", 0, "total_amount"], None), "seed.point_budgets[0].total_amount"),
        (_bad(["point_budgets", 0, "enabled"], "yes"), "seed.point_budgets[0].enabled"),
        (_bad(["users", 0, "user_id"], "42"), "seed.users[0].user_id"),
        (_bad(["wechat", "stocks", 0, "max_coupons"], 1.5), "seed.wechat.stocks[0].max_coupons"),
        (_bad(["apps"], {"app_id": "x"}), "seed.apps"),
        (_bad(["activities"], ["ACT1"]), "seed.activities[0]"),
        (_bad(["budgets"], []), "seed.budgets"),
    ],
)
def test_seed_errors_name_the_field_and_change_nothing(data: dict, field: str) -> None:
    ledger = Ledger()
    with pytest.raises(ValueError) as info:
        ledger.seed(data, now=NOW)
    assert str(info.value).startswith(field), str(info.value)
    assert not ledger.activities and not ledger.campaigns and not ledger.budgets and not ledger.apps


def test_seed_rejects_non_mapping() -> None:
    with pytest.raises(ValueError, match="seed"):
        Ledger().seed(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_reseed_replaces_and_reset_keeps_apps(ledger: Ledger) -> None:
    send(ledger, "a", U1)
    ledger.seed({"activities": SEED["activities"]}, now=NOW)
    assert ledger.activities["ACT1"].issued == 0
    ledger.register_app("2021000000000009", None)
    ledger.reset()
    assert not ledger.activities and not ledger.users and not ledger.stats and len(ledger.idempotency) == 0
    assert "2021000000000009" in ledger.apps and ledger.app_public_key("2021000000000009") is None
    assert ledger.app_public_key("2021000000000001") is not None
    assert ledger.audit()["ok"]
    with pytest.raises(ValueError, match="app_id"):
        ledger.register_app("", None)


# ---- audit


def test_audit_totals(ledger: Ledger) -> None:
    send(ledger, "a", U1)
    send(ledger, "a", U1)
    audit = ledger.audit()
    assert audit["ok"] and audit["violations"] == []
    totals = audit["totals"]
    assert totals["methods"]["alipay.marketing.activity.voucher.send"] == {
        "ok": 2,
        "effects": 1,
        "replays": 1,
        "business_failures": 0,
    }
    assert totals["vouchers"] == {"ACT1": {"stock": 2, "issued": 1}}
    assert totals["cash"] == {"CROWD1": {"budget_fen": 100000, "paid_fen": 0, "count": 0}}
    assert totals["points"] == {"JFB1": {"budget": 10_000_000, "sent": 0}}
    assert totals["wechat_coupons"] == {"9856000": {"stock": 1000, "issued": 0}}


def test_audit_catches_overissue_and_per_user_breach(ledger: Ledger) -> None:
    send(ledger, "a", U1)
    send(ledger, "b", U2)
    ledger.debug_force_issue("ACT1", U1)
    audit = ledger.audit()
    assert not audit["ok"]
    text = " ".join(audit["violations"])
    assert "issued 3 > stock 2" in text
    assert "per-user limit" in text and U1 in text


def test_audit_catches_a_second_effect_under_one_key(ledger: Ledger) -> None:
    ledger.seed(
        {"activities": [{**SEED["activities"][0], "quantity": 10, "quantity_limit_per_user": 5}]}, now=NOW
    )
    send(ledger, "K", U1)
    assert ledger.audit()["ok"]
    ledger.debug_force_issue("ACT1", U1, out_biz_no="K", now=NOW)
    audit = ledger.audit()
    assert not audit["ok"]
    assert any("'K'" in v and "2 effects" in v for v in audit["violations"])
    with pytest.raises(ValueError, match="activity_id"):
        ledger.debug_force_issue("NOPE", U1)


# ---- bounded stores


def test_expiring_map_ttl_cap_and_order() -> None:
    m: ExpiringMap[int] = ExpiringMap(max_entries=3)
    for i in range(5):
        m.put(f"k{i}", i, expires_at=NOW + 10, now=NOW)
    assert len(m) == 3 and m.evicted == 2
    assert m.get("k0", NOW) is None and m.get("k1", NOW) is None  # oldest evicted first
    assert m.get("k4", NOW) == 4
    assert m.get("k4", NOW + 10) is None  # expired at its deadline
    assert m.pop("k3", NOW + 1) == 3 and m.pop("k3", NOW + 1) is None
    m.put("late", 9, expires_at=NOW + 100, now=NOW + 50)  # purges the expired k2
    assert [k for k, _ in m.items()] == ["late"]
    with pytest.raises(ValueError):
        ExpiringMap(0)


def test_expiring_map_purges_what_expired_as_time_passes() -> None:
    m: ExpiringMap[int] = ExpiringMap(max_entries=1000)
    for i in range(100):  # k<j> expires at NOW + j + 1 and is put at NOW + j / 2
        m.put(f"k{i}", i, expires_at=NOW + i + 1, now=NOW + i * 0.5)
    assert len(m) == 51 and m.evicted == 49  # k0..k48 expired by NOW + 49.5, and are gone
    m.put("k60", 60, expires_at=NOW + 200, now=NOW + 49.5)  # a live key put again moves to the end
    assert [k for k, _ in m.items()][-1] == "k60"
    m.put("new", 1, expires_at=NOW + 300, now=NOW + 99.5)  # the new front is due: purged again
    assert [k for k, _ in m.items()] == ["k99", "k60", "new"]
    m.clear()
    m.put("again", 1, expires_at=NOW + 10, now=NOW)
    assert len(m) == 1 and m.evicted == 0


def test_idempotency_store_replay_conflict_ttl() -> None:
    store = IdempotencyStore(ttl_s=60, max_entries=10)
    result = {"voucher_id": "V1"}
    assert store.lookup("s", "k", ("u1",), NOW) is None
    store.remember("s", "k", ("u1",), result, NOW)
    assert store.lookup("s", "k", ("u1",), NOW + 59) is result
    assert store.lookup("other-scope", "k", ("u2",), NOW) is None
    with pytest.raises(IdempotencyConflict):
        store.lookup("s", "k", ("u2",), NOW)
    assert store.lookup("s", "k", ("u1",), NOW + 60) is None  # expired: a new request
    with pytest.raises(ValueError):
        IdempotencyStore(ttl_s=0)


def test_idempotency_store_is_bounded_and_fast() -> None:
    store = IdempotencyStore(ttl_s=86400, max_entries=1000)
    start = time.perf_counter()
    for i in range(200_000):
        store.remember("s", f"k{i}", i, {"i": i}, NOW + i * 0.001)
    elapsed = time.perf_counter() - start
    assert len(store) == 1000 and store.evicted == 199_000
    assert store.lookup("s", "k0", 0, NOW + 300) is None
    assert store.lookup("s", "k199999", 199_999, NOW + 300) == {"i": 199_999}
    assert elapsed < 2.0, f"{elapsed:.2f}s for 200k puts: not O(1)"


def test_ledger_idempotency_eviction_lets_a_key_take_effect_again() -> None:
    ledger = Ledger(LedgerConfig(idempotency_max_entries=2))
    ledger.seed(
        {"activities": [{**SEED["activities"][0], "quantity": 10, "quantity_limit_per_user": 0}]}, now=NOW
    )
    first = send(ledger, "a", U1)
    send(ledger, "b", U1)
    send(ledger, "c", U1)  # evicts "a"
    assert send(ledger, "a", U1) != first
    assert ledger.audit()["totals"]["idempotency"] == {"entries": 2, "max_entries": 2, "evicted": 2}


# ---- config and codes


def test_config_from_mapping() -> None:
    cfg = LedgerConfig.from_mapping(
        {
            "seed": {},
            "faults": {},
            "idempotency": {"ttl_s": 600, "max_entries": 5000},
            "auth": {"code_ttl_s": 60, "token_ttl_s": 3600},
            "codes": {"sold_out": "SOLD_OUT", "user_limit": {"sub_code": "LIMIT", "sub_msg": "too many"}},
            "random_seed": 3,
        }
    )
    assert (cfg.idempotency_ttl_s, cfg.idempotency_max_entries) == (600, 5000)
    assert (cfg.auth_code_ttl_s, cfg.token_ttl_s, cfg.refresh_token_ttl_s) == (60, 3600, 2_592_000)
    assert cfg.codes.sold_out.sub_code == "SOLD_OUT" and cfg.codes.user_limit.sub_msg == "too many"
    assert cfg.random_seed == 3
    assert LedgerConfig.from_mapping(None) == LedgerConfig()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"idempotency": {"ttl": 5}}, "idempotency.ttl"),
        ({"idempotency": {"max_entries": 0}}, "idempotency.max_entries"),
        ({"auth": {"code_ttl_s": "soon"}}, "auth.code_ttl_s"),
        ({"codes": {"sold_outt": "X"}}, "codes.sold_outt"),
        ({"codes": {"sold_out": 5}}, "codes.sold_out"),
        ({"codes": {"sold_out": "USER_NOT_EXIST"}}, "codes.invalid_user"),
        ({"random_seed": "x"}, "random_seed"),
        ({"idempotency": [1]}, "idempotency"),
    ],
)
def test_config_errors_name_the_field(config: dict, field: str) -> None:
    with pytest.raises(ValueError) as info:
        LedgerConfig.from_mapping(config)
    assert str(info.value).startswith(field), str(info.value)


def test_business_codes_are_distinct_40004_and_overridable() -> None:
    codes = BusinessCodes()
    table = codes.as_dict()
    assert len({c["sub_code"] for c in table.values()}) == len(table) >= 13
    err = codes.error("sold_out")
    assert isinstance(err, GatewayError) and (err.code, err.sub_code) == ("40004", "BUDGET_NOT_ENOUGH_ERROR")
    ledger = Ledger(LedgerConfig(codes=BusinessCodes.from_mapping({"unknown_activity": "NO_SUCH_ACT"})))
    with pytest.raises(GatewayError) as info:
        send(ledger, "a", U1)
    assert info.value.sub_code == "NO_SUCH_ACT"


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, (None, 0, 1)), ("L5", (None, 0, 5)), ("D3|L10", ("D", 3, 10)), ("L2|W1", ("W", 1, 2))],
)
def test_parse_send_freqency(text: str | None, expected: tuple) -> None:
    assert parse_send_freqency(text, "f") == expected


def test_open_ids_are_derived_from_the_user_id_and_forgeries_are_refused() -> None:
    ledger = Ledger()
    user = ledger.user(U1)
    assert len(user.open_id) == 47 and user.open_id.startswith("074a")
    assert len(user.wx_openid) == 28 and user.wx_openid.startswith("o")
    assert Ledger().user(U1).open_id == user.open_id  # stable across restarts
    assert ledger.user(U2).open_id != user.open_id
    assert ledger.user_by_open_id(user.open_id) is user
    forged = "074a" + "0" * 31 + user.open_id[-12:]  # the right digits, not the right digest
    assert ledger.user_by_open_id(forged) is None
    assert ledger.user_by_open_id(user.open_id[:-1]) is None
    assert Ledger().user_by_open_id(user.open_id) is None  # a user that ledger never saw
