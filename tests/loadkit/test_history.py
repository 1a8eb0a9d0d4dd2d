"""Run history: SQLite round trip, listing, concurrent writers, migration, baselines and trends."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from loadkit import history


def summary(name="jifenbao", verdict="pass", held=238.9, p99=310.0, error_rate=0.0004):
    return {
        "schema": 1,
        "verdict": verdict,
        "exit_code": {"pass": 0, "fail": 1, "inconclusive": 2}[verdict],
        "plan": {"name": name, "file": "plans/j.yaml", "host": "http://127.0.0.1:8080", "raw": {}},
        "started_at": "2026-11-24T08:00:00+00:00",
        "finished_at": "2026-11-24T08:10:00+00:00",
        "qps": {"target": 240.0, "held": held},
        "latency_ms": {"p50": 40.0, "p95": 120.0, "p99": p99, "max": 900.0},
        "error_rate": error_rate,
        "requests": {"count": 143340},
        "checks": [],
    }


def test_round_trip(tmp_path):
    db = tmp_path / "h" / history.DB_NAME
    first = history.record_run(db, summary(), tmp_path / "run1")
    second = history.record_run(db, summary(verdict="fail", held=150.0), tmp_path / "run2")
    assert second > first
    run = history.get_run(db, first)
    assert run is not None
    assert run["summary"] == summary()
    assert run["plan"] == "jifenbao" and run["verdict"] == "pass" and run["exit_code"] == 0
    assert run["qps_held"] == 238.9 and run["p99_ms"] == 310.0 and run["requests"] == 143340
    assert run["run_dir"] == str(tmp_path / "run1")
    assert history.get_run(db, 9999) is None


def test_list_newest_first_with_plan_filter_and_limit(tmp_path):
    db = tmp_path / history.DB_NAME
    for i in range(5):
        history.record_run(db, summary(name="a" if i % 2 else "b", held=float(i)), None)
    runs = history.list_runs(db)
    assert [r["qps_held"] for r in runs] == [4.0, 3.0, 2.0, 1.0, 0.0]
    assert "summary" not in runs[0]
    assert [r["qps_held"] for r in history.list_runs(db, plan="a")] == [3.0, 1.0]
    assert len(history.list_runs(db, limit=2)) == 2


def test_a_directory_means_the_default_file_in_it(tmp_path):
    run_id = history.record_run(tmp_path, summary(), None)
    assert (tmp_path / history.DB_NAME).is_file()
    assert history.get_run(tmp_path, run_id)["plan"] == "jifenbao"
    assert history.default_db_path(tmp_path) == tmp_path / history.DB_NAME


def test_no_history_yet(tmp_path):
    assert history.list_runs(tmp_path / "none.sqlite3") == []
    assert history.get_run(tmp_path / "none.sqlite3", 1) is None
    assert not (tmp_path / "none.sqlite3").exists()


def test_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.sqlite3"
    bad.write_text("this is not sqlite " * 100)
    with pytest.raises(history.HistoryError, match="cannot use as a run history"):
        history.record_run(bad, summary(), None)
    with pytest.raises(history.HistoryError):
        history.list_runs(bad)


def test_concurrent_writers_all_land(tmp_path):
    db = tmp_path / history.DB_NAME
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(5):
                history.record_run(db, summary(name=f"w{n}", held=float(i)), None)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 20


def test_the_ending_is_recorded_and_listed(tmp_path):
    db = tmp_path / history.DB_NAME
    history.record_run(db, {**summary(verdict="inconclusive"), "ending": {"how": "interrupted"}}, None)
    history.record_run(db, summary(), None)  # a summary without `ending` (schema 1)
    assert [r["ending"] for r in history.list_runs(db)] == [None, "interrupted"]


OLD_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, plan TEXT NOT NULL, plan_file TEXT, host TEXT, started_at TEXT,
    finished_at TEXT, verdict TEXT, exit_code INTEGER, qps_target REAL, qps_held REAL, p50_ms REAL,
    p95_ms REAL, p99_ms REAL, error_rate REAL, requests INTEGER, run_dir TEXT, recorded_at TEXT NOT NULL,
    summary TEXT NOT NULL
);
"""


def test_an_older_history_gets_the_ending_column_filled_from_its_summaries(tmp_path):
    db = tmp_path / history.DB_NAME
    with sqlite3.connect(db) as conn:
        conn.executescript(OLD_SCHEMA)
        conn.execute(
            "INSERT INTO runs (plan, verdict, recorded_at, summary) VALUES (?, ?, ?, ?)",
            (
                "jifenbao",
                "inconclusive",
                "2026-11-24T08:00:00+00:00",
                json.dumps({"ending": {"how": "stopped"}}),
            ),
        )
    assert [r["ending"] for r in history.list_runs(db)] == ["stopped"]
    history.record_run(db, {**summary(), "ending": {"how": "completed"}}, None)
    assert [r["ending"] for r in history.list_runs(db)] == ["completed", "stopped"]


def test_plans_last_pass_and_trend(tmp_path):
    db = tmp_path / history.DB_NAME
    assert history.plans(db) == [] and history.last_pass(db, "a") is None and history.trend(db, "a") == []
    for i, (name, verdict) in enumerate([("a", "pass"), ("b", "pass"), ("a", "fail"), ("a", "pass")]):
        doc = summary(name=name, verdict=verdict, held=float(i), p99=100.0 + i)
        doc["started_at"] = f"2026-11-24T08:0{i}:00+00:00"
        history.record_run(db, doc, tmp_path / f"run{i}")
    assert history.plans(db) == ["a", "b"]
    found = history.last_pass(db, "a")
    assert (
        found is not None
        and found["run_dir"] == str(tmp_path / "run3")
        and found["summary"]["qps"]["held"] == 3
    )
    interrupted = {**summary(name="a", verdict="pass"), "ending": {"how": "interrupted"}}
    interrupted["started_at"] = "2026-11-24T09:00:00+00:00"
    history.record_run(db, interrupted, None)  # cannot really pass, but never a baseline anyway
    assert history.last_pass(db, "a")["run_dir"] == str(tmp_path / "run3")
    points = history.trend(db, "a", until="2026-11-24T08:02:00+00:00")
    assert [(p["qps_held"], p["p99_ms"], p["verdict"]) for p in points] == [
        (0.0, 100.0, "pass"),
        (2.0, 102.0, "fail"),
    ]
    assert len(history.trend(db, "a", limit=2)) == 2


def test_db_for_a_report_directory(tmp_path):
    assert history.db_for(None, tmp_path / "reports" / "run") == tmp_path / "reports" / history.DB_NAME
    assert history.db_for("x.sqlite3", tmp_path / "run") == Path("x.sqlite3")


def test_none_means_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_id = history.record_run(None, summary(), None)
    assert (tmp_path / history.DB_NAME).is_file()
    assert history.list_runs(None)[0]["id"] == run_id
