"""Run history: one SQLite row per run, so a run can be compared with an earlier one (a baseline).

The key figures get their own columns (listing and filtering need no JSON parsing); the whole
summary is kept too, so any figure can be compared later. Several runs may finish at once (CI
jobs sharing a directory): each write is one short transaction and waits for the lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from loadkit.measure.summary import json_safe

DB_NAME = "loadkit-history.sqlite3"
LOCK_TIMEOUT_S = 30.0
TOLERANCE = 0.05  # relative change a comparison ignores as noise

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plan TEXT NOT NULL,
    plan_file TEXT,
    host TEXT,
    started_at TEXT,
    finished_at TEXT,
    verdict TEXT,
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
_LIST_COLUMNS = (
    "id, plan, plan_file, host, started_at, finished_at, verdict, exit_code, qps_target, qps_held, "
    "p50_ms, p95_ms, p99_ms, error_rate, requests, run_dir, recorded_at"
)

# (figure, how to read it from a summary, True when higher is better)
FIGURES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("qps_held", ("qps", "held"), True),
    ("latency_p50_ms", ("latency_ms", "p50"), False),
    ("latency_p95_ms", ("latency_ms", "p95"), False),
    ("latency_p99_ms", ("latency_ms", "p99"), False),
    ("error_rate", ("error_rate",), False),
)


class HistoryError(Exception):
    """The history file cannot be used (not a SQLite database, unreadable, ...)."""


def default_db_path(directory: str | Path | None = None) -> Path:
    return Path(directory if directory is not None else Path.cwd()) / DB_NAME


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
    except sqlite3.Error as exc:
        raise HistoryError(f"{path}: cannot use as a run history: {exc}") from None
    return conn


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


def compare(
    summary: Mapping[str, Any], baseline_summary: Mapping[str, Any], *, tolerance: float = TOLERANCE
) -> list[dict[str, Any]]:
    """Per key figure: baseline, current, delta, delta_pct and `worse` (moved the bad way by more
    than `tolerance` of the baseline; any increase from a zero baseline). Missing figures give
    None deltas and are never called worse."""
    out = []
    for figure, keys, higher_is_better in FIGURES:
        base, cur = _get(baseline_summary, keys), _get(summary, keys)
        delta = delta_pct = None
        worse = False
        if base is not None and cur is not None:
            delta = cur - base
            delta_pct = round(delta / base * 100, 2) if base else None
            bad = -delta if higher_is_better else delta
            worse = bad > tolerance * abs(base) if base else bad > 0
            delta = round(delta, 6)
        out.append(
            {
                "figure": figure,
                "baseline": base,
                "current": cur,
                "delta": delta,
                "delta_pct": delta_pct,
                "worse": worse,
            }
        )
    return out


def _get(doc: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    value: Any = doc
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value
