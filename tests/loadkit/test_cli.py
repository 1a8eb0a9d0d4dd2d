"""The `loadkit` CLI in-process: usage errors exit 3 with a clear line, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from loadkit.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "sample_summary.json"
ROOT = Path(__file__).resolve().parents[2]


def write_plan(tmp_path: Path, **overrides) -> Path:
    plan = {
        "name": "cli",
        "locustfile": str(ROOT / "tests/loadkit/e2e/plain_locustfile.py"),
        "stages": [{"name": "hold", "duration": "5s", "qps": 10, "gate": True}],
        "budgets": {"qps_min": 5},
        **overrides,
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_validate_prints_the_stages(tmp_path, capsys):
    assert main(["validate", str(write_plan(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "hold" in out and "[gate]" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate", "missing.yaml"], "missing.yaml"),
        (["run", "missing.yaml", "--headless"], "missing.yaml"),
        (["report", "/nonexistent-dir"], "no summary.json"),
        (["compare", "/nonexistent-a", "/nonexistent-b"], "no summary.json"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_3(argv, message, capsys):
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_run_refuses_a_host_outside_the_allow_list_before_anything_starts(tmp_path, capsys):
    plan = write_plan(tmp_path, safety={"allow_hosts": ["localhost"]})
    assert main(["run", str(plan), "--headless", "--host", "http://127.0.0.1:9"]) == 3
    assert "127.0.0.1" in capsys.readouterr().err


def test_run_needs_a_host_and_an_existing_locustfile(tmp_path, capsys):
    assert main(["run", str(write_plan(tmp_path)), "--headless"]) == 3
    assert "no target host" in capsys.readouterr().err
    plan = write_plan(tmp_path, locustfile="nowhere.py")
    assert main(["run", str(plan), "--headless", "--host", "http://127.0.0.1:9"]) == 3
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", str(write_plan(tmp_path)), "--with-mock", "--host", "http://127.0.0.1:9"]) == 3
    assert "--with-mock" in capsys.readouterr().err


def test_report_rerenders_a_finished_run(tmp_path, capsys):
    shutil.copy(FIXTURE, tmp_path / "summary.json")
    assert main(["report", str(tmp_path)]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and json.loads(FIXTURE.read_text())["plan"]["name"] in html
    assert (tmp_path / "summary.md").is_file() and (tmp_path / "junit.xml").is_file()
    # a summary written before qps.arrivals_held existed renders it as unknown, and is kept as it was
    assert "| Arrivals/s sent / planned | — / 240 |" in (tmp_path / "summary.md").read_text()
    assert "Arrivals/s sent" in html and "planned 240" in html
    assert "arrivals_held" not in (tmp_path / "summary.json").read_text()


def test_compare_flags_a_worse_run(tmp_path, capsys):
    base, cur = tmp_path / "base", tmp_path / "cur"
    base.mkdir()
    cur.mkdir()
    summary = json.loads(FIXTURE.read_text())
    (base / "summary.json").write_text(json.dumps(summary))
    assert main(["compare", str(base), str(base)]) == 0
    summary["latency_ms"]["p99"] *= 2
    (cur / "summary.json").write_text(json.dumps(summary))
    assert main(["compare", str(cur), str(base)]) == 1
    assert "latency_p99_ms" in capsys.readouterr().out


def test_scenarios_lists_every_scenario_and_plan(capsys):
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in ("jifenbao", "flash_sale", "follow_gift", "red_envelope_rain", "event_mixed"):
        assert name in out and f"plans/{name}-ci.yaml" in out
    assert "invalid" not in out


def test_the_mock_starts_whatever_its_generated_token_begins_with(monkeypatch) -> None:
    import json as json_module
    import urllib.request

    import loadkit.cli as cli_module

    # token_urlsafe draws "-" first one time in 64: argparse then took the token for an option
    monkeypatch.setattr(cli_module.secrets, "token_urlsafe", lambda n: "-starts-with-a-dash")
    mock = cli_module.MockProcess(None, None)
    try:
        request = urllib.request.Request(mock.url + "/admin/health", headers={"X-Admin-Token": mock.token})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and json_module.loads(response.read())
    finally:
        mock.stop()
    assert mock.token == "-starts-with-a-dash"


def test_every_option_of_every_command_has_help():
    from loadkit.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices  # argparse's sub-parsers
    missing = [
        f"{name} {action.dest}"
        for name, sub in commands.items()
        for action in sub._actions
        if action.dest != "help" and not action.help
    ]
    assert missing == []


def record(db: Path, name: str, verdict: str, ending: str, held: float, started: str, run_dir: str) -> None:
    from loadkit import history

    summary = json.loads(FIXTURE.read_text())
    summary["plan"]["name"], summary["verdict"], summary["started_at"] = name, verdict, started
    summary["qps"]["held"], summary["ending"] = held, {"how": ending}
    history.record_run(db, summary, run_dir)


def test_history_prints_a_table_or_json_and_names_the_known_plans(tmp_path, capsys):
    db = tmp_path / "h.sqlite3"
    assert main(["history", "--db", str(db)]) == 3
    assert "no run history yet" in capsys.readouterr().err
    record(db, "jifenbao", "pass", "completed", 238.9, "2026-11-24T08:00:00+00:00", "reports/a")
    record(db, "flash", "inconclusive", "interrupted", 12.5, "2026-11-24T09:00:00+00:00", "reports/b")
    assert main(["history", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "id",
        "started",
        "plan",
        "verdict",
        "ended",
        "held",
        "req/s",
        "p99",
        "ms",
        "errors",
        "report",
    ]
    assert lines[1].split()[:5] == ["2", "2026-11-24T09:00:00+00:00", "flash", "inconclusive", "interrupted"]
    assert "12.5" in lines[1] and lines[1].endswith("reports/b") and len(lines) == 3
    assert main(["history", "--db", str(db), "--plan", "jifenbao", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(r["plan"], r["ending"], r["qps_held"]) for r in runs] == [("jifenbao", "completed", 238.9)]
    assert main(["history", "--db", str(db), "--plan", "nosuch"]) == 3
    err = capsys.readouterr().err
    assert "no runs of plan 'nosuch'" in err and "flash, jifenbao" in err


def test_report_rerenders_with_the_plans_trend_from_the_history(tmp_path, capsys):
    run_dir = tmp_path / "reports" / "run"
    run_dir.mkdir(parents=True)
    shutil.copy(FIXTURE, run_dir / "summary.json")
    name, started = (
        json.loads(FIXTURE.read_text())["plan"]["name"],
        json.loads(FIXTURE.read_text())["started_at"],
    )
    db = tmp_path / "reports" / "loadkit-history.sqlite3"  # the default: beside the report directory
    record(db, name, "fail", "completed", 150.0, "2026-01-01T00:00:00+00:00", "reports/old")
    record(db, name, "pass", "completed", 238.9, started, str(run_dir))
    record(db, name, "pass", "completed", 240.0, "2099-01-01T00:00:00+00:00", "reports/later")  # not yet
    assert main(["report", str(run_dir)]) == 0
    md = (run_dir / "summary.md").read_text()
    assert "## Trend: the plan's last 2 runs" in md and "| #1 |" in md and "#3" not in md
    assert "Trend: the plan's last 2 runs" in (run_dir / "report.html").read_text()


def test_compare_names_the_runs_and_refuses_other_plans(tmp_path, capsys):
    for name, plan in (("a", "one"), ("b", "two"), ("c", "one")):
        (tmp_path / name).mkdir()
        doc = json.loads(FIXTURE.read_text())
        doc["plan"]["name"] = plan
        (tmp_path / name / "summary.json").write_text(json.dumps(doc))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert (
        f"run:      {tmp_path / 'a'} (plan one, started " in out
        and f"baseline: {tmp_path / 'c'} (plan one" in out
    )
    assert "result: same or better on every figure" in out
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 3
    assert "runs of different plans (plan 'one' vs 'two')" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--any-plan"]) == 0
    assert "warning: the plans differ: plan 'one' vs 'two'" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c"), "--tolerance", "lots"]) == 3
    assert "expected a share such as 10% or 0.1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--", "--run-time", "20s"], "--run-time does not apply with a plan"),
        (["--", "-t=20s"], "--run-time does not apply with a plan"),
        (["--baseline", "nowhere"], "nowhere: no summary.json here"),
        (["--baseline", "last-pass"], "no passing run of plan 'cli'"),
        (["--baseline", "history:x"], "expected history:<run id>"),
        (["--baseline", "last-pass", "--max-regression", "much"], "--max-regression: expected a share"),
    ],
)
def test_run_refuses_before_anything_starts(tmp_path, capsys, extra, message):
    argv = ["run", str(write_plan(tmp_path)), "--headless", "--host", "http://127.0.0.1:9"]
    assert main([*argv, "--report-dir", str(tmp_path / "r"), *extra]) == 3
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
