"""The effects journal (unit) and GET /admin/effects over real HTTP, for every granting method."""

from __future__ import annotations

import gc
import json
import os
import tracemalloc
from pathlib import Path

import pytest

from mock_platform.effects import STRIDE, Effect, EffectJournal, effect_line
from mock_platform.ledger import Ledger, LedgerConfig

FIELDS = ["seq", "method", "app_id", "biz_no", "user_id", "campaign", "amount", "unit", "id", "at"]
U1, U2, U3 = "2088000000000001", "2088000000000002", "2088000000000003"
APP = "2021000000000001"
APPID, MCH = "wx0000000000000001", "8956000"
SEED = {
    "activities": [
        {
            "activity_id": "ACT1",
            "activity_name": "flash sale",
            "quantity": 2,
            "quantity_limit_per_user": 1,
            "amount": "5.00",
            "publish_start_time": "2026-01-01 00:00:00",
            "publish_end_time": "2099-01-01 00:00:00",
        }
    ],
    "cash_campaigns": [
        {
            "crowd_no": "CROWD1",
            "coupon_name": "rain",
            "prize_type": "fixed",
            "total_money": "10.00",
            "total_num": 10,
            "send_freqency": "L5",
            "start_time": "2026-01-01 00:00:00",
            "end_time": "2099-01-01 00:00:00",
        }
    ],
    "point_budgets": [{"budget_code": "JFB1", "total_amount": 1000}],
    "wechat": {
        "apps": [{"appid": APPID, "secret": "s"}],
        "stocks": [{"stock_id": "9856000", "max_coupons": 5, "max_coupons_per_user": 1}],
    },
}


def lines(raw: bytes) -> list[dict]:
    return [json.loads(line) for line in raw.splitlines()]


def append(journal: EffectJournal, n: int, first: int = 0) -> None:
    for i in range(first, first + n):
        journal.append("m", "app", f"b{i}", "u", "c", i, "points", f"id{i}", 1.5)


# --- the journal --------------------------------------------------------------------------------


def test_line_is_the_typed_effect_in_order() -> None:
    values = [1, "wechat.coupon.send", MCH, "r-1", "oX", "9856000", 1, "coupon", "7", 1.25]
    effect = Effect(**dict(zip(FIELDS, values, strict=True)))  # type: ignore[typeddict-item]
    line = effect_line(effect)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert list(json.loads(line)) == FIELDS == list(Effect.__annotations__)
    journal = EffectJournal()
    journal.append(*values[1:])  # type: ignore[arg-type]
    assert b"".join(journal.export()) == line  # the journal writes the same line
    journal.close()


@pytest.mark.parametrize("after", [0, 1, STRIDE - 1, STRIDE, STRIDE + 1, 2 * STRIDE + 7, 2999, 3000, 5000])
def test_export_after_any_seq(after: int) -> None:
    journal = EffectJournal()
    append(journal, 3000)
    got = lines(b"".join(journal.export(after)))
    assert [e["seq"] for e in got] == list(range(after + 1, 3001))
    assert all(e["biz_no"] == f"b{e['seq'] - 1}" for e in got)
    journal.close()


def test_export_stops_at_what_was_made_before_it_and_survives_a_clear() -> None:
    journal = EffectJournal()
    append(journal, 10)
    chunks = journal.export()
    path = journal.path
    assert path is not None and os.path.exists(path)
    journal.clear()  # POST /admin/reset: the file goes, the export under way keeps reading it
    assert not os.path.exists(path) and journal.last_seq == 0
    append(journal, 3, first=100)
    assert [e["seq"] for e in lines(b"".join(chunks))] == list(range(1, 11))
    assert [e["biz_no"] for e in lines(b"".join(journal.export()))] == ["b100", "b101", "b102"]
    journal.close()


def test_no_file_until_the_first_effect_and_none_after_close(tmp_path: Path) -> None:
    journal = EffectJournal()
    assert journal.path is None and list(journal.export()) == []
    append(journal, 1)
    private = Path(journal.path or "")
    assert private.exists()
    journal.close()
    assert not private.exists() and not private.parent.exists()
    configured = tmp_path / "effects.ndjson"
    journal = EffectJournal(configured)
    append(journal, 2)
    journal.flush()
    assert len(configured.read_bytes().splitlines()) == 2
    del journal
    gc.collect()  # the finalizer removes it, as it would at exit
    assert not configured.exists()


def test_memory_does_not_grow_per_effect() -> None:
    journal = EffectJournal()
    append(journal, 2000)  # the file and its buffer exist
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        append(journal, 50_000, first=2000)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # Only the sparse index grows: one int per STRIDE effects.
    assert grown < 8 * 1024, f"{grown} bytes for 50,000 effects"
    assert journal.last_seq == 52_000
    journal.close()


def test_ledger_reset_clears_the_journal() -> None:
    ledger = Ledger()
    ledger.seed({"activities": SEED["activities"]})
    ledger.debug_force_issue("ACT1", U1, "dup")
    assert ledger.effects.last_seq == 1
    ledger.reset()
    assert ledger.effects.last_seq == 0 and list(ledger.effects.export()) == []
    ledger.effects.close()


def test_config_names_a_bad_effects_path(tmp_path: Path) -> None:
    assert LedgerConfig.from_mapping({"effects": {"path": str(tmp_path / "e.ndjson")}}).effects_path
    for bad in ({"path": str(tmp_path)}, {"path": str(tmp_path / "no" / "e")}, {"path": 5}, {"dir": "x"}):
        with pytest.raises(ValueError, match=r"^effects\."):
            LedgerConfig.from_mapping({"effects": bad})


# --- over HTTP ----------------------------------------------------------------------------------


def gateway(mock, method: str, biz: dict) -> dict:
    return mock.gateway(method, biz)[1]


def effects(mock, query: str = "") -> tuple[int, dict, list[dict]]:
    status, headers, raw = mock.request(
        "GET", "/admin/effects" + query, headers={"X-Admin-Token": mock.admin_token}
    )
    return status, headers, lines(raw) if status == 200 else json.loads(raw)


def wechat_send(mock, openid: str, out_request_no: str) -> int:
    body = {
        "stock_id": "9856000",
        "out_request_no": out_request_no,
        "appid": APPID,
        "stock_creator_mchid": MCH,
    }
    status, _, _ = mock.request(
        "POST",
        f"/v3/marketing/favor/users/{openid}/coupons",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    return status


def test_export_has_one_line_per_grant_of_every_method(make_mock) -> None:
    mock = make_mock({"seed": SEED})
    points = "alipay.user.alipaypoint.send"
    voucher = "alipay.marketing.activity.voucher.send"
    cash = "alipay.marketing.campaign.cash.trigger"
    p = gateway(
        mock, points, {"budget_code": "JFB1", "partner_biz_no": "p1", "point_amount": 300, "user_id": U1}
    )
    assert (
        gateway(
            mock, points, {"budget_code": "JFB1", "partner_biz_no": "p1", "point_amount": 300, "user_id": U1}
        )
        == p
    )
    too_much = {"budget_code": "JFB1", "partner_biz_no": "p2", "point_amount": 999, "user_id": U1}
    assert gateway(mock, points, too_much)["code"] == "40004"  # a business failure: no line
    v = gateway(mock, voucher, {"activity_id": "ACT1", "out_biz_no": "v1", "user_id": U2})
    assert (
        gateway(mock, voucher, {"activity_id": "ACT1", "out_biz_no": "v2", "user_id": U2})["code"] == "40004"
    )
    c = gateway(mock, cash, {"crowd_no": "CROWD1", "out_biz_no": "c1", "user_id": U3})
    code = mock.sim("/sim/auth_code", {"user_id": U1})[1]["auth_code"]
    _, _, raw = mock.request(
        "GET", f"/sns/jscode2session?appid={APPID}&secret=s&js_code={code}&grant_type=authorization_code"
    )
    openid = json.loads(raw)["openid"]
    assert wechat_send(mock, openid, "w1") == 200
    assert wechat_send(mock, openid, "w1") == 200  # replay: no line
    coupon_id = mock.state.ledger.idempotency.lookup(
        ("wechat.coupon.send", MCH), "w1", ("9856000", openid, APPID), 0
    )

    status, headers, got = effects(mock)
    assert status == 200 and headers["Content-Type"] == "application/x-ndjson"
    assert headers["X-Last-Seq"] == "4"
    assert [list(e) for e in got] == [FIELDS] * 4
    rows = [{k: v for k, v in e.items() if k != "at"} for e in got]
    assert rows == [
        {"seq": 1, "method": points, "app_id": APP, "biz_no": "p1", "user_id": U1, "campaign": "JFB1",
         "amount": 300, "unit": "points", "id": p["record_id"]},
        {"seq": 2, "method": voucher, "app_id": APP, "biz_no": "v1", "user_id": U2, "campaign": "ACT1",
         "amount": 1, "unit": "voucher", "id": v["voucher_id"]},
        {"seq": 3, "method": cash, "app_id": APP, "biz_no": "c1", "user_id": U3, "campaign": "CROWD1",
         "amount": 100, "unit": "fen", "id": c["biz_no"]},
        {"seq": 4, "method": "wechat.coupon.send", "app_id": MCH, "biz_no": "w1", "user_id": openid,
         "campaign": "9856000", "amount": 1, "unit": "coupon", "id": coupon_id["coupon_id"]},
    ]  # fmt: skip
    assert all(isinstance(e["at"], float) and e["at"] > 1.7e9 for e in got)
    # As many lines per method as the audit counts effects.
    _, audit = mock.admin("GET", "/admin/audit")
    for method in (points, voucher, cash, "wechat.coupon.send"):
        assert audit["totals"]["methods"][method]["effects"] == sum(e["method"] == method for e in got)
    status, headers, later = effects(mock, "?after=2")
    assert [e["seq"] for e in later] == [3, 4] and headers["X-Last-Seq"] == "4"
    assert effects(mock, "?after=4")[2] == []
    mock.admin("POST", "/admin/reset", {})
    status, headers, got = effects(mock)
    assert (status, headers["X-Last-Seq"], got) == (200, "0", [])


def test_a_biz_no_that_takes_effect_twice_shows_twice(make_mock) -> None:
    # An idempotency store of one entry forgets "a" once "b" is made: "a" then pays again.
    activity = {**SEED["activities"][0], "quantity": 10, "quantity_limit_per_user": 0}
    mock = make_mock({"seed": {"activities": [activity]}, "idempotency": {"max_entries": 1}})
    voucher = "alipay.marketing.activity.voucher.send"
    ids = [
        gateway(mock, voucher, {"activity_id": "ACT1", "out_biz_no": out_biz_no, "user_id": U1})["voucher_id"]
        for out_biz_no in ("a", "b", "a")
    ]
    _, _, got = effects(mock)
    assert [(e["biz_no"], e["id"]) for e in got] == list(zip(["a", "b", "a"], ids, strict=True))
    assert ids[0] != ids[2]


@pytest.mark.parametrize("query", ["?after=-1", "?after=x", "?after=1.5", "?after=" + "9" * 30])
def test_bad_after_is_400(mock_server, query: str) -> None:
    status, _, body = effects(mock_server, query)
    assert status == 400 and "after" in body["error"]


def test_effects_need_the_token(mock_server) -> None:
    status, _, _ = mock_server.request("GET", "/admin/effects")
    assert status == 401
