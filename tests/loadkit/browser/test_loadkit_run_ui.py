"""The whole path an engineer takes: `loadkit run PLAN --with-mock` with the web UI, started from
the browser, watching the Event readiness tab fill with the plan's real budgets."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from .conftest import (
    ROOT,
    free_port,
    open_page,
    open_readiness_tab,
    readiness_rows,
    start_swarm,
    start_ui_process,
    stop_process,
    wait_for_rows_change,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PLAN = ROOT / "scenarios" / "plans" / "jifenbao-ci.yaml"


def number(cell: str) -> float:
    match = re.search(r"-?\d+(?:\.\d+)?", cell.replace(",", ""))
    assert match, cell
    return float(match.group())


def test_loadkit_run_web_ui_shows_live_budgets(browser: object, tmp_path: Path) -> None:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "loadkit",
        "run",
        str(PLAN),
        "--with-mock",
        "--web-port",
        str(port),
        "--report-dir",
        str(tmp_path / "report"),
    ]
    ui = start_ui_process(argv, f"http://127.0.0.1:{port}/", tmp_path, timeout=60)
    watched = open_page(browser, ui.url)
    page = watched.page
    try:
        start_swarm(page, users=1, spawn_rate=1)
        open_readiness_tab(page)
        page.get_by_text("Budget: points.send qps_min").wait_for(timeout=20_000)
        first = readiness_rows(page)
        second = wait_for_rows_change(page, first, "Requests/s now", timeout=15)
        page.screenshot(path=str(tmp_path / "loadkit-run-tab.png"), full_page=True)
        budget_rows = {k: v for k, v in second.items() if k.startswith("Budget: ")}
        assert {"Budget: points.send qps_min", "Budget: latency_p99"} <= set(budget_rows), second
        assert number(budget_rows["Budget: points.send qps_min"][1]) == 200  # the plan's limit
        assert number(second["Requests/s now"][0]) > 0
        assert (tmp_path / "loadkit-run-tab.png").stat().st_size > 10_000
        assert watched.page_errors == []
    finally:
        page.context.close()
        stop_process(ui.proc)
    # stopping `loadkit run` still judges what ran and writes the reports
    assert (tmp_path / "report" / "summary.json").is_file(), ui.log.read_text()[-2000:]
