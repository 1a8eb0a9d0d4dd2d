"""The Event readiness tab in a real Locust web UI, started from the browser like an engineer would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import (
    LocustUI,
    open_page,
    open_readiness_tab,
    readiness_rows,
    start_locust_ui,
    start_swarm,
    stop_process,
    wait_for_rows_change,
)

pytestmark = pytest.mark.browser

# A locustfile whose users do no I/O and whose live() moves with the clock, so the tab's numbers
# must change between two reads if the UI really polls the rows.
LOCUSTFILE = """
import time

from locust import User, constant, events, task

from loadkit.engine import webui

STARTED = {"t0": None}


class IdleUser(User):
    host = "http://127.0.0.1"
    wait_time = constant(0.5)

    @task
    def idle(self):
        pass


@events.test_start.add_listener
def _start(environment, **_kw):
    STARTED["t0"] = time.time()


def live():
    if STARTED["t0"] is None:
        return {}
    elapsed = time.time() - STARTED["t0"]
    return {
        "stage": {"index": 0, "name": "hold", "count": 1, "elapsed_s": elapsed,
                  "remaining_s": 600 - elapsed, "qps_planned": 240.0, "gate": True},
        "qps_now": 200 + elapsed,
        "qps": {"target": 240.0, "held": 230 + elapsed / 10},
        "latency_ms": {"p50": 30.0, "p95": 150.0, "p99": 300 + elapsed},
        "error_rate": 0.0,
        "requests": {"count": int(elapsed * 240), "errors": 0},
        "arrivals": {"scheduled": int(elapsed * 240), "late": 0, "dropped": 0},
        "generator": {"cpu_max": 20.0, "cpu_avg": 10.0, "workers": 1, "workers_lost": 0},
        "checks": [
            {"name": "latency_p99", "ok": True, "observed": 300 + elapsed, "limit": 500, "unit": "ms",
             "kind": "budget"}
        ],
        "verdict": "pass",
        "reasons": [],
    }


@events.init.add_listener
def _init(environment, **_kw):
    webui.install(environment, live)
"""


@pytest.fixture
def locust_ui(tmp_path: Path) -> Iterator[LocustUI]:
    locustfile = tmp_path / "readiness_locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    ui = start_locust_ui(["-f", str(locustfile)], tmp_path)
    try:
        yield ui
    finally:
        stop_process(ui.proc)


def test_tab_rows_update_while_the_test_runs(browser: object, locust_ui: LocustUI, tmp_path: Path) -> None:
    watched = open_page(browser, locust_ui.url)
    page = watched.page
    try:
        start_swarm(page, users=2, spawn_rate=2)
        page.get_by_role("tab", name="Event readiness").wait_for()
        open_readiness_tab(page)
        page.get_by_text("hold (1 of 1)").wait_for()
        first = readiness_rows(page)
        second = wait_for_rows_change(page, first, "Stage")
        page.screenshot(path=str(tmp_path / "webui-tab.png"), full_page=True)
        assert first["Stage"][0] == "hold (1 of 1)"
        assert first["Budget: latency_p99"][1:3] == ["500 ms", "✔ PASS"]
        assert first["Verdict so far"][2] == "✔ PASS"
        for item in ("Requests/s now", "Budget: latency_p99"):
            assert float(second[item][0].split()[0]) > float(first[item][0].split()[0]), item
        assert second["Stage"][3] != first["Stage"][3], (first, second)  # "N s elapsed, M s left"
        assert (tmp_path / "webui-tab.png").stat().st_size > 10_000
        assert watched.page_errors == []
    finally:
        page.context.close()
