"""Run history: one SQLite row per run, so a run can be compared with an earlier one (a baseline)
and a plan's trend shown over its last runs.

The key figures get their own columns (listing and filtering need no JSON parsing); the whole
summary is kept too, so any figure can be compared later (`measure/compare.py`). Several runs may
finish at once (CI jobs sharing a directory): each write is one short transaction and waits for
the lock. A history written by an older loadkit gets the newer columns on first use.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

import orjson

from loadkit.measure.summary import json_safe

DB_NAME = "loadkit-history.sqlite3"
LOCK_TIMEOUT_S = 30.0
TREND_RUNS = 10  # runs of a plan shown in a report's trend

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plan TEXT NOT NULL,
    plan_file TEXT,
    host TEXT,
    started_at TEXT,
    finished_at TEXT,
    verdict TEXT,
    ending TEXT,
    exit_code INTEGER,
    qps_target REAL,
    qps_held REAL,
    p50_ms REAL,
    p95_ms REAL,
    p99_ms REAL,
    error_rate REAL,
    requests INTEGER,
    run_dir TEXT,
    recorded_at TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_plan ON runs (plan, id);
"""
# columns added after the first release: (name, type, how to fill it from the stored summary)
_ADDED_COLUMNS = (("ending", "TEXT", "$.ending.how"),)
_LIST_COLUMNS = (
    "id, plan, plan_file, host, started_at, finished_at, verdict, ending, exit_code, qps_target, qps_held, "
    "p50_ms, p95_ms, p99_ms, error_rate, requests, run_dir, recorded_at"
)


class TrendPoint(TypedDict):
    """One earlier run of a plan, as a report's trend shows it."""

    id: int
    started_at: str | None
    verdict: str | None
    ending: str | None  # completed, interrupted, ... (None for runs recorded before it existed)
    qps_held: float | None
    p99_ms: float | None
    run_dir: str | None


class HistoryError(Exception):
    """The history file cannot be used (not a SQLite database, unreadable, ...)."""


def default_db_path(directory: str | Path | None = None) -> Path:
    return Path(directory if directory is not None else Path.cwd()) / DB_NAME


def db_for(history_db: str | Path | None, report_dir: Path) -> Path:
    """The history a run is recorded in: `history_db` when given, else the default file beside
    its report directory (reports/loadkit-history.sqlite3 for reports/<plan>-<time>/)."""
    return Path(history_db) if history_db else report_dir.parent / DB_NAME


def _resolve(db_path: str | Path | None) -> Path:
    """None: the default file in the current directory; a directory: the default file in it."""
    if db_path is None:
        return default_db_path()
    path = Path(db_path)
    return path / DB_NAME if path.is_dir() else path


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S)
        conn.row_factory = sqlite3.Row
        conn.executescript(_SCHEMA)
        _migrate(conn)
    except sqlite3.Error as exc:
        raise HistoryError(f"{path}: cannot use as a run history: {exc}") from None
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Add the columns an older history lacks, filled from each run's stored summary."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    for name, kind, path in _ADDED_COLUMNS:
        if name in have:
            continue
        try:
            with conn:
                conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
                conn.execute(f"UPDATE runs SET {name} = json_extract(summary, ?)", (path,))
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):  # another process migrated it first
                raise


def record_run(db_path: str | Path | None, summary: Mapping[str, Any], run_dir: str | Path | None) -> int:
    """Add one run; returns its id. Creates the file, its folder and the schema on first use."""
    path = _resolve(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {
        "plan": str((summary.get("plan") or {}).get("name") or "unnamed"),
        "plan_file": (summary.get("plan") or {}).get("file"),
        "host": (summary.get("plan") or {}).get("host"),
        "started_at": summary.get("started_at"),
        "finished_at": summary.get("finished_at"),
        "verdict": summary.get("verdict"),
        "ending": (summary.get("ending") or {}).get("how"),
        "exit_code": summary.get("exit_code"),
        "qps_target": _get(summary, ("qps", "target")),
        "qps_held": _get(summary, ("qps", "held")),
        "p50_ms": _get(summary, ("latency_ms", "p50")),
        "p95_ms": _get(summary, ("latency_ms", "p95")),
        "p99_ms": _get(summary, ("latency_ms", "p99")),
        "error_rate": _get(summary, ("error_rate",)),
        "requests": _get(summary, ("requests", "count")),
        "run_dir": str(run_dir) if run_dir is not None else None,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "summary": orjson.dumps(json_safe(summary)).decode(),
    }
    columns = ", ".join(row)
    marks = ", ".join(f":{k}" for k in row)
    with closing(_connect(path)) as conn:
        try:
            with conn:
                cursor = conn.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", row)
        except sqlite3.Error as exc:
            raise HistoryError(f"{path}: cannot record the run: {exc}") from None
        return int(cursor.lastrowid or 0)


def list_runs(db_path: str | Path | None, plan: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs first (key figures, no full summary); [] when there is no history yet."""
    path = _resolve(db_path)
    if not path.is_file():
        return []
    query = f"SELECT {_LIST_COLUMNS} FROM runs"
    params: tuple[Any, ...] = ()
    if plan is not None:
        query += " WHERE plan = ?"
        params = (plan,)
    query += " ORDER BY id DESC LIMIT ?"
    with closing(_connect(path)) as conn:
        try:
            return [dict(r) for r in conn.execute(query, (*params, max(0, int(limit))))]
        except sqlite3.Error as exc:
            raise HistoryError(f"{path}: cannot read the run history: {exc}") from None


def get_run(db_path: str | Path | None, run_id: int) -> dict[str, Any] | None:
    """One run with its full summary under "summary"; None if there is no such run."""
    path = _resolve(db_path)
    if not path.is_file():
        return None
    with closing(_connect(path)) as conn:
        try:
            row = conn.execute(
                f"SELECT {_LIST_COLUMNS}, summary FROM runs WHERE id = ?", (int(run_id),)
            ).fetchone()
        except sqlite3.Error as exc:
            raise HistoryError(f"{path}: cannot read the run history: {exc}") from None
    if row is None:
        return None
    run = dict(row)
    run["summary"] = orjson.loads(run["summary"])
    return run


def plans(db_path: str | Path | None) -> list[str]:
    """The plans the history has runs of, by name."""
    path = _resolve(db_path)
    if not path.is_file():
        return []
    with closing(_connect(path)) as conn:
        try:
            return [row[0] for row in conn.execute("SELECT DISTINCT plan FROM runs ORDER BY plan")]
        except sqlite3.Error as exc:
            raise HistoryError(f"{path}: cannot read the run history: {exc}") from None


def last_pass(db_path: str | Path | None, plan: str) -> dict[str, Any] | None:
    """The newest passing run of `plan` that ran its whole plan, with its summary; None if none."""
    path = _resolve(db_path)
    if not path.is_file():
        return None
    query = (
        "SELECT id FROM runs WHERE plan = ? AND verdict = 'pass' "
        "AND (ending IS NULL OR ending = 'completed') ORDER BY id DESC LIMIT 1"
    )
    with closing(_connect(path)) as conn:
        try:
            row = conn.execute(query, (plan,)).fetchone()
        except sqlite3.Error as exc:
            raise HistoryError(f"{path}: cannot read the run history: {exc}") from None
    return get_run(path, int(row[0])) if row is not None else None


def trend(
    db_path: str | Path | None, plan: str, *, until: str | None = None, limit: int = TREND_RUNS
) -> list[TrendPoint]:
    """The last `limit` runs of `plan` that started no later than `until` (ISO time), oldest
    first: what a report shows as the plan's trend. [] without a history."""
    path = _resolve(db_path)
    if not path.is_file():
        return []
    query = "SELECT id, started_at, verdict, ending, qps_held, p99_ms, run_dir FROM runs WHERE plan = ?"
    params: list[Any] = [plan]
    if until is not None:
        query += " AND started_at <= ?"
        params.append(until)
    query += " ORDER BY id DESC LIMIT ?"
    params.append(max(0, int(limit)))
    with closing(_connect(path)) as conn:
        try:
            rows = [dict(r) for r in conn.execute(query, params)]
        except sqlite3.Error as exc:
            raise HistoryError(f"{path}: cannot read the run history: {exc}") from None
    return [TrendPoint(**row) for row in reversed(rows)]  # type: ignore[typeddict-item]


def _get(doc: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    value: Any = doc
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value
