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
