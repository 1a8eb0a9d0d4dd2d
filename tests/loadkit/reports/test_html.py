"""report.html from a recorded summary: verdict words, checks, charts, escaping, no network, size."""

from __future__ import annotations

import copy
import itertools
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from loadkit.reports.html import MAX_POINTS, downsample, render

FIXTURE = Path(__file__).parent.parent / "fixtures" / "sample_summary.json"


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside the verdict section."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    return tags


@pytest.fixture
def summary() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def failing(summary: dict[str, Any]) -> dict[str, Any]:
    s = copy.deepcopy(summary)
    s["verdict"], s["exit_code"] = "fail", 1
    check = next(c for c in s["checks"] if c["name"] == "latency_p99")
    check.update(ok=False, observed=612.0)
    s["latency_ms"]["p99"] = 612.0
    s["reasons"] = ["p99 latency 612 ms is above the 500 ms budget"]
    return s


def test_pass_verdict_sentence_and_checks(summary: dict[str, Any]) -> None:
    page = render(summary)
    sentence = "Ready: the service held 239 requests/s for 10 minutes with p99 412 ms, within every budget."
    assert sentence in page
    assert 'class="verdict pass"' in page
    rows = re.findall(
        r"<tr><td>([^<]+)</td><td>([^<]+)</td><td class=num>([^<]+)</td><td class=num>([^<]+)</td>", page
    )
    by_name = {name: (kind, observed, limit) for name, kind, observed, limit in rows}
    assert by_name["qps_min"] == ("service budget", "239 req/s", "200 req/s")
    assert by_name["error_rate_max"] == ("service budget", "0.04%", "0.10%")
    assert by_name["arrivals_on_time"] == ("generator health", "99.95%", "99.00%")
    assert by_name["audit"] == ("integrity", "0 violations", "0 violations")
    # budgets first, then integrity, then generator health
    kinds = [kind for kind, _, _ in by_name.values()]
    assert kinds == sorted(kinds, key=["service budget", "integrity", "generator health"].index)
    assert page.count("✔ pass") >= len(summary["checks"])
    assert "✘ fail" not in page


def cards(page: str) -> dict[str, tuple[str, str]]:
    found = re.findall(
        r'<div class="label">([^<]*)</div><div class="value">([^<]*)</div><div class="sub">([^<]*)</div>',
        page,
    )
    return {label: (value, sub) for label, value, sub in found}


def test_cards_compare_arrivals_with_the_plan_and_show_requests_apart(summary: dict[str, Any]) -> None:
    s = copy.deepcopy(summary)
    s["qps"] = {"target": 240.0, "held": 647.2, "arrivals_held": 231.4}  # journeys of ~2.8 requests
    shown = cards(render(s))
    assert shown["Arrivals/s sent"] == ("231", "planned 240")
    assert shown["Requests/s held"] == ("647", "successful requests")
    assert "QPS held" not in shown
    sentence = "held 647 requests/s for 10 minutes with p99 412 ms, 231 arrivals/s sent of 240 planned"
    assert sentence in render(s)
    # a summary from before qps.arrivals_held renders it as unknown
    assert cards(render(summary))["Arrivals/s sent"] == ("—", "planned 240")


def test_fail_verdict_names_the_missed_budget(summary: dict[str, Any]) -> None:
    page = render(failing(summary))
    n = len(summary["checks"])
    assert f"with p99 612 ms, but 1 of {n} checks failed." in page
    assert "Not ready: the service held 239 requests/s for 10 minutes with p99 612 ms" in page
    assert "p99 latency 612 ms is above the 500 ms budget" in page
    assert re.search(r"<td>latency_p99</td><td>service budget</td><td class=num>612 ms</td>.*?✘ fail", page)


def with_generator_series(summary: dict[str, Any]) -> dict[str, Any]:
    """The fixture (an older summary) with per-second generator health: unhealthy from 60 s to 90 s."""
    s = copy.deepcopy(summary)
    ts = s["timeseries"]
    n = len(ts["t"])
    ts["lag_p99_ms"] = [45.0 if 60 <= i < 90 else 2.0 for i in range(n)]
    ts["unhealthy"] = [1 if 60 <= i < 90 else 0 for i in range(n)]
    ts["late_generator"] = [200 if 60 <= i < 90 else 0 for i in range(n)]
    ts["late_users"] = [0] * n
    ts["late_target"] = [5 if i == 300 else 0 for i in range(n)]
    s["generator"].update(
        lag_p99_ms=45.0,
        lag_max_ms=180.0,
        unhealthy_s=30.0,
        late={"generator": 6000, "users": 0, "target": 5},
        unsent={"generator": 0, "users": 0, "target": 0},
        processes=[
            {"name": "local", "paces": True, "lag_p99_ms": 45.0, "lag_max_ms": 180.0, "cpu_max": 99.0,
             "cpu_avg": 60.0, "cpu_wait_max": 8.0, "unhealthy_s": 30.0, "free_min": 0},
        ],
    )  # fmt: skip
    return s


def test_generator_health_chart_and_table(summary: dict[str, Any]) -> None:
    page = render(with_generator_series(summary))
    tags = parse(page).tags
    # throughput, loop lag, late by cause, latency, errors
    assert len([a for t, a in tags if t == "svg"]) == 5
    assert "Load generator: event-loop lag p99 per second" in page
    assert "Late arrivals per second, by who made them late" in page
    marks = [a for t, a in tags if t == "rect" and a.get("class") == "unhealthy"]
    assert marks and all(float(a["width"]) >= 1 for a in marks)
    assert "limit 20 ms" in page
    assert "Event-loop lag p99 / max (worst process that sends arrivals)" in page and "45 ms / 180 ms" in page
    assert "... because every user was waiting on the target" in page
    assert "<h3>Each generator process</h3>" in page and "99% / 60%" in page
    # the charts come right under the throughput chart, on the same time axis
    order = [page.index(x) for x in ("Throughput:", "event-loop lag p99 per second", "Latency percentiles")]
    assert order == sorted(order)


def test_an_older_summary_has_no_generator_charts(summary: dict[str, Any]) -> None:
    page = render(summary)
    assert "event-loop lag p99 per second" not in page and "Each generator process" not in page


def test_inconclusive_and_aborted_verdicts(summary: dict[str, Any]) -> None:
    s = copy.deepcopy(summary)
    s.update(verdict="inconclusive", exit_code=2, reasons=["late arrivals 3.2% of scheduled (above 1%)"])
    page = render(s)
    assert "Inconclusive: the run cannot vouch for the service (see why below)" in page
    assert "late arrivals 3.2% of scheduled" in page
    s["checks"] = [*s["checks"], {"name": "generator_health", "ok": False, "kind": "health"}]
    assert "Inconclusive: the load generator, not the service, was the limit" in render(s)
    s.update(verdict="fail", abort={"reason": "error rate 40% above 20% for 30 s"})
    assert "Not ready: the run was stopped early (error rate 40% above 20% for 30 s)." in render(s)


def test_charts_have_series_and_budget_lines(summary: dict[str, Any]) -> None:
    page = render(summary)
    tags = parse(page).tags
    svgs = [a for t, a in tags if t == "svg"]
    assert len(svgs) == 3
    paths = [a for t, a in tags if t == "path"]
    assert {a["class"].split()[1] for a in paths} == {"c1", "c3", "c4", "ct"}
    assert all(a["d"].startswith("M") and a["d"].count("L") > 100 for a in paths)
    budgets = [a for t, a in tags if t == "line" and "budget" in (a.get("class") or "")]
    assert len(budgets) == 4  # QPS ≥ 200, p50, p95, p99
    # the p99 budget line (500 ms) sits above the p95 one (250 ms): SVG y grows downwards
    p95_y = next(float(a["y1"]) for a in budgets if "c3" in a["class"])
    p99_y = next(float(a["y1"]) for a in budgets if "c4" in a["class"] and float(a["y1"]) != p95_y)
    assert p99_y < p95_y
    assert "p99 ≤ 500 ms" in page and "QPS ≥ 200" in page
    assert any(t == "rect" and a.get("class") == "gate" for t, a in tags)


def test_throughput_chart_draws_the_arrivals_sent_when_the_summary_has_them(summary: dict[str, Any]) -> None:
    s = copy.deepcopy(summary)
    n = len(s["timeseries"]["t"])
    s["timeseries"]["arrivals"] = [80] * n
    page = render(s)
    paths = [a for t, a in parse(page).tags if t == "path"]
    assert {a["class"].split()[1] for a in paths} == {"c1", "c2", "c3", "c4", "ct"}
    assert "arrivals/s sent" in page and "planned arrivals/s" in page
    assert "arrivals/s sent" not in render(summary)  # an older summary: no line, rather than zeros


def test_every_string_from_the_summary_is_escaped(summary: dict[str, Any]) -> None:
    evil = '<script>alert("x")</script>'
    s = copy.deepcopy(summary)
    s["plan"]["name"] = evil
    s["endpoints"][evil] = s["endpoints"].pop("points.send")
    s["errors"][0]["error"] = evil
    s["reasons"] = [evil]
    s["checks"][0]["name"] = evil
    s["plan"]["raw"]["name"] = evil
    page = render(s)
    assert "<script" not in page.lower()
    assert page.count("&lt;script&gt;") >= 6


def test_no_network_references(summary: dict[str, Any]) -> None:
    page = render(summary)
    tags = parse(page).tags
    for tag, attrs in tags:
        assert tag not in ("script", "iframe", "img", "object", "embed"), tag
        for name in ("src", "href", "action", "srcset", "xlink:href"):
            value = attrs.get(name)
            assert value is None or value.startswith(("data:", "#")), (tag, name, value)
    styles = re.findall(r"<style>(.*?)</style>", page, flags=re.S)
    assert styles and not any(re.search(r"url\(|@import|https?:", css) for css in styles)
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def hour_long(summary: dict[str, Any], points: int) -> dict[str, Any]:
    s = copy.deepcopy(summary)
    ts = s["timeseries"]
    base = {k: ts[k] for k in ("qps", "errors", "target_qps", "p50", "p95", "p99")}
    ts["t"] = list(range(points))
    for key, values in base.items():
        ts[key] = [values[i % len(values)] for i in range(points)]
    return s


@pytest.mark.parametrize("points", [600, 3600])
def test_size_and_points_are_bounded(summary: dict[str, Any], points: int) -> None:
    page = render(hour_long(summary, points))
    assert len(page.encode()) < 2 * 1024 * 1024
    for attrs in (a for t, a in parse(page).tags if t == "path"):
        assert attrs["d"].count("M") + attrs["d"].count("L") <= MAX_POINTS


def test_downsample_keeps_latency_spikes_and_averages_rates() -> None:
    t = list(range(1000))
    p99 = [100.0] * 1000
    p99[333] = 900.0
    qps = [10.0, 30.0] * 500
    times, out = downsample(t, {"p99": p99, "qps": qps}, {"p99": max}, 100)
    assert len(times) == 100 and times[0] == 0
    assert max(v for v in out["p99"] if v is not None) == 900.0
    assert all(v == 20.0 for v in out["qps"])


def test_missing_figures_and_empty_series_render() -> None:
    page = render({})
    assert "No verdict was recorded" in page
    assert page.count("No data was recorded for this chart.") == 3
    assert "The plan was not recorded." in page
    partial = {
        "verdict": "pass",
        "qps": {"target": 240, "held": None},
        "latency_ms": {"p99": None},
        "checks": [{"name": "latency_p99", "ok": True, "observed": None, "limit": 500, "unit": "ms"}],
        "timeseries": {"t": [0, 1, 2], "qps": [None, 5, None], "p99": []},
        "endpoints": {"x": None},
        "audit": None,
    }
    page = render(partial)
    assert (
        "Ready: the service held an unknown rate for an unknown time with p99 —, within every budget." in page
    )
    assert "Mock platform audit" not in page


def test_figures_of_the_wrong_type_render_as_missing() -> None:
    page = render(
        {"verdict": "fail", "qps": 5, "checks": "x", "timeseries": [], "endpoints": [1], "plan": "p"}
    )
    assert "Not ready: the service held an unknown rate" in page
    with pytest.raises(TypeError, match="a summary must be a JSON object"):
        render([])  # type: ignore[arg-type]


def test_audit_reconciliation_and_plan_are_shown(summary: dict[str, Any]) -> None:
    page = render(summary)
    assert "Mock platform audit and reconciliation" in page
    assert "alipay.user.alipaypoint.send" in page
    assert "points budget JFB1" in page and "7,344,000 points sent" in page
    plan = re.search(r"<pre>(.*?)</pre>", page, flags=re.S)
    assert plan and "qps_min: 200" in plan.group(1) and "name: hold" in plan.group(1)
    s = copy.deepcopy(summary)
    s["audit"]["ok"] = False
    s["audit"]["violations"] = ["points JFB1: sent 10000100 exceeds budget 10000000"]
    assert "sent 10000100 exceeds budget" in render(s)


def test_a_stopped_run_reports_the_gate_time_it_ran_and_close_budget_labels_stay_apart(
    summary: dict[str, Any],
) -> None:
    s = copy.deepcopy(summary)
    s["window"]["end"] = "2026-11-24T08:02:06+00:00"  # stopped 36 s into a 600 s gate stage
    s["timeseries"]["p99"] = [v * 20 for v in s["timeseries"]["p99"]]  # budgets squeezed at the bottom
    page = render(s)
    assert "held 239 requests/s for 36 seconds" in page
    labels = [
        float(a["y"]) for t, a in parse(page).tags if t == "text" and "budget-label" in (a.get("class") or "")
    ]
    latency = sorted(labels[1:])  # the first label belongs to the QPS chart
    assert len(latency) == 3 and all(b - a >= 13 for a, b in itertools.pairwise(latency))


def test_trend_baseline_and_an_early_ending_are_shown(summary: dict[str, Any]) -> None:
    assert 'id="trend"' not in render(summary) and 'id="baseline"' not in render(summary)
    trend = [
        {"id": 1, "started_at": "2026-11-22T08:00:00+00:00", "verdict": "pass", "ending": None,
         "qps_held": 238.0, "p99_ms": 400.0, "run_dir": "a"},
        {"id": 2, "started_at": "2026-11-24T08:00:00+00:00", "verdict": "fail", "ending": "completed",
         "qps_held": 150.5, "p99_ms": 812.0, "run_dir": "b"},
    ]  # fmt: skip
    page = render(summary, trend)
    assert "Trend: the plan's last 2 runs" in page and "<td class=num>812 ms</td>" in page
    s = copy.deepcopy(summary)
    s["baseline"] = {
        "run": {"source": "history:2", "run_dir": None, "history_id": 2, "plan": "p", "started_at": "t",
                "verdict": "pass"},
        "max_regression": 0.1,
        "tolerance": {},
        "plan_differences": ["its stages differ"],
        "figures": [
            {"figure": "latency_p99_ms", "endpoint": None, "kind": "latency", "unit": "ms", "baseline": 400.0,
             "current": 612.0, "delta": 212.0, "delta_pct": 53.0, "noise": 3.0, "allowed": 40.0,
             "change": "worse"}
        ],
    }  # fmt: skip
    s.update(verdict="inconclusive", ending={"how": "interrupted", "at": "2026-11-24T08:05:00+00:00",
                                             "plan_s": 300.0, "detail": None})  # fmt: skip
    page = render(s)
    assert "Baseline history #2" in page and "Warning: the plans differ (its stages differ)." in page
    assert "✘ worse" in page and "+53.0%" in page
    assert "Ended early: the run was interrupted at 2026-11-24T08:05:00+00:00, 300 s into the plan." in page
    assert "Inconclusive: the run was interrupted before the plan&#x27;s end" in page
