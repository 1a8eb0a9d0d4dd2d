"""report.html from the recorded summary, opened in headless Chromium: readable, offline, no errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadkit.reports.html import render

from .conftest import open_page

pytestmark = pytest.mark.browser

FIXTURE = Path(__file__).parent.parent / "fixtures" / "sample_summary.json"


def test_report_opens_without_errors_and_shows_verdict_and_charts(browser: object, tmp_path: Path) -> None:
    summary = json.loads(FIXTURE.read_text())
    report = tmp_path / "report.html"
    report.write_text(render(summary), encoding="utf-8")
    watched = open_page(browser, report.as_uri())
    page = watched.page
    try:
        verdict = page.locator("#verdict .headline")
        assert verdict.is_visible()
        assert verdict.inner_text().startswith("Ready: the service held 239 requests/s for 10 minutes")
        charts = page.locator("svg.chart")
        assert charts.count() == 3
        for i in range(3):
            box = charts.nth(i).bounding_box()
            assert box is not None and box["width"] > 600 and box["height"] > 150
        assert page.locator("svg.chart path.series").count() == 6
        assert page.locator("table").first.locator("tbody tr").count() == len(summary["checks"])
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert (tmp_path / "report.png").stat().st_size > 10_000
        assert watched.console_errors == []
        assert watched.page_errors == []
        assert watched.blocked == []
    finally:
        page.context.close()
