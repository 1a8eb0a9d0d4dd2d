from loadkit.reports.progress import closing_lines, gate_countdown, progress_line


def test_progress_line_shows_stage_rate_latency_and_errors():
    line = progress_line(
        {
            "stage": {
                "index": 2,
                "count": 3,
                "name": "hold",
                "elapsed_s": 65,
                "remaining_s": 535,
                "qps_planned": 240,
                "gate": True,
            },
            "qps_now": 239.5,
            "qps": {"held": 238.0},
            "latency_ms": {"p99": 41.2},
            "error_rate": 0.0012,
            "arrivals": {"scheduled": 1000, "late": 5, "dropped": 0},
            "gate": {"started": True, "starts_in_s": 0.0},
            "verdict": "pass",
            "generator": {
                "lag_p99_ms": 3.4,
                "unhealthy_s": 0.0,
                "late": {"generator": 1, "users": 0, "target": 4},
            },
        }
    )
    assert line.endswith(
        "(held 238.0 req/s) | p99 41 ms | errors 0.12% | late 0.5% (generator 0.1%, target 0.4%)"
        " | gen lag p99 3 ms, unhealthy 0s | so far: pass"
    ), line
    for part in (
        "hold 3/3 [gate]",
        "65s/600s",
        "239.5 req/s now, plan 240 arrivals/s",
        "p99 41 ms",
        "0.12%",
        "late 0.5%",
    ):
        assert part in line, (part, line)


def test_before_the_gate_the_line_labels_the_run_so_far_and_gives_no_verdict():
    line = progress_line(
        {
            "stage": {"index": 0, "count": 3, "name": "warmup", "elapsed_s": 20, "remaining_s": 10},
            "qps_now": 272.6,
            "qps": {"held": 283.0},
            "latency_ms": {"p99": 204},
            "error_rate": 0.0,
            "arrivals": {"scheduled": 1000, "late": 2, "dropped": 0},
            "gate": {"started": False, "starts_in_s": 64.2},
            "checks": [{"name": "qps_min", "ok": False}],
        }
    )
    assert line.endswith(" | so far: gate starts in 1m5s"), line
    assert "| run so far: held 283.0 req/s, p99 204 ms, errors 0.00% |" in line
    assert "fail" not in line and "warmup 1/3 20s/30s" in line


def test_gate_countdown():
    assert gate_countdown({"gate": {"started": False, "starts_in_s": 0.2}}) == "1s"
    assert gate_countdown({"gate": {"started": False, "starts_in_s": None}}) == "0s"
    assert gate_countdown({"gate": {"started": True, "starts_in_s": 0.0}}) is None
    assert gate_countdown({}) is None  # a live() without the marker: judged as it says


def test_closing_lines_name_verdict_checks_and_report():
    lines = closing_lines(
        {
            "verdict": "fail",
            "exit_code": 1,
            "plan": {"name": "jfb"},
            "qps": {"held": 142.0, "target": 200},
            "window": {"seconds": 60},
            "latency_ms": {"p50": 5, "p95": 9, "p99": 20},
            "error_rate": 0.0,
            "checks": [{"name": "qps_min", "ok": False, "observed": 142.0, "limit": 200}],
            "reasons": ["Held 142.0 QPS, below the 200 QPS budget"],
        },
        "reports/x",
    )
    text = "\n".join(lines)
    assert "FAIL (exit 1)" in text and "[FAIL] qps_min" in text and "reports/x" in text
    assert "held 142.0 req/s; - arrivals/s sent (planned 200)" in text  # an old summary: no arrivals_held
    lines = closing_lines({"qps": {"held": 647.2, "target": 240, "arrivals_held": 239.5}}, None)
    assert "held 647.2 req/s; 239.5 arrivals/s sent (planned 240)" in lines[1]


def test_closing_lines_of_a_run_that_never_reached_its_gate_agree_with_its_checks():
    summary = {
        "verdict": "fail",
        "exit_code": 1,
        "plan": {"name": "jfb"},
        "ending": {
            "how": "aborted",
            "at": "2026-11-24T08:00:03+00:00",
            "plan_s": 3.3,
            "detail": "aborted: 100%",
        },
        "qps": {"held": None, "target": 240.0, "arrivals_held": None},
        "window": {"start": None, "end": None, "seconds": 0, "stages": []},
        "error_rate": None,
        "whole_run": {"requests": 163, "errors": 163},
        "checks": [{"name": "abort", "ok": False, "observed": "aborted: 100%", "limit": None}],
        "reasons": ["The run was stopped: 100%"],
    }
    lines = closing_lines(summary, None)
    assert (
        lines[1] == "  ended early: aborted at 2026-11-24T08:00:03+00:00 (3.3 s into the plan): aborted: 100%"
    )
    assert lines[2] == (
        "  plan jfb: the gate window never began (planned 240 arrivals/s there); whole run: 163 requests,"
        " errors 100.00%"
    )
    assert "errors 0.00%" not in "\n".join(lines) and "over 0 s" not in "\n".join(lines)
