"""Fixtures for end-to-end runs: target servers and `loadkit run` as real processes on loopback.

Whatever goes wrong, a test shows loadkit's own output: `RunResult.summary` fails with it when
there is no summary to read, and every assertion on a run's exit code carries it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
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
        return read_summary(self.report_dir, self.code, self.output)


def read_summary(report_dir: Path, code: int, output: str) -> dict[str, Any]:
    """The run's summary.json; a failure that shows loadkit's exit code and output without one."""
    try:
        return json.loads((report_dir / "summary.json").read_text())
    except (OSError, ValueError) as exc:
        pytest.fail(
            f"no readable summary.json in {report_dir} ({exc}); loadkit exited {code}:\n{output[-4000:]}"
        )


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


@dataclass
class LiveRun:
    """`loadkit run` started in the background, its output collected as it comes."""

    proc: subprocess.Popen
    report_dir: Path
    lines: list[str] = field(default_factory=list)
    gate_reached: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if "[gate]" in line:
                self.gate_reached.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_gate(self, timeout: float = 30) -> None:
        assert self.gate_reached.wait(timeout), f"the gate window never began:\n{self.output[-3000:]}"

    def locust(self) -> psutil.Process:
        """The Locust process `loadkit run` started (its master, with --processes)."""
        for child in psutil.Process(self.proc.pid).children():
            if "locust" in " ".join(child.cmdline()):
                return child
        raise AssertionError(f"no Locust process under loadkit run:\n{self.output[-3000:]}")

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        if self.reader is not None:
            self.reader.join(timeout=10)  # the last lines, written just before it exited
        return code, self.output

    @property
    def summary(self) -> dict[str, Any]:
        return read_summary(self.report_dir, self.proc.returncode, self.output)


@pytest.fixture
def start_loadkit(tmp_path: Path) -> Iterator[Callable[..., LiveRun]]:
    """Start `loadkit run ...` in the background; teardown stops it and every process under it."""
    started: list[LiveRun] = []

    def start(*args: str, report_dir: Path | None = None) -> LiveRun:
        report_dir = report_dir or tmp_path / f"report{len(started) + 1}"
        cmd = [sys.executable, "-m", "loadkit", "run", *args[:1], "--report-dir", str(report_dir), *args[1:]]
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        run = LiveRun(proc, report_dir)
        run.reader = threading.Thread(target=run.read, daemon=True)
        run.reader.start()
        started.append((run, []))
        return run

    yield start
    for run, _ in started:
        if run.proc.poll() is not None:
            continue
        tree = psutil.Process(run.proc.pid).children(recursive=True)
        stop_process(run.proc)
        for child in tree:
            if child.is_running():
                child.kill()


def plain_plan(stages: list[dict[str, Any]], budgets: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "e2e",
        "locustfile": str(HERE / "plain_locustfile.py"),
        "stages": stages,
        "budgets": budgets,
        **extra,
    }
