"""write_all(): the report directory holds summary.json, junit.xml, summary.md and report.html."""

from __future__ import annotations

import json
import logging
import math
import sys

from loadkit.reports import write_all

SUMMARY = {
    "schema": 1,
    "verdict": "pass",
    "exit_code": 0,
    "reasons": [],
    "plan": {"name": "w", "file": None, "host": "http://127.0.0.1:1", "raw": {}},
    "window": {"seconds": 10.0, "stages": ["hold"]},
    "qps": {"target": 10.0, "held": 10.0},
    "latency_ms": {"p50": 1.0, "p99": math.nan},
    "checks": [
        {"name": "qps_min", "ok": True, "observed": 10.0, "limit": 5.0, "unit": "req/s", "kind": "budget"}
    ],
}


def test_writes_every_report(tmp_path):
    run_dir = tmp_path / "reports" / "w-1"
    written = write_all(run_dir, SUMMARY)
    assert sorted(written) == ["junit.xml", "report.html", "summary.json", "summary.md"]
    for name, path in written.items():
        assert path == run_dir / name and path.stat().st_size > 0
    text = (run_dir / "summary.json").read_text()
    doc = json.loads(text)
    assert doc["verdict"] == "pass" and doc["latency_ms"]["p99"] is None
    assert text.startswith("{\n  ")  # indented for people
    assert "<testcase" in (run_dir / "junit.xml").read_text()
    assert "**Verdict: PASS" in (run_dir / "summary.md").read_text()
    assert "<html" in (run_dir / "report.html").read_text().lower()


def test_html_skipped_with_a_warning_when_the_renderer_is_missing(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "loadkit.reports.html", None)  # makes the import fail
    with caplog.at_level(logging.WARNING, logger="loadkit"):
        written = write_all(tmp_path, SUMMARY)
    assert sorted(written) == ["junit.xml", "summary.json", "summary.md"]
    assert not (tmp_path / "report.html").exists()
    assert "report.html skipped" in caplog.text
