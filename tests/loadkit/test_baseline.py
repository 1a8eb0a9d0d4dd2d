"""baseline.resolve(): a report directory, the last passing run in the history, or history:<id>;
anything else that cannot serve as a baseline is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadkit import baseline, history

FIXTURE = Path(__file__).parent / "fixtures" / "sample_summary.json"
PLAN = json.loads(FIXTURE.read_text())["plan"]["name"]


def summary(verdict: str = "pass", plan: str = PLAN) -> dict:
    doc = json.loads(FIXTURE.read_text())
    doc["verdict"], doc["plan"]["name"] = verdict, plan
    return doc


def test_a_report_directory(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(summary()))
    found = baseline.resolve(str(tmp_path), PLAN, None, 0.1)
    assert found["run"] == {
        "source": str(tmp_path),
        "run_dir": str(tmp_path),
        "history_id": None,
        "plan": PLAN,
        "started_at": summary()["started_at"],
        "verdict": "pass",
    }
    assert found["max_regression"] == 0.1 and found["summary"]["schema"] == 3  # read through load_summary


def test_the_last_pass_and_a_history_id(tmp_path):
    db = tmp_path / history.DB_NAME
    history.record_run(db, summary(), "reports/first")
    history.record_run(db, summary(verdict="fail"), "reports/second")
    history.record_run(db, summary(plan="other"), "reports/third")
    found = baseline.resolve("last-pass", PLAN, db, 0.2)
    assert (found["run"]["history_id"], found["run"]["run_dir"]) == (1, "reports/first")
    found = baseline.resolve("history:2", PLAN, db, 0.2)
    assert (found["run"]["history_id"], found["run"]["verdict"]) == (2, "fail")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("last-pass", "no passing run of plan 'other-plan' in"),
        ("history:9", "--baseline history:9: no run 9 in"),
        ("history:one", "expected history:<run id>"),
        ("history:1", "that run is of plan 'jifenbao-channel', not 'other-plan'"),
        ("nowhere", "nowhere: no summary.json here"),
    ],
)
def test_what_cannot_be_a_baseline(tmp_path, spec, message):
    db = tmp_path / history.DB_NAME
    history.record_run(db, summary(), "reports/first")
    with pytest.raises(baseline.BaselineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        baseline.resolve(spec, "other-plan", db, 0.1)


def test_the_known_plans_are_named_and_a_broken_history_is_an_error(tmp_path):
    db = tmp_path / history.DB_NAME
    history.record_run(db, summary(verdict="fail"), None)
    with pytest.raises(baseline.BaselineError, match=f"the history has runs of: {PLAN}"):
        baseline.resolve("last-pass", PLAN, db, 0.1)
    bad = tmp_path / "bad.sqlite3"
    bad.write_text("not sqlite " * 100)
    with pytest.raises(baseline.BaselineError, match="cannot use as a run history"):
        baseline.resolve("last-pass", PLAN, bad, 0.1)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "summary.json").write_text('{"tool": "k6"}')
    with pytest.raises(baseline.BaselineError, match="not a loadkit summary"):
        baseline.resolve(str(tmp_path / "junk"), PLAN, None, 0.1)
