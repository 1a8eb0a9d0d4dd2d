from loadkit.progress import closing_lines, progress_line


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
            "verdict": "pass",
        }
    )
    for part in (
        "hold 3/3 [gate]",
        "65s/600s",
        "239.5 req/s now, plan 240 arrivals/s",
        "p99 41 ms",
        "0.12%",
        "late 0.5%",
    ):
        assert part in line, (part, line)


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
