"""summary.md: the verdict, key figures, checks, endpoints, arrivals and reasons, no emoji."""

from __future__ import annotations

import re

from loadkit.measure.summary import build_summary
from loadkit.plan import parse_plan
from loadkit.reports.markdown import measure, render_markdown
from tests.loadkit.generator_figures import generator

PLAN = parse_plan(
    {
        "name": "jifenbao",
        "stages": [{"name": "hold", "duration": "60s", "qps": 240, "gate": True}],
        "budgets": {
            "qps_min": 200,
            "latency_ms": {"p99": 500},
            "error_rate_max": 0.001,
            "endpoints": {"points.send": {"latency_ms": {"p99": 400}}},
        },
    }
)


def summary(**res):
    base = {
        "qps": {"target": 240.0, "held": 647.2, "arrivals_held": 239.5},
        "latency_ms": {"p50": 41.5, "p90": 90.0, "p95": 120.0, "p99": 310.0, "max": 1250.0},
        "latency_ms_service": {"p50": 40.0, "p99": 300.0},
        "error_rate": 0.0004,
        "requests": {"count": 14334, "successes": 14328, "errors": 6, "expected_outcomes": 12},
        "arrivals": {"scheduled": 14400, "sent": 14390, "late": 20, "dropped": 10},
        "endpoints": {
            "points.send": {"requests": 9000, "errors": 6, "error_rate": 0.00067, "qps_held": 149.9,
                            "latency_ms": {"p50": 45.0, "p95": 130.0, "p99": 350.0, "max": 900.0}},
            "a|b": {"requests": 5334, "errors": 0, "error_rate": 0.0, "qps_held": 88.9, "latency_ms": {}},
        },
        "generator": generator(workers=2, cpu_max=72.0, cpu_avg=51.3),
        "errors": [{"name": "points.send", "error": "HTTP 503", "occurrences": 6}],
        "audit": {"ok": True, "violations": []},
    }  # fmt: skip
    base.update(res)
    return build_summary(PLAN, base, started_at=1795507200.0, finished_at=1795507260.0)


def test_passing_run():
    md = render_markdown(summary())
    assert md.startswith("# loadkit: jifenbao\n")
    assert "**Verdict: PASS" in md and "(exit code 0)" in md
    assert "## Why" not in md
    # a journey of several requests: arrivals are compared with the plan, requests stand apart
    assert "| Arrivals/s sent / planned | 239.5 / 240 |" in md
    assert "| Requests/s held (successes) | 647.2 |" in md
    assert "| qps_min | PASS | 647.2 req/s | 200 req/s |" in md
    assert "| Latency p99 (corrected / service) | 310 / 300 ms |" in md
    assert "| Latency max (corrected / service) | 1250 / — ms |" in md
    assert "| Error rate | 0.04% |" in md
    assert "| points.send latency_p99 | PASS | 350 ms | 400 ms |" in md
    assert "| error_rate_max | PASS | 0.04% | 0.10% |" in md
    assert "| points.send | 9000 | 6 | 0.07% | 149.9 | 45 | 130 | 350 | 900 |" in md
    assert "| a\\|b | 5334 |" in md  # pipes in names do not break the table
    assert "14400 scheduled, 14390 sent, 20 late, 10 dropped (99.8% on time)" in md
    assert "workers 2, lost 0" in md
    assert "by cause: the generator (event loop or CPU) 0, too few free users 0, the target" in md
    assert "| local | 3 | 12 | 70% / 55% | 4% | 0 | 3 |" in md
    assert "Mock platform audit: ok" in md
    assert "| points.send | HTTP 503 | 6 |" in md


def test_failing_run_lists_reasons_and_marks():
    doc = summary(
        qps={"target": 240.0, "held": 142.3},
        arrivals={"scheduled": 14400, "sent": 13000, "late": 0},
        generator=generator(unsent={"generator": 1400, "users": 0, "target": 0}),
        error_rate=0.01,
    )
    md = render_markdown(doc)
    assert "**Verdict: FAIL" in md and "(exit code 1)" in md
    assert "## Why\n\n- Held 142.3 QPS, below the 200 QPS budget\n" in md
    doubted = "- The failed latency/QPS budgets (qps_min) are inconclusive: the load generator was the limit"
    assert doubted in md
    assert "| qps_min | DOUBTFUL | 142.3 req/s | 200 req/s |" in md
    assert "| error_rate_max | FAIL | 1.00% | 0.10% |" in md
    assert re.search(r"\| arrivals_late_by_generator \| DOUBTFUL \| 9\.72% \| 1\.00% \|", md)


def test_inconclusive_and_integrity_sections():
    doc = summary(
        generator=generator(unhealthy_s=30.0),
        reconciliation={"ok": False, "problems": ["alipay.user.alipaypoint.send: users saw 5, ledger 4"]},
    )
    md = render_markdown(doc)
    assert "**Verdict: FAIL" in md
    assert "Reconciliation with the ledger: FAILED" in md and "  - alipay.user.alipaypoint.send" in md
    doc = summary(generator=generator(unhealthy_s=30.0))
    md = render_markdown(doc)
    assert "**Verdict: INCONCLUSIVE" in md and "| generator_health | DOUBTFUL | 30 s | 6 s |" in md
    assert "CPU ran + waited above 85%): 30 s of the gate window" in md


def test_empty_summary_renders_dashes_and_no_emoji():
    md = render_markdown({})
    assert "unnamed plan" in md and "No checks" in md and "not paced" in md
    assert all(ord(ch) < 0x2000 or ch == "—" for ch in md)  # no emoji or pictographs


def test_summary_without_arrivals_held_renders_a_dash():
    md = render_markdown({"qps": {"target": 240.0, "held": 238.9}})
    assert "| Arrivals/s sent / planned | — / 240 |" in md and "| Requests/s held (successes) | 238.9 |" in md


def test_measure_units():
    assert measure(0.0123, "fraction") == "1.23%"
    assert measure(612.0, "ms") == "612 ms"
    assert measure(None, "ms") == "—"
    assert measure(3, "") == "3"


TREND = [
    {"id": 3, "started_at": "2026-11-22T08:00:00+00:00", "verdict": "pass", "ending": "completed",
     "qps_held": 640.0, "p99_ms": 300.0, "run_dir": "reports/a"},
    {"id": 5, "started_at": "2026-11-24T08:00:00+00:00", "verdict": "inconclusive", "ending": "interrupted",
     "qps_held": 647.2, "p99_ms": 310.0, "run_dir": "reports/b"},
]  # fmt: skip


def test_the_plans_trend_how_the_run_ended_and_the_baseline():
    assert "## Trend" not in render_markdown(summary())
    md = render_markdown(summary(), TREND)
    assert "## Trend: the plan's last 2 runs" in md
    assert "| #5 | 2026-11-24T08:00:00+00:00 | inconclusive | interrupted | 647.2 | 310 |" in md
    ended = {"how": "interrupted", "at": "2026-11-24T08:01:00+00:00", "plan_s": 60.0, "detail": None}
    md = render_markdown(summary(ending=ended))
    assert "**Ended early: interrupted at 2026-11-24T08:01:00+00:00 (plan time 60 s).**" in md
    base = summary()
    run = {"source": "last-pass", "run_dir": "reports/a", "history_id": 3, "plan": "jifenbao",
           "started_at": base["started_at"], "verdict": "pass"}  # fmt: skip
    md = render_markdown(summary(baseline={"run": run, "summary": base, "max_regression": 0.1}))
    assert "## Against the baseline run" in md and "Baseline: reports/a (plan jifenbao" in md
    assert "| latency_p99_ms | 310 ms | 310 ms | +0.0% |" in md and "| same |" in md
