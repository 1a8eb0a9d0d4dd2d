"""`loadkit compare` and the regression gate (`loadkit run --baseline`) on real runs: runs of the
same target are the same, a target made 50% slower is a regression named with both values."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import plain_plan, read_summary, write_plan

pytestmark = pytest.mark.e2e


def plan_file(tmp_path):
    plan = plain_plan(
        [
            {"name": "warmup", "duration": "1s", "qps": 80, "users": 20},
            {"name": "hold", "duration": "6s", "qps": 80, "users": 20, "gate": True},
        ],
        {"latency_ms": {"p99": 500}},
    )
    return str(write_plan(tmp_path, plan))


def loadkit(tmp_path, *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "loadkit", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_compare_two_runs_of_the_same_target_says_same(tmp_path, target):
    server = target("delay:10")
    plan = plan_file(tmp_path)
    for name in ("first", "second"):
        code, output = loadkit(
            tmp_path, "run", plan, "--headless", "--host", server.url, "--report-dir", name
        )
        assert code == 0, output[-3000:]
    code, output = loadkit(tmp_path, "compare", "second", "first")
    assert code == 0, output
    assert (
        "run:      second (plan e2e, started " in output and "baseline: first (plan e2e, started " in output
    )
    assert "result: same or better on every figure" in output
    assert " worse" not in output


def test_baseline_gate_fails_a_slower_target_and_passes_the_same_one(tmp_path, target):
    plan = plan_file(tmp_path)
    usual, slower = target("delay:20"), target("delay:30")  # +50% latency
    code, output = loadkit(tmp_path, "run", plan, "--headless", "--host", usual.url, "--report-dir", "base")
    assert code == 0, output[-3000:]

    code, output = loadkit(
        tmp_path,
        "run",
        plan,
        "--headless",
        "--host",
        usual.url,
        "--report-dir",
        "same",
        "--baseline",
        "last-pass",
    )
    assert code == 0, output[-3000:]
    summary = read_summary(tmp_path / "same", code, output)
    section = summary["baseline"]
    assert section["run"]["run_dir"] == "base" and section["run"]["history_id"] == 1, section["run"]
    assert {r["change"] for r in section["figures"]} <= {"same", "better"}, section["figures"]
    assert any(c["name"] == "baseline latency_p99_ms" and c["ok"] for c in summary["checks"])

    code, output = loadkit(
        tmp_path,
        "run",
        plan,
        "--headless",
        "--host",
        slower.url,
        "--report-dir",
        "slower",
        "--baseline",
        "base",
        "--max-regression",
        "10%",
    )
    assert code == 1, output[-3000:]
    summary = read_summary(tmp_path / "slower", code, output)
    assert summary["verdict"] == "fail"
    failed = [c for c in summary["checks"] if not c["ok"]]
    assert failed and all(c["name"].startswith("baseline ") and "latency" in c["name"] for c in failed), (
        failed
    )
    base = json.loads((tmp_path / "base" / "summary.json").read_text())
    figure = failed[0]["name"].removeprefix("baseline ")  # e.g. "latency_p99_ms", "home latency_p95_ms"
    endpoint, _, key = figure.rpartition(" ")
    base_value = (base["endpoints"][endpoint] if endpoint else base)["latency_ms"][key.split("_")[1]]
    reason = next(r for r in summary["reasons"] if f": {figure} " in r)
    assert reason.startswith("Regression against the baseline run base of "), reason
    assert f"vs {base_value:.1f} ms" in reason and "beyond the 10% allowed" in reason, (reason, base_value)
    for name in ("summary.md", "report.html"):
        assert "Against the baseline run" in (tmp_path / "slower" / name).read_text()
    # the plan's trend over its runs is in the reports, read from the history
    assert "Trend: the plan's last 3 runs" in (tmp_path / "slower" / "summary.md").read_text()


def test_a_baseline_that_cannot_be_used_is_refused_before_anything_starts(tmp_path, target):
    server = target("fast")
    plan = plan_file(tmp_path)
    code, output = loadkit(
        tmp_path, "run", plan, "--headless", "--host", server.url, "--baseline", "last-pass"
    )
    assert code == 3 and "no passing run of plan 'e2e'" in output and "Traceback" not in output, output
    code, output = loadkit(tmp_path, "run", plan, "--headless", "--host", server.url, "--baseline", "nowhere")
    assert code == 3 and "nowhere: no summary.json here" in output, output
    assert server.count() == 0
