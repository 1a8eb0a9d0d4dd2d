"""The service's own records of grants, in SQLite (WAL), written by one thread.

A grant row is written `pending`, with its biz number, BEFORE the platform is called, then
completed: `granted` (with the platform's id), `failed` (with the code; the platform certainly did
nothing), or `unknown` (an attempt may have taken effect but no answer came). An `unknown` or
abandoned `pending` row is never re-issued under a new number: the user's next claim resumes it,
same biz number, and the platform's idempotency turns a repeat into a replay.

Per-user limits are a UNIQUE index: a user has at most `limit` live (not `failed`) rows per
campaign and period, one per `slot`. `reserve()` picks the slot and inserts in one transaction;
two concurrent taps cannot both get a row (and so cannot both reach the platform) even if the
code around it were wrong, because the index refuses the second.

Why one writer thread (a single-thread executor) rather than aiosqlite: each operation here is one
whole transaction (a read and a write under BEGIN IMMEDIATE) run as one function in the thread,
off the event loop; aiosqlite would make that a chain of awaits with the write lock held across
them. Reads for /admin/grants use their own connection and thread (WAL lets them run beside the
writer), in chunks, so a large table is never built in memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import orjson

__all__ = ["ClaimKey", "GrantRow", "GrantStore", "Reservation", "ReserveKind", "StoreError"]

T = TypeVar("T")
KINDS = ("points", "voucher", "cash", "coupon")
STATUSES = ("pending", "granted", "failed", "unknown")
STREAM_CHUNK = 500

TABLE = """
CREATE TABLE IF NOT EXISTS grants (
    grant_id    INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused, even after a released reservation
    kind        TEXT    NOT NULL CHECK (kind IN ('points', 'voucher', 'cash', 'coupon')),
    method      TEXT    NOT NULL,
    campaign    TEXT    NOT NULL,                    -- budget_code | activity_id | crowd_no | stock_id
    user_id     TEXT    NOT NULL,                    -- Alipay user id, or WeChat openid
    period      TEXT    NOT NULL,                    -- China-time day 'YYYY-MM-DD', or '' for lifetime
    slot        INTEGER NOT NULL,                    -- 0 .. per-user limit - 1
    biz_no      TEXT    NOT NULL UNIQUE,             -- out_biz_no / partner_biz_no / out_request_no
    amount      INTEGER NOT NULL,                    -- points, fen, or 1 voucher / coupon
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'granted', 'failed', 'unknown')),
    platform_id TEXT,
    code        TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_until REAL,                                -- a pending row's claim holds it until then
    created_at  REAL    NOT NULL,
    updated_at  REAL    NOT NULL
)"""
INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS grants_per_user_slot "
    "ON grants (kind, campaign, user_id, period, slot) WHERE status != 'failed'",
    "CREATE INDEX IF NOT EXISTS grants_updated_at ON grants (updated_at)",
)
# A database made before WeChat coupons has a CHECK on kind without 'coupon'; SQLite cannot alter
# a CHECK, so the table is rebuilt with the same rows and grant ids, in one transaction.
_REBUILD = (
    "DROP INDEX IF EXISTS grants_per_user_slot",
    "DROP INDEX IF EXISTS grants_updated_at",
    "ALTER TABLE grants RENAME TO grants_before_coupons",
    TABLE,
    "INSERT INTO grants SELECT * FROM grants_before_coupons",
    # the AUTOINCREMENT counter too: a released reservation's id is never reused
    "DELETE FROM sqlite_sequence WHERE name = 'grants'",
    "INSERT INTO sqlite_sequence (name, seq) "
    "SELECT 'grants', seq FROM sqlite_sequence WHERE name = 'grants_before_coupons'",
    "DROP TABLE grants_before_coupons",
    *INDEXES,
)

# Rows left pending when no request is working on them any more: their outcome is unknown.
_ABANDON_PENDING = (
    "UPDATE grants SET status = 'unknown', lease_until = NULL, updated_at = ? WHERE status = 'pending'"
)
_COLUMNS = (
    "grant_id, kind, method, campaign, biz_no, user_id, amount, status, platform_id, code, attempts, "
    "created_at, updated_at"
)


class StoreError(Exception):
    """The database cannot be opened or used."""


@dataclass(frozen=True, slots=True)
class GrantRow:
    """One grant as /admin/grants lists it (`to_json` is the one serializer)."""

    grant_id: int
    kind: str  # points | voucher | cash | coupon
    method: str  # the platform method name (Alipay's, or wechat.coupon.send)
    campaign: str  # budget_code | activity_id | crowd_no | stock_id
    biz_no: str  # partner_biz_no | out_biz_no | out_request_no
    user_id: str  # the Alipay user id, or the WeChat openid
    amount: int  # points, fen, or 1 for a voucher or coupon
    status: str  # pending | granted | failed | unknown
    platform_id: str | None  # record_id | voucher_id | the cash biz_no | coupon_id
    code: str | None  # why it failed (sub_code or the outcome), else None
    attempts: int  # platform calls sent for it
    created_at: float  # epoch seconds
    updated_at: float

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "grant_id": self.grant_id,
                "kind": self.kind,
                "method": self.method,
                "campaign": self.campaign,
                "biz_no": self.biz_no,
                "user_id": self.user_id,
                "amount": self.amount,
                "status": self.status,
                "platform_id": self.platform_id,
                "code": self.code,
                "attempts": self.attempts,
                "created_at": round(self.created_at, 3),
                "updated_at": round(self.updated_at, 3),
            }
        )


@dataclass(frozen=True, slots=True)
class ClaimKey:
    """What a per-user limit counts over."""

    kind: str
    method: str
    campaign: str
    user_id: str
    period: str


class ReserveKind(Enum):
    NEW = "new"  # a fresh pending row: call the platform with its biz number
    RESUMED = "resumed"  # an unknown (or abandoned pending) row: call again with ITS biz number
    DONE = "done"  # the limit is used up by granted rows: answer without the platform
    BUSY = "busy"  # another request holds this user's pending row right now


@dataclass(frozen=True, slots=True)
class Reservation:
    kind: ReserveKind
    row: GrantRow  # the new, resumed, busy, or latest granted row


class GrantStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grants-writer")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grants-reader")
        self._conn: sqlite3.Connection | None = None

    async def open(self, now: float) -> int:
        """Create the schema; rows left `pending` by a previous process become `unknown` (nobody
        is working on them any more). Returns how many were."""
        try:
            return await self._run(self._open, now)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}") from None

    def _open(self, now: float) -> int:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
        conn.execute("PRAGMA busy_timeout=5000")
        with _transaction(conn):
            conn.execute(TABLE)
            for index in INDEXES:
                conn.execute(index)
            (table,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'grants'")
            if "'coupon'" not in table[0]:
                for statement in _REBUILD:
                    conn.execute(statement)
        self._conn = conn
        cur = conn.execute(_ABANDON_PENDING, (now,))
        return cur.rowcount

    async def close(self, now: float) -> int:
        """Mark rows still `pending` as `unknown` (their requests were cut), close. Returns how many."""
        try:
            return await self._run(self._close, now)
        finally:
            self._writer.shutdown(wait=True)
            self._reader.shutdown(wait=True)

    def _close(self, now: float) -> int:
        if self._conn is None:
            return 0
        cur = self._conn.execute(_ABANDON_PENDING, (now,))
        self._conn.close()
        self._conn = None
        return cur.rowcount

    async def reserve(
        self, key: ClaimKey, limit: int, biz_no: str, amount: int, now: float, lease_s: float
    ) -> Reservation:
        """Resume the user's unresolved row, report the limit used up, or insert a pending row."""
        return await self._run(self._reserve, key, limit, biz_no, amount, now, lease_s)

    def _reserve(
        self, key: ClaimKey, limit: int, biz_no: str, amount: int, now: float, lease_s: float
    ) -> Reservation:
        conn = self._db()
        with _transaction(conn):
            live = conn.execute(
                f"SELECT {_COLUMNS}, slot, lease_until FROM grants WHERE kind = ? AND campaign = ? "
                "AND user_id = ? AND period = ? AND status != 'failed' ORDER BY slot",
                (key.kind, key.campaign, key.user_id, key.period),
            ).fetchall()
            for *cols, _slot, lease in live:
                row = GrantRow(*cols)
                if row.status == "pending" and lease is not None and lease > now:
                    return Reservation(ReserveKind.BUSY, row)
                if row.status in ("pending", "unknown"):
                    conn.execute(
                        "UPDATE grants SET status = 'pending', lease_until = ?, updated_at = ? "
                        "WHERE grant_id = ?",
                        (now + lease_s, now, row.grant_id),
                    )
                    return Reservation(
                        ReserveKind.RESUMED, dataclasses.replace(row, status="pending", updated_at=now)
                    )
            if len(live) >= limit:
                latest = max((GrantRow(*cols) for *cols, _s, _l in live), key=lambda r: r.grant_id)
                return Reservation(ReserveKind.DONE, latest)
            used = {slot for *_cols, slot, _l in live}
            slot = next(s for s in range(limit) if s not in used)
            cur = conn.execute(
                "INSERT INTO grants (kind, method, campaign, user_id, period, slot, biz_no, amount, status, "
                "attempts, lease_until, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                (
                    key.kind,
                    key.method,
                    key.campaign,
                    key.user_id,
                    key.period,
                    slot,
                    biz_no,
                    amount,
                    now + lease_s,
                    now,
                    now,
                ),
            )
            row = GrantRow(
                int(cur.lastrowid or 0), key.kind, key.method, key.campaign, biz_no, key.user_id, amount,
                "pending", None, None, 0, now, now,
            )  # fmt: skip
            return Reservation(ReserveKind.NEW, row)

    async def finish(
        self,
        grant_id: int,
        status: str,
        now: float,
        *,
        attempts: int,
        platform_id: str | None = None,
        code: str | None = None,
        amount: int | None = None,
    ) -> GrantRow:
        """Complete a row (`granted`, `failed` or `unknown`), adding this request's attempts."""
        if status not in ("granted", "failed", "unknown"):
            raise ValueError(f"cannot finish a grant as {status!r}")
        return await self._run(self._finish, grant_id, status, now, attempts, platform_id, code, amount)

    def _finish(
        self,
        grant_id: int,
        status: str,
        now: float,
        attempts: int,
        platform_id: str | None,
        code: str | None,
        amount: int | None,
    ) -> GrantRow:
        conn = self._db()
        with _transaction(conn):
            conn.execute(
                "UPDATE grants SET status = ?, platform_id = ?, code = ?, attempts = attempts + ?, "
                "amount = COALESCE(?, amount), lease_until = NULL, updated_at = ? WHERE grant_id = ?",
                (status, platform_id, code, attempts, amount, now, grant_id),
            )
            found = conn.execute(f"SELECT {_COLUMNS} FROM grants WHERE grant_id = ?", (grant_id,)).fetchone()
        if found is None:
            raise StoreError(f"grant {grant_id} does not exist")
        return GrantRow(*found)

    async def release(self, grant_id: int, now: float, *, resumed: bool) -> None:
        """Give back a reservation that never reached the platform: a new row is deleted (it
        never was a grant), a resumed one goes back to `unknown`."""
        await self._run(self._release, grant_id, now, resumed)

    def _release(self, grant_id: int, now: float, resumed: bool) -> None:
        conn = self._db()
        if resumed:
            conn.execute(
                "UPDATE grants SET status = 'unknown', lease_until = NULL, updated_at = ? WHERE grant_id = ?",
                (now, grant_id),
            )
        else:
            conn.execute(
                "DELETE FROM grants WHERE grant_id = ? AND status = 'pending' AND attempts = 0", (grant_id,)
            )

    async def rebind(self, grant_id: int, biz_no: str, now: float) -> None:
        """Overwrite a row's biz number. Only the planted bug `new-biz-no-on-retry` does this."""
        await self._run(self._rebind, grant_id, biz_no, now)

    def _rebind(self, grant_id: int, biz_no: str, now: float) -> None:
        self._db().execute(
            "UPDATE grants SET biz_no = ?, updated_at = ? WHERE grant_id = ?", (biz_no, now, grant_id)
        )

    async def stream(self, since: float | None = None) -> AsyncIterator[list[GrantRow]]:
        """Every row (updated at or after `since`, when given) by grant_id, in chunks, read on
        the reader thread from one snapshot."""
        loop = asyncio.get_running_loop()
        cursor: sqlite3.Cursor = await loop.run_in_executor(self._reader, self._open_cursor, since)
        try:
            while True:
                chunk = await loop.run_in_executor(self._reader, cursor.fetchmany, STREAM_CHUNK)
                if not chunk:
                    return
                yield [GrantRow(*cols) for cols in chunk]
        finally:
            await loop.run_in_executor(self._reader, _close_cursor, cursor)

    def _open_cursor(self, since: float | None) -> sqlite3.Cursor:
        conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
        if since is None:
            return conn.execute(f"SELECT {_COLUMNS} FROM grants ORDER BY grant_id")
        return conn.execute(
            f"SELECT {_COLUMNS} FROM grants WHERE updated_at >= ? ORDER BY grant_id", (since,)
        )

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the grant store is not open")
        return self._conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the write lock from the first read on."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _close_cursor(cursor: sqlite3.Cursor) -> None:
    conn = cursor.connection
    cursor.close()
    conn.close()
