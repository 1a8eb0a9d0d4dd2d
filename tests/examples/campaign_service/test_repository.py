"""The grant records: reservations, the UNIQUE per-user slot, completion, resume, streaming."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import orjson
import pytest

from campaign_service.repository import ClaimKey, GrantRow, GrantStore, Reservation, ReserveKind

T = TypeVar("T")
KEY = ClaimKey("voucher", "alipay.marketing.activity.voucher.send", "ACT1", "2088000000000001", "")
LEASE = 10.0


def run(path: Path, scenario: Callable[[GrantStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = GrantStore(path)
        await store.open(now=0.0)
        try:
            return await scenario(store)
        finally:
            await store.close(now=0.0)

    return asyncio.run(main())


def test_reserve_finish_and_the_limit(tmp_path: Path) -> None:
    async def scenario(store: GrantStore) -> list[ReserveKind]:
        kinds = []
        first = await store.reserve(KEY, 2, "B1", 1, 100.0, LEASE)
        kinds.append(first.kind)
        busy = await store.reserve(KEY, 2, "B2", 1, 101.0, LEASE)  # the first is at the platform
        kinds.append(busy.kind)
        assert busy.row.grant_id == first.row.grant_id
        done = await store.finish(first.row.grant_id, "granted", 102.0, attempts=1, platform_id="V1")
        assert (done.status, done.platform_id, done.attempts, done.biz_no) == ("granted", "V1", 1, "B1")
        second = await store.reserve(KEY, 2, "B3", 1, 103.0, LEASE)
        kinds.append(second.kind)
        await store.finish(second.row.grant_id, "failed", 104.0, attempts=1, code="BUDGET_NOT_ENOUGH_ERROR")
        third = await store.reserve(KEY, 2, "B4", 1, 105.0, LEASE)  # a failed row frees its slot
        kinds.append(third.kind)
        await store.finish(third.row.grant_id, "granted", 106.0, attempts=1, platform_id="V2")
        full = await store.reserve(KEY, 2, "B5", 1, 107.0, LEASE)
        kinds.append(full.kind)
        assert full.row.biz_no == "B4"  # the latest granted
        other_user = await store.reserve(
            ClaimKey(KEY.kind, KEY.method, KEY.campaign, "2088000000000002", ""), 2, "B6", 1, 108.0, LEASE
        )
        kinds.append(other_user.kind)
        return kinds

    kinds = run(tmp_path / "g.sqlite3", scenario)
    R = ReserveKind
    assert kinds == [R.NEW, R.BUSY, R.NEW, R.NEW, R.DONE, R.NEW]


def test_unknown_rows_are_resumed_with_their_biz_number(tmp_path: Path) -> None:
    async def scenario(store: GrantStore) -> None:
        first = await store.reserve(KEY, 1, "B1", 1, 100.0, LEASE)
        await store.finish(first.row.grant_id, "unknown", 101.0, attempts=3, code="timeout")
        again = await store.reserve(KEY, 1, "B2", 1, 102.0, LEASE)
        assert again.kind is ReserveKind.RESUMED
        assert (again.row.grant_id, again.row.biz_no, again.row.status) == (
            first.row.grant_id,
            "B1",
            "pending",
        )
        await store.release(again.row.grant_id, 103.0, resumed=True)  # the breaker refused: still unknown
        rows = [row async for chunk in store.stream() for row in chunk]
        assert [(r.biz_no, r.status, r.attempts) for r in rows] == [("B1", "unknown", 3)]
        # A pending row whose lease lapsed (its request died) is resumed too.
        lapsed = await store.reserve(KEY, 1, "B3", 1, 104.0, LEASE)
        assert lapsed.kind is ReserveKind.RESUMED
        late = await store.reserve(KEY, 1, "B4", 1, 104.0 + LEASE + 1, LEASE)
        assert late.kind is ReserveKind.RESUMED and late.row.biz_no == "B1"
        # A new reservation released before any call leaves nothing behind.
        other = ClaimKey(KEY.kind, KEY.method, "ACT2", KEY.user_id, "")
        fresh = await store.reserve(other, 1, "B5", 1, 200.0, LEASE)
        await store.release(fresh.row.grant_id, 201.0, resumed=False)
        assert [r.biz_no for chunk in [c async for c in store.stream()] for r in chunk] == ["B1"]
        await store.rebind(late.row.grant_id, "B9", 202.0)
        rows = [row async for chunk in store.stream(since=202.0) for row in chunk]
        assert [r.biz_no for r in rows] == ["B9"]

    run(tmp_path / "g.sqlite3", scenario)


def test_the_unique_index_refuses_a_second_live_row_for_a_slot(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"

    async def scenario(store: GrantStore) -> None:
        await store.reserve(KEY, 1, "B1", 1, 100.0, LEASE)

    run(path, scenario)
    insert = (
        "INSERT INTO grants (kind, method, campaign, user_id, period, slot, biz_no, amount, status, "
        "attempts, created_at, updated_at) "
        "VALUES ('voucher', 'm', 'ACT1', '2088000000000001', '', 0, ?, 1, ?, 0, 1, 1)"
    )
    with sqlite3.connect(path) as db:
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            db.execute(insert, ("B2", "granted"))
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            db.execute(insert, ("B1", "failed"))  # biz numbers are unique too
        db.execute(insert, ("B3", "failed"))  # failed rows do not hold the slot


def test_pending_rows_of_a_previous_process_become_unknown(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"

    async def leave_pending(store: GrantStore) -> None:
        await store.reserve(KEY, 1, "B1", 1, 100.0, LEASE)

    run(path, leave_pending)  # close() marks it unknown; simulate a crash by reopening a pending row
    with sqlite3.connect(path) as db:
        db.execute("UPDATE grants SET status = 'pending', lease_until = 1e12")

    async def reopen(store: GrantStore) -> list[GrantRow]:
        return [row async for chunk in store.stream() for row in chunk]

    assert [r.status for r in run(path, reopen)] == ["unknown"]


def test_the_row_format_and_streaming_in_chunks(tmp_path: Path) -> None:
    async def scenario(store: GrantStore) -> list[list[GrantRow]]:
        for n in range(1203):
            key = ClaimKey("points", "alipay.user.alipaypoint.send", "JFB", f"2088{n:012d}", "2026-01-01")
            await store.reserve(key, 1, f"P{n}", 100, 100.0 + n, LEASE)
        return [chunk async for chunk in store.stream()]

    chunks = run(tmp_path / "g.sqlite3", scenario)
    assert [len(c) for c in chunks] == [500, 500, 203]
    row = chunks[0][0]
    assert (
        orjson.loads(row.to_json())
        == {
            "grant_id": 1,
            "kind": "points",
            "method": "alipay.user.alipaypoint.send",
            "campaign": "JFB",
            "biz_no": "P0",
            "user_id": "2088000000000000",
            "amount": 100,
            "status": "unknown",  # close() marked the pending rows: nothing works on them any more
            "platform_id": None,
            "code": None,
            "attempts": 0,
            "created_at": 100.0,
            "updated_at": 0.0,
        }
        or row.status == "pending"
    )


# The table as it was before WeChat coupons (kind without 'coupon').
OLD_SCHEMA = """
CREATE TABLE grants (
    grant_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('points', 'voucher', 'cash')),
    method TEXT NOT NULL, campaign TEXT NOT NULL, user_id TEXT NOT NULL, period TEXT NOT NULL,
    slot INTEGER NOT NULL, biz_no TEXT NOT NULL UNIQUE, amount INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'granted', 'failed', 'unknown')),
    platform_id TEXT, code TEXT, attempts INTEGER NOT NULL DEFAULT 0, lease_until REAL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE UNIQUE INDEX grants_per_user_slot
    ON grants (kind, campaign, user_id, period, slot) WHERE status != 'failed';
CREATE INDEX grants_updated_at ON grants (updated_at);
INSERT INTO grants VALUES (1, 'voucher', 'm', 'ACT1', '2088000000000001', '', 0, 'OLD1', 1, 'granted',
                           'V1', NULL, 1, NULL, 5.0, 6.0);
INSERT INTO grants VALUES (2, 'voucher', 'm', 'ACT1', '2088000000000002', '', 0, 'OLD2', 1, 'pending',
                           NULL, NULL, 1, 99.0, 5.0, 6.0);
DELETE FROM grants WHERE grant_id = 2;
"""
COUPON = ClaimKey("coupon", "wechat.coupon.send", "9856000", "oAbc0123456789012345678901", "")


def test_a_database_from_before_wechat_takes_coupons_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
    conn.close()

    async def scenario(store: GrantStore) -> tuple[list[GrantRow], Reservation]:
        coupon = await store.reserve(COUPON, 1, "1900000001X", 1, 100.0, LEASE)
        again = await store.reserve(KEY, 1, "B9", 1, 100.0, LEASE)  # the old grant still holds the slot
        assert again.kind is ReserveKind.DONE and again.row.biz_no == "OLD1"
        return [row async for chunk in store.stream() for row in chunk], coupon

    rows, coupon = run(path, scenario)
    assert coupon.kind is ReserveKind.NEW and coupon.row.kind == "coupon"
    assert coupon.row.grant_id == 3  # the deleted id 2 is not reused
    assert [(r.grant_id, r.biz_no, r.status) for r in rows] == [
        (1, "OLD1", "granted"),
        (3, "1900000001X", "pending"),
    ]
    with sqlite3.connect(path) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert "grants_before_coupons" not in tables
    run(path, lambda store: asyncio.sleep(0))  # opening it again changes nothing
