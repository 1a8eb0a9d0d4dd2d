"""Every way a run can end is told truthfully: Ctrl-C, an abort, a refused --run-time, a Locust
process killed mid-run. Real `loadkit run` processes against servers of known behaviour."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from .conftest import HERE, plain_plan, write_plan

pytestmark = pytest.mark.e2e

LOCUST_FILES = f"{HERE.parents[2] / 'loadkit/engine/locust_entry.py'},{HERE / 'plain_locustfile.py'}"


def long_plan(tmp_path: Path, hold: str = "20s") -> Path:
    """Warm-up 2 s, then a gate longer than any of these tests lets it run."""
    plan = plain_plan(
        [
            {"name": "warmup", "duration": "2s", "qps": 40, "users": 10},
            {"name": "hold", "duration": hold, "qps": 40, "users": 10, "gate": True},
        ],
        {"qps_min": 35, "latency_ms": {"p99": 500}, "error_rate_max": 0.01},
    )
    return write_plan(tmp_path, plan)


def tracebacks(output: str) -> list[str]:
    """The tracebacks in a run's output, but Locust's own shutdown race (its CSV writer may write
    once more after Locust closed the files: `stats_writer`, a ValueError on a closed file)."""
    parts = output.split("Traceback (most recent call last):")[1:]
    return [p[:1500] for p in parts if "stats_writer" not in p.split("\n\n", 1)[0]]


def assert_arrivals_add_up(arrivals: dict) -> None:
    assert arrivals["scheduled"] == arrivals["sent"] + arrivals["dropped"] + arrivals["unsent"], arrivals
    assert arrivals["sent"] == arrivals["on_time"] + arrivals["late"], arrivals


def test_ctrl_c_writes_a_partial_report_that_says_so(tmp_path, target, start_loadkit):
    server = target("fast")
    run = start_loadkit(str(long_plan(tmp_path)), "--headless", "--host", server.url)
    run.wait_for_gate()
    run.proc.send_signal(signal.SIGINT)
    code, output = run.finish()
    assert code == 2, output[-3000:]  # it held its budgets in the part that ran: inconclusive
    summary = run.summary
    ending = summary["ending"]
    assert ending["how"] == "interrupted" and ending["at"], ending
    completed = next(c for c in summary["checks"] if c["name"] == "completed")
    assert not completed["ok"] and "The run was interrupted at " in completed["reason"]
    assert completed["reason"] in summary["reasons"]
    assert_arrivals_add_up(summary["arrivals"])
    window = summary["window"]
    start, end = datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])
    assert start <= end <= datetime.fromisoformat(ending["at"]), window
    assert 0 < window["seconds"] < 20
    assert "ended early: interrupted at" in output
    assert tracebacks(output) == [] and "KeyboardInterrupt" not in output
    # the history says so too: `loadkit history` lists it as interrupted
    db = str(tmp_path / "loadkit-history.sqlite3")
    listed = subprocess.run(
        [sys.executable, "-m", "loadkit", "history", "--db", db, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [(r["ending"], r["verdict"]) for r in runs] == [("interrupted", "inconclusive")]


def test_ctrl_c_still_fails_a_budget_that_failed_in_the_part_that_ran(tmp_path, target, start_loadkit):
    server = target("capped")  # serves 150 requests/s at most
    plan = plain_plan(
        [
            {"name": "warmup", "duration": "2s", "qps": 200, "users": 60},
            {"name": "hold", "duration": "20s", "qps": 200, "users": 60, "gate": True},
        ],
        {"qps_min": 190, "latency_ms": {"p99": 5000}},
    )
    run = start_loadkit(str(write_plan(tmp_path, plan)), "--headless", "--host", server.url)
    run.wait_for_gate()
    run.proc.send_signal(signal.SIGINT)
    code, output = run.finish()
    assert code == 1, output[-3000:]
    summary = run.summary
    assert summary["ending"]["how"] == "interrupted" and summary["verdict"] == "fail"
    assert any(c["name"] == "qps_min" and not c["ok"] for c in summary["checks"])
    assert any(r.startswith("The run was interrupted at ") for r in summary["reasons"])


def test_an_abort_at_a_100_percent_error_rate_says_what_happened(tmp_path, target, run_loadkit):
    server = target("error")
    plan = plain_plan(
        [
            {"name": "warmup", "duration": "8s", "qps": 40, "users": 10},
            {"name": "hold", "duration": "4s", "qps": 40, "users": 10, "gate": True},
        ],
        {"qps_min": 35, "error_rate_max": 0.01},
        safety={"abort_on": {"error_rate": 0.5, "for": "2s"}},
    )
    result = run_loadkit("run", str(write_plan(tmp_path, plan)), "--headless", "--host", server.url)
    assert result.code == 1, result.output[-3000:]
    summary = result.summary
    assert summary["ending"]["how"] == "aborted"
    assert summary["qps"] == {"target": 40.0, "held": None, "arrivals_held": None}
    assert summary["window"]["seconds"] == 0 and summary["window"]["start"] is None
    line = next(x for x in result.output.splitlines() if x.startswith(f"  plan {summary['plan']['name']}:"))
    # the closing line agrees with the checks: all of it failed, 40 were planned, no gate ran
    assert "errors 100.00%" in line and "planned 40 arrivals/s" in line and "never began" in line, line
    assert "errors 0.00%" not in result.output.split("loadkit verdict:")[1]
    aborts = [r for r in summary["reasons"] if "error rate 100.0%" in r]
    assert len(aborts) == 1, summary["reasons"]  # the abort is told once


def test_run_time_with_a_plan_is_refused_not_ignored(tmp_path, target, run_loadkit):
    server = target("fast")
    plan = str(long_plan(tmp_path))
    result = run_loadkit("run", plan, "--headless", "--host", server.url, "--", "--run-time", "20s")
    assert result.code == 3, result.output[-3000:]
    assert "--run-time does not apply" in result.output and "stages set the run's length" in result.output
    assert "Traceback" not in result.output
    locust = [sys.executable, "-m", "locust", "-f", LOCUST_FILES, "--plan", plan, "--host", server.url]
    plain = subprocess.run(  # plain Locust with loadkit's plugin
        [*locust, "--headless", "--run-time", "20s", "--report-dir", str(tmp_path / "plain")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = plain.stdout + plain.stderr
    assert plain.returncode == 3, output[-3000:]
    assert "--run-time does not apply with --plan" in output and "Traceback" not in output
    assert server.count() == 0


def test_locust_killed_mid_run_still_gets_its_reports(tmp_path, target, start_loadkit):
    server = target("fast")
    run = start_loadkit(str(long_plan(tmp_path)), "--headless", "--host", server.url, "--processes", "2")
    run.wait_for_gate()
    time.sleep(8.0)  # a snapshot (every 5 s) with the workers' reports (every 3 s) of the gate
    locust = run.locust()
    workers = locust.children()
    assert len(workers) == 2, workers
    locust.kill()
    code, output = run.finish()
    assert code == 2, output[-3000:]
    summary = run.summary
    assert summary["verdict"] == "inconclusive" and summary["ending"]["how"] == "generator_died"
    assert "SIGKILL" in summary["ending"]["detail"]
    assert any("The load generator died" in r for r in summary["reasons"]), summary["reasons"]
    assert summary["requests"]["count"] > 0 and summary["generator"]["workers"] == 2  # what it knew
    for name in ("report.html", "junit.xml", "summary.md"):
        assert (run.report_dir / name).is_file(), name
    assert not (run.report_dir / ".live.json").exists()
    assert 'type="inconclusive"' in (run.report_dir / "junit.xml").read_text()
    # the workers Locust forked did not outlive it
    psutil.wait_procs(workers, timeout=10)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
