"""The Event readiness tab on a real Locust web UI (loopback, port 0), with a fake live()."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from locust import User, constant, task
from locust.env import Environment

from loadkit.engine import webui

PASS, FAIL = webui.MARKS[True], webui.MARKS[False]


class IdleUser(User):
    """Makes no network calls: the tab is what is under test."""

    wait_time = constant(1)

    @task
    def idle(self) -> None:
        pass


def live_snapshot(qps_now: float = 231.0) -> dict[str, Any]:
    return {
        "stage": {
            "index": 2,
            "name": "hold",
            "count": 3,
            "elapsed_s": 120.4,
            "remaining_s": 479.6,
            "qps_planned": 240.0,
            "gate": True,
        },
        "qps_now": qps_now,
        "qps": {"target": 240.0, "held": 238.9, "arrivals_held": 239.2},
        "latency_ms": {"p50": 33.8, "p95": 178.0, "p99": 412.0},
        "error_rate": 0.0004,
        "requests": {"count": 28000, "errors": 11},
        "arrivals": {"scheduled": 28800, "sent": 28790, "late": 36, "dropped": 10},
        "generator": {"cpu_max": 61.5, "cpu_avg": 44.2, "workers": 2, "workers_lost": 0},
        "checks": [
            {
                "name": "qps_min",
                "ok": True,
                "observed": 238.9,
                "limit": 200,
                "unit": "req/s",
                "kind": "budget",
            },
            {
                "name": "latency_p99",
                "ok": False,
                "observed": 612.0,
                "limit": 500,
                "unit": "ms",
                "kind": "budget",
            },
            {
                "name": "arrivals_on_time",
                "ok": True,
                "observed": 0.9984,
                "limit": 0.99,
                "unit": "fraction",
                "kind": "health",
            },
        ],
        "audit": {"ok": True, "violations": [], "totals": {}},
        "gate": {"started": True, "starts_in_s": 0.0},
        "verdict": "fail",
        "reasons": ["p99 612 ms is above the 500 ms budget"],
    }


class FakeLive:
    def __init__(self) -> None:
        self.calls = 0
        self.fail: Exception | None = None

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return live_snapshot(qps_now=200.0 + self.calls)


class UI:
    def __init__(self, env: Environment, base: str) -> None:
        self.env = env
        self.base = base

    def get(self, path: str) -> tuple[int, str, str]:
        url = f"http://127.0.0.1:{self.env.web_ui.server.server_port}{self.base}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get("Content-Type", ""), err.read().decode()

    def rows(self) -> list[dict[str, str]]:
        status, _, body = self.get("/stats/requests")
        assert status == 200
        stats = json.loads(body)
        tables = [e for e in stats.get("extended_stats", []) if e["key"] == webui.TAB_KEY]
        assert len(tables) == 1
        return tables[0]["data"]


def start_ui(live: Callable[[], Any], base: str | None = None) -> Iterator[UI]:
    env = Environment(user_classes=[IdleUser], events=None)
    runner = env.create_local_runner()
    web_ui = env.create_web_ui("127.0.0.1", 0, web_base_path=base, delayed_start=True)
    webui.install(env, live)
    web_ui.start()
    with gevent.Timeout(5):
        while web_ui.server is None or not web_ui.server.server_port:
            gevent.sleep(0.01)
    try:
        yield UI(env, base or "")
    finally:
        runner.quit()
        web_ui.stop()


@pytest.fixture(autouse=True)
def locust_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """The web UI parses sys.argv for its extra options, and pytest's flags are not Locust's."""
    monkeypatch.setattr(sys, "argv", ["locust"])


@pytest.fixture
def fake() -> FakeLive:
    return FakeLive()


@pytest.fixture
def ui(fake: FakeLive) -> Iterator[UI]:
    yield from start_ui(fake)


def item(rows: list[dict[str, str]], name: str) -> dict[str, str]:
    return next(r for r in rows if r["item"] == name)


def test_index_carries_the_tab_table_and_csv_link(ui: UI) -> None:
    status, _, page = ui.get("/")
    assert status == 200
    args = json.loads(re.search(r"window\.templateArgs = (.*)\n", page).group(1))
    assert {"title": "Event readiness", "key": "event_readiness"} in args["extended_tabs"]
    table = next(t for t in args["extended_tables"] if t["key"] == "event_readiness")
    assert [c["key"] for c in table["structure"]] == ["item", "observed", "limit", "status", "note"]
    assert {"href": "./loadkit/readiness.csv", "title": "Download event readiness CSV"} in args[
        "extended_csv_files"
    ]
    # Locust's own keys are refreshed on every render; ours must survive that merge
    assert ui.get("/")[2].count('"extended_tabs"') == 1


def test_stats_requests_carries_rows_that_follow_live(ui: UI, fake: FakeLive) -> None:
    first = ui.rows()
    assert [r["name"] for r in first] == sorted(r["name"] for r in first)
    assert item(first, "Stage")["observed"] == "hold (3 of 3)"
    assert item(first, "Stage")["note"] == "120 s elapsed, 480 s left"
    arrivals = item(first, "Arrivals/s sent / planned")
    assert (arrivals["observed"], arrivals["limit"]) == ("239.2", "240.0")
    assert arrivals["note"] == "journeys started, gate window so far"
    assert (
        item(first, "Requests/s held")["observed"] == "238.9"
        and item(first, "Requests/s held")["limit"] == ""
    )
    assert item(first, "Requests/s now")["limit"] == ""  # requests/s are not compared with planned arrivals/s
    assert item(first, "Budget: qps_min")["status"] == PASS
    p99 = item(first, "Budget: latency_p99")
    assert (p99["observed"], p99["limit"], p99["status"]) == ("612 ms", "500 ms", FAIL)
    on_time = item(first, "Generator: arrivals_on_time")
    assert (on_time["observed"], on_time["limit"], on_time["status"]) == ("99.84%", "99.00%", PASS)
    assert item(first, "Arrivals late")["note"] == "0.12% of 28,800 scheduled"
    assert item(first, "Generator CPU max / avg")["observed"] == "61.5% / 44.2%"
    assert item(first, "Mock audit")["status"] == PASS
    assert item(first, "Verdict so far")["observed"] == "not ready so far"
    assert item(first, "Verdict so far")["status"] == FAIL
    assert item(first, "Reason")["note"] == "p99 612 ms is above the 500 ms budget"
    # Locust memoizes /stats/requests for 2 s; the rows must still be fresh on every poll
    second = ui.rows()
    assert item(second, "Requests/s now")["observed"] != item(first, "Requests/s now")["observed"]
    _, _, body = ui.get("/stats/requests")
    assert "stats" in json.loads(body)  # Locust's own payload is kept


def test_before_the_gate_the_tab_gives_no_verdict_and_labels_the_run_so_far() -> None:
    live = live_snapshot()
    live["stage"] = {
        "index": 0,
        "name": "warmup",
        "count": 3,
        "elapsed_s": 20,
        "remaining_s": 10,
        "gate": False,
    }
    live["gate"] = {"started": False, "starts_in_s": 64.2}
    del live["verdict"], live["reasons"]  # RunSession.live() gives none before the gate
    rows = webui.rows(live)
    verdict = item(rows, "Verdict so far")
    assert (verdict["observed"], verdict["status"]) == ("gate not started (starts in 1m5s)", "")
    for check in ("Budget: qps_min", "Budget: latency_p99", "Generator: arrivals_on_time"):
        row = item(rows, check)
        assert row["status"] == "" and row["note"] == "not judged before the gate", row
    assert item(rows, "Budget: latency_p99")["observed"] == "612 ms"  # the figure still shows
    assert not any(r["status"] in (PASS, FAIL) for r in rows if r["item"] != "Mock audit")
    assert not [r for r in rows if r["item"] == "Reason"]
    scope = "run so far (gate not started)"
    assert item(rows, "Arrivals/s sent / planned")["note"] == f"journeys started, {scope}"
    assert item(rows, "Requests/s held")["note"] == f"successful requests, {scope}"
    assert item(rows, "Latency p50 / p95 / p99")["note"].endswith(scope)
    assert item(rows, "Error rate")["note"] == f"11 errors in 28,000 requests; {scope}"
    # even if a live() gave a verdict before the gate, the tab would not show it
    live["verdict"] = "fail"
    assert item(webui.rows(live), "Verdict so far")["observed"].startswith("gate not started")


def test_a_summary_shaped_live_without_new_keys_still_renders() -> None:
    live = live_snapshot()
    del live["gate"]
    live["qps"] = {"target": 240.0, "held": 238.9}
    rows = webui.rows(live)
    assert item(rows, "Verdict so far")["observed"] == "not ready so far"
    assert item(rows, "Arrivals/s sent / planned")["observed"] == "—"


def test_generator_health_rows_name_who_made_arrivals_late() -> None:
    live = live_snapshot()
    live["generator"] = {
        **live["generator"],
        "lag_p99_ms": 46.0,
        "lag_max_ms": 310.0,
        "unhealthy_s": 12.0,
        "late": {"generator": 900, "users": 0, "target": 30},
        "unsent": {"generator": 100, "users": 0, "target": 0},
        "processes": [
            {"name": "master", "paces": False, "lag_p99_ms": 2.0, "lag_max_ms": 4.0, "cpu_max": 9.0,
             "cpu_avg": 5.0, "cpu_wait_max": None, "unhealthy_s": 0.0, "free_min": None},
            {"name": "worker-1", "paces": True, "lag_p99_ms": 46.0, "lag_max_ms": 310.0, "cpu_max": 99.0,
             "cpu_avg": 93.0, "cpu_wait_max": 12.5, "unhealthy_s": 12.0, "free_min": 0},
        ],
    }  # fmt: skip
    live["checks"].append(
        {"name": "latency_p99", "ok": False, "observed": 612.0, "limit": 500, "unit": "ms", "kind": "budget",
         "effect": "inconclusive"}
    )  # fmt: skip
    rows = webui.rows(live)
    lag = item(rows, "Generator loop lag p99 / max")
    assert (lag["observed"], lag["limit"]) == ("46 ms / 310 ms", "20 ms / 250 ms")
    assert item(rows, "Generator unhealthy")["observed"] == "12 s"
    assert item(rows, "Late arrivals by cause")["observed"] == "generator 1,000 / users 0 / target 30"
    worker = item(rows, "Process worker-1")
    assert worker["observed"] == "lag 46 ms / 310 ms"
    assert "waited for a core ≤ 12.5%" in worker["note"] and "fewest free users 0" in worker["note"]
    assert "free users" not in item(rows, "Process master")["note"]  # the master paces nothing
    doubted = [r for r in rows if r["item"] == "Budget: latency_p99"]
    assert [r["status"] for r in doubted] == [FAIL, webui.EFFECT_MARKS["inconclusive"]]


def test_live_json_and_csv_routes(ui: UI) -> None:
    status, ctype, body = ui.get("/loadkit/live")
    assert status == 200 and ctype.startswith("application/json")
    assert json.loads(body)["stage"]["name"] == "hold"
    status, ctype, body = ui.get("/loadkit/readiness.csv")
    assert status == 200 and ctype.startswith("text/csv")
    table = list(csv.reader(io.StringIO(body)))
    assert table[0] == ["Item", "Observed", "Limit", "Status", "Note"]
    assert ["Budget: latency_p99", "612 ms", "500 ms", FAIL, ""] in table


def test_live_failing_or_partial_never_breaks_the_poll(ui: UI, fake: FakeLive) -> None:
    fake.fail = RuntimeError("recorder not started")
    rows = ui.rows()
    assert rows == [
        {
            "name": "000",
            "item": "Event readiness",
            "observed": "waiting for data",
            "limit": "",
            "status": "",
            "note": "RuntimeError: recorder not started",
        }
    ]
    status, _, body = ui.get("/loadkit/live")
    assert status == 503 and "recorder not started" in json.loads(body)["error"]
    assert ui.get("/loadkit/readiness.csv")[0] == 200
    fake.fail = None
    assert webui.rows({"stage": None}) == [webui._row("Event readiness", "waiting for the test to start")]
    partial = webui.rows({"stage": {"name": "warmup"}, "checks": [{"name": "x"}], "generator": None})
    assert item(partial, "Stage")["note"] == "— s elapsed, — s left"
    assert item(partial, "Check: x")["status"] == "?"


def test_base_path_and_reinstall_and_existing_extended_stats(fake: FakeLive) -> None:
    for ui in start_ui(fake, base="/lk"):
        assert item(ui.rows(), "Stage")["observed"] == "hold (3 of 3)"
        assert ui.get("/loadkit/live")[0] == 200
        webui.install(ui.env, lambda: live_snapshot(qps_now=7.0))  # replaces the source only
        assert item(ui.rows(), "Requests/s now")["observed"] == "7.0"
        assert (
            ui.env.web_ui.template_args["extended_tabs"].count(
                {"title": "Event readiness", "key": "event_readiness"}
            )
            == 1
        )


def test_other_extended_stats_and_tabs_are_kept(fake: FakeLive) -> None:
    env = Environment(user_classes=[IdleUser], events=None)
    env.create_local_runner()
    web_ui = env.create_web_ui("127.0.0.1", 0, delayed_start=True)
    web_ui.template_args["extended_tabs"] = [{"title": "SLO", "key": "slo"}]
    webui.install(env, fake)

    @web_ui.app.after_request  # registered later, so Flask runs it before ours
    def other_plugin(response: Any) -> Any:
        if response.is_json and "stats" in (response.get_json(silent=True) or {}):
            payload = response.get_json()
            payload["extended_stats"] = [{"key": "slo", "data": [{"name": "a"}]}]
            response.set_data(json.dumps(payload))
        return response

    try:
        assert [t["key"] for t in web_ui.template_args["extended_tabs"]] == ["slo", "event_readiness"]
        stats = web_ui.app.test_client().get("/stats/requests").get_json()
        assert [e["key"] for e in stats["extended_stats"]] == ["slo", "event_readiness"]
    finally:
        env.runner.quit()


def test_headless_does_nothing() -> None:
    env = Environment(user_classes=[IdleUser], events=None)
    assert env.web_ui is None
    webui.install(env, FakeLive())  # must not raise
    assert env.web_ui is None


def test_rows_for_the_service_and_each_drill():
    from loadkit.engine.webui import rows

    live = {
        "stage": {"index": 0, "count": 1, "name": "hold", "elapsed_s": 5, "remaining_s": 5, "gate": True},
        "gate": {"started": True, "starts_in_s": 0},
        "service": {"ok": False, "host": "http://127.0.0.1:5000", "problem": "the service under test exited"},
        "drills": [
            {"name": "outage", "at": 10, "for": 30, "state": "active", "error_rate": 0.5, "p99_ms": 800.0,
             "recovery_budget_s": 20},
            {"name": "slow", "at": 50, "for": 10, "state": "scheduled", "error_rate": None, "p99_ms": None,
             "recovery_budget_s": 30},
        ],
    }  # fmt: skip
    table = {r["item"]: r for r in rows(live)}
    assert table["Service under test"]["status"].endswith("FAIL")
    assert "exited" in table["Service under test"]["note"]
    outage = table["Drill: outage"]
    assert outage["status"] == "active" and "50" in outage["observed"] and "800" in outage["observed"]
    assert outage["limit"] == "recovery ≤ 20 s" and outage["note"].startswith("10–40 s")
    assert table["Drill: slow"]["status"] == "scheduled"
