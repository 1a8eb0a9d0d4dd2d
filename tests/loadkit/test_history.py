"""Run history: SQLite round trip, listing, concurrent writers, and comparison with a baseline."""

from __future__ import annotations

import sqlite3
import threading

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


def test_compare_flags_the_figures_that_got_worse():
    base = summary(held=240.0, p99=300.0, error_rate=0.001)
    cur = summary(held=200.0, p99=301.0, error_rate=0.0)
    cur["latency_ms"]["p50"] = 60.0
    rows = {r["figure"]: r for r in history.compare(cur, base)}
    assert list(rows) == ["qps_held", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "error_rate"]
    qps = rows["qps_held"]
    assert (qps["baseline"], qps["current"], qps["delta"], qps["delta_pct"], qps["worse"]) == (
        240.0,
        200.0,
        -40.0,
        -16.67,
        True,
    )
    assert rows["latency_p50_ms"]["worse"] and rows["latency_p50_ms"]["delta_pct"] == 50.0
    assert not rows["latency_p95_ms"]["worse"] and rows["latency_p95_ms"]["delta"] == 0
    assert not rows["latency_p99_ms"]["worse"]  # +0.3% is within the 5% noise tolerance
    assert not rows["error_rate"]["worse"] and rows["error_rate"]["delta_pct"] == -100.0


def test_compare_zero_baseline_and_missing_figures():
    base = summary(error_rate=0.0)
    cur = summary(error_rate=0.002)
    cur["latency_ms"]["p99"] = None
    rows = {r["figure"]: r for r in history.compare(cur, base)}
    assert rows["error_rate"]["worse"] and rows["error_rate"]["delta_pct"] is None
    assert rows["latency_p99_ms"] == {
        "figure": "latency_p99_ms",
        "baseline": 310.0,
        "current": None,
        "delta": None,
        "delta_pct": None,
        "worse": False,
    }
    assert not any(r["worse"] for r in history.compare(base, base))


def test_none_means_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_id = history.record_run(None, summary(), None)
    assert (tmp_path / history.DB_NAME).is_file()
    assert history.list_runs(None)[0]["id"] == run_id
