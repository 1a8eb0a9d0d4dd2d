"""Runs never mix: each `--processes` run has its master on a port of its own on 127.0.0.1, and a
master refuses a worker of another run. Real Locust processes on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadkit import cli
from tests.processes import stop_process

from .conftest import HERE, plain_plan, read_summary, write_plan

pytestmark = pytest.mark.e2e

LOCUST_FILES = f"{HERE.parents[2] / 'loadkit/engine/locust_entry.py'},{HERE / 'plain_locustfile.py'}"


def short_plan(tmp_path: Path, name: str = "plan.yaml", hold: str = "6s") -> Path:
    plan = plain_plan(
        [
            {"name": "warmup", "duration": "2s", "qps": 40, "users": 10},
            {"name": "hold", "duration": hold, "qps": 40, "users": 10, "gate": True},
        ],
        {"qps_min": 36, "latency_ms": {"p99": 500}},
    )
    return write_plan(tmp_path, plan, name)


def test_two_processes_runs_at_once_each_count_only_their_own(tmp_path, target, start_loadkit):
    servers = [target("fast"), target("fast")]
    plan = str(short_plan(tmp_path))
    runs = [start_loadkit(plan, "--headless", "--host", s.url, "--processes", "2") for s in servers]
    for run, server in zip(runs, servers, strict=True):
        code, output = run.finish(timeout=120)
        assert code == 0, output[-4000:]
        summary = run.summary
        served, counted = server.count(), summary["whole_run"]["requests"]
        assert served > 0 and abs(counted - served) <= 0.01 * served, (counted, served)
        assert summary["generator"]["workers"] == summary["generator"]["workers_expected"] == 2
        assert summary["generator"]["strangers"] == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_master_refuses_a_worker_of_another_run(tmp_path, target):
    server = target("fast")
    port = str(free_port())
    plan = short_plan(tmp_path, hold="8s")
    locust = [sys.executable, "-m", "locust", "-f", LOCUST_FILES]
    worker = [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", port]
    report = tmp_path / "report"
    procs: list[subprocess.Popen] = []

    def start(argv: list[str]) -> subprocess.Popen:
        procs.append(
            subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
        return procs[-1]

    try:
        bind = ["--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--expect-workers", "1"]
        run = ["--headless", "--plan", str(plan), "--host", server.url, "--report-dir", str(report)]
        master = start([*locust, "--master", *bind, *run, "--run-id", "run-a", "--only-summary"])
        ours = start([*worker, "--run-id", "run-a"])
        time.sleep(4)  # the test is under way with our worker
        stranger = start([*worker, "--run-id", "run-b"])
        stranger_output = stranger.communicate(timeout=30)[0]
        if stranger.returncode != 3:
            master.terminate()
            stranger_output += "\n--- master:\n" + master.communicate(timeout=30)[0]
        assert stranger.returncode == 3, stranger_output[-5000:]
        assert "the master refused this worker" in stranger_output and "run-a" in stranger_output
        master_output = master.communicate(timeout=60)[0]
        ours.communicate(timeout=30)
    finally:
        for proc in procs:
            stop_process(proc)
    summary = read_summary(report, master.returncode, master_output)
    assert master.returncode == 2, master_output[-4000:]
    generator = summary["generator"]
    assert len(generator["strangers"]) == 1 and generator["workers"] == 1, generator
    assert any("of another run tried to join" in r for r in summary["reasons"]), summary["reasons"]
    assert "refused worker" in master_output


def test_a_taken_master_port_is_retried_then_refused_in_one_line(tmp_path, target, monkeypatch, capfd):
    server = target("fast")
    plan = plain_plan(
        [{"name": "hold", "duration": "2s", "qps": 20, "users": 5, "gate": True}], {"qps_min": 15}
    )
    plan_path = str(write_plan(tmp_path, plan))
    with socket.socket() as held:  # another process's listener on the port loadkit picks first
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        picks = iter([taken])
        monkeypatch.setattr(cli, "free_port", lambda: next(picks, None) or free_port())
        argv = ["run", plan_path, "--headless", "--host", server.url, "--processes", "1"]
        code = cli.main([*argv, "--report-dir", str(tmp_path / "retried")])
        out, err = capfd.readouterr()
        assert code == 0, (out + err)[-4000:]
        assert f"master port {taken} was taken by another process; trying another" in out
        monkeypatch.setattr(cli, "free_port", lambda: taken)
        monkeypatch.setattr(cli, "MASTER_BIND_ATTEMPTS", 2)
        assert cli.main([*argv, "--report-dir", str(tmp_path / "refused")]) == 3
        out, err = capfd.readouterr()
    assert f"loadkit: could not bind the Locust master on 127.0.0.1: ports {taken}, {taken} were taken" in err
    assert "Traceback" not in out + err
