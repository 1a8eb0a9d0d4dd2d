"""The three-tier rehearsal end to end: Locust users -> the campaign service (started by loadkit
from the plan) -> the mock platform, judged on the service; no process outlives a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.loadkit.e2e.conftest import run_loadkit, write_plan  # noqa: F401  (fixture)
from tests.summary_schema import schema_errors

from .conftest import processes_of, rehearsal_plan

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


def run(run_loadkit, tmp_path, plan, timeout=120):  # noqa: F811
    result = run_loadkit("run", str(write_plan(tmp_path, plan)), "--with-mock", "--headless", timeout=timeout)
    assert (result.report_dir / "summary.json").is_file(), result.output
    assert not processes_of(result.report_dir), result.output
    assert schema_errors(result.summary) == [], result.output
    return result


def test_clean_three_tier_run_passes(tmp_path, run_loadkit):  # noqa: F811
    result = run(run_loadkit, tmp_path, rehearsal_plan("clean", hold_s=5, qps=15))
    summary = result.summary
    assert result.code == 0, result.output
    assert summary["verdict"] == "pass", result.output
    recon = summary["reconciliation"]
    assert recon["mode"] == "three-way" and recon["ok"], recon
    assert recon["told"] > 50 and recon["told"] == recon["records"] == recon["effects"], recon
    assert all(recon[k]["count"] == 0 for k in ("phantom", "orphan", "paid_twice", "over_limit")), recon
    assert summary["audit"]["ok"], summary["audit"]
    service = summary["service"]
    assert service["ok"] and service["exit_code"] is None and service["ready_s"] > 0, service
    assert summary["plan"]["host"].startswith("http://127.0.0.1:")  # the service, not the mock
    assert "campaign_service listening on" in (result.report_dir / "service.log").read_text()
    assert {c["name"] for c in summary["checks"]} >= {"service", "audit", "reconciliation"}


def test_planted_bug_under_a_latency_drill_fails_naming_the_double_paid(tmp_path, run_loadkit):  # noqa: F811
    plan = rehearsal_plan(
        "bug",
        hold_s=6,
        qps=15,
        service_env={"CAMPAIGN_PLATFORM_TIMEOUT_S": "0.3", "CAMPAIGN_REQUEST_DEADLINE_S": "1.5"},
        service_args=["--bug", "new-biz-no-on-retry"],
        drills=[
            {
                "name": "slow-points",
                "at": "3s",
                "for": "3s",
                "recovery_s": 5,
                # above the service's 0.3-s timeout: every attempt times out after taking effect
                "faults": {"alipay.user.alipaypoint.send": {"latency": {"dist": "constant", "ms": 600}}},
            }
        ],
    )
    result = run(run_loadkit, tmp_path, plan)
    summary = result.summary
    assert result.code == 1, result.output
    recon = summary["reconciliation"]
    assert not recon["ok"] and recon["paid_twice"]["count"] > 0, recon
    assert recon["over_limit"]["count"] > 0, recon
    doubled = recon["paid_twice"]["first"][0]
    assert doubled.startswith("JFB"), recon
    reason = next(r for r in summary["reasons"] if "paid twice" in r)
    assert doubled in reason, reason  # the double-paid biz numbers are named
    drill = summary["drills"][0]
    assert drill["name"] == "slow-points" and drill["errors"] > 0, drill


def test_service_killed_mid_run_ends_with_a_clear_reason(tmp_path):
    plan_path = write_plan(tmp_path, rehearsal_plan("killed", hold_s=15, qps=10))
    report_dir = tmp_path / "report"
    cmd = [sys.executable, "-m", "loadkit", "run", str(plan_path), "--with-mock", "--headless"]
    proc = subprocess.Popen(
        [*cmd, "--report-dir", str(report_dir)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        pid_file = report_dir / "service.pid"
        deadline = time.monotonic() + 30
        while not pid_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        pid = json.loads(pid_file.read_text())["pid"]
        time.sleep(4)  # mid-run
        os.kill(pid, signal.SIGKILL)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    summary = json.loads((report_dir / "summary.json").read_text())
    assert proc.returncode == 1, output
    assert summary["ending"]["how"] == "aborted", output
    assert summary["ending"]["plan_s"] < 15, summary["ending"]
    assert "the service under test was killed by signal 9" in summary["ending"]["detail"], output
    assert summary["service"]["exit_code"] == -9 and not summary["service"]["ok"]
    assert any(r.startswith("The service under test was killed") for r in summary["reasons"]), output
    assert not psutil.pid_exists(pid)
    assert not processes_of(report_dir), output


def test_locust_killed_leaves_no_service_behind(tmp_path):
    """The watchdog: Locust dies by SIGKILL (no quit, no atexit); the service still goes."""
    plan_path = write_plan(tmp_path, rehearsal_plan("watchdog", hold_s=30, qps=5))
    report_dir = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadkit", "run", str(plan_path), "--with-mock", "--headless",
         "--report-dir", str(report_dir)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        pid_file = report_dir / "service.pid"
        deadline = time.monotonic() + 30
        while not pid_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        service = psutil.Process(json.loads(pid_file.read_text())["pid"])
        locust = next(p for p in psutil.Process(proc.pid).children() if "locust" in " ".join(p.cmdline()))
        time.sleep(2)
        locust.kill()
        output, _ = proc.communicate(timeout=60)
        service.wait(timeout=15)  # gone: by its parent-death signal, else the CLI's reaping
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert not processes_of(report_dir), output
    assert proc.returncode != 0, output


def test_thirty_second_outage_answers_try_later_fast_and_recovers(tmp_path, run_loadkit):  # noqa: F811
    deadline_s = 1.5
    plan = rehearsal_plan(
        "outage",
        hold_s=40,
        qps=8,
        service_env={
            "CAMPAIGN_PLATFORM_TIMEOUT_S": "0.5",
            "CAMPAIGN_REQUEST_DEADLINE_S": str(deadline_s),
            "CAMPAIGN_BREAKER_COOLDOWN_S": "1",
        },
        drills=[
            {
                "name": "outage",
                "at": "3s",
                "for": "30s",
                "recovery_s": 10,
                "faults": {"*": {"outage": {"mode": "hang"}}},
            }
        ],
    )
    result = run(run_loadkit, tmp_path, plan, timeout=140)
    summary = result.summary
    drill = summary["drills"][0]
    # every login in the outage is told "try later" (the simulator's auth codes still work): half
    assert drill["errors"] >= 0.45 * drill["requests"] > 0, drill
    assert any("try_later" in e["error"] for e in summary["errors"]), summary["errors"]
    assert drill["max_ms_service"] <= (deadline_s + 1.0) * 1000, drill  # nobody waited past the deadline
    assert drill["recovered"] and drill["recovery_s"] is not None and drill["recovery_s"] <= 10, drill
    assert summary["reconciliation"]["ok"] and summary["audit"]["ok"], summary["reasons"]
    assert result.code == 0, result.output
