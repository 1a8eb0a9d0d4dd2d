"""Fixtures for end-to-end runs: target servers and `loadkit run` as real processes on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.processes import stop_process

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


@dataclass
class Target:
    url: str
    proc: subprocess.Popen

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())

    def count(self) -> int:
        return int(self.get("/count")["count"])


def pinned(cpu: int | None) -> list[str]:
    """A command prefix that pins a process to one CPU (nothing without taskset or a second CPU)."""
    if cpu is None or not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(cpu)]


def start_target(mode: str, cpu: int | None = None) -> Target:
    cmd = [*pinned(cpu), sys.executable, str(HERE / "target_server.py"), mode]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "listening on " in line:
            return Target(line.split("listening on ", 1)[1].strip(), proc)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"target server {mode!r} did not start")


@pytest.fixture
def target() -> Iterator[Callable[[str], Target]]:
    started: list[Target] = []

    def start(mode: str, cpu: int | None = None) -> Target:
        t = start_target(mode, cpu)
        started.append(t)
        return t

    yield start
    for t in started:
        stop_process(t.proc)


@dataclass
class RunResult:
    code: int
    output: str
    report_dir: Path

    @property
    def summary(self) -> dict[str, Any]:
        path = self.report_dir / "summary.json"
        assert path.is_file(), f"loadkit wrote no summary.json (exit {self.code}):\n{self.output}"
        return json.loads(path.read_text())


def write_plan(tmp_path: Path, plan: dict[str, Any], name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


@pytest.fixture
def run_loadkit(tmp_path: Path) -> Callable[..., RunResult]:
    def run(*args: str, timeout: float = 90, cpu: int | None = None) -> RunResult:
        """`loadkit run ...` (pinned to one CPU with `cpu`); its output kept for failure messages."""
        report_dir = tmp_path / "report"
        cmd = [*pinned(cpu), sys.executable, "-m", "loadkit", *args]
        if args and args[0] == "run" and "--report-dir" not in args:
            cmd += ["--report-dir", str(report_dir)]
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, check=False)
        return RunResult(proc.returncode, proc.stdout + proc.stderr, report_dir)

    return run


def plain_plan(stages: list[dict[str, Any]], budgets: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "e2e",
        "locustfile": str(HERE / "plain_locustfile.py"),
        "stages": stages,
        "budgets": budgets,
        **extra,
    }
