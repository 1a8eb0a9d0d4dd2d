"""The ready line: formatted and parsed in one place."""

from __future__ import annotations

import pytest

from campaign_service.ready import ReadyLine, format_ready_line, parse_ready_line


@pytest.mark.parametrize(("host", "port"), [("127.0.0.1", 8080), ("::1", 4321), ("localhost", 1)])
def test_round_trip(host: str, port: int) -> None:
    line = format_ready_line(host, port)
    assert parse_ready_line(line + "\n") == ReadyLine(host, port)


def test_the_exact_text() -> None:
    assert format_ready_line("127.0.0.1", 8080) == "campaign_service listening on http://127.0.0.1:8080"
    assert format_ready_line("::1", 80) == "campaign_service listening on http://[::1]:80"
    assert (
        parse_ready_line("campaign_service listening on http://127.0.0.1:8080").url == "http://127.0.0.1:8080"
    )


@pytest.mark.parametrize(
    "line",
    [
        "",
        "mock_platform listening on http://127.0.0.1:8080",
        "campaign_service listening on https://127.0.0.1:8080",
        "campaign_service listening on http://127.0.0.1",
        "campaign_service listening on http://127.0.0.1:99999",
        "campaign_service listening on http://127.0.0.1:8080/api",
        "campaign_service listening on http://:8080",
        " campaign_service listening on http://127.0.0.1:8080",
        "2026-01-01 INFO campaign_service: stopping",
    ],
)
def test_other_lines_are_not_ready_lines(line: str) -> None:
    assert parse_ready_line(line) is None
