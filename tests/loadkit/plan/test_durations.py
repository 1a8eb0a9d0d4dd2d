"""parse_duration / format_duration: the duration forms plans use, and clear refusals."""

from __future__ import annotations

import math

import pytest

from loadkit.plan.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h2m3s", 3723.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("2s250ms", 2.25),
        (" 10M ", 600.0),
        ("45", 45.0),
        ("0.25", 0.25),
        ("0s", 0.0),
        (12, 12.0),
        (2.5, 2.5),
    ],
)
def test_parses_the_forms_plans_use(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-5s", "≥ 0"),
        (-1, "≥ 0"),
        ("-3", "≥ 0"),
        ("10x", "units h, m, s, ms"),
        ("ten seconds", "units"),
        ("5d", "units"),
        ("30s1m", "largest first"),
        ("1m1m", "largest first"),
        ("s", "units"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        (True, "expected a duration"),
        (None, "expected a duration"),
        ([1, 2], "expected a duration"),
    ],
)
def test_refuses_bad_values_with_a_clear_message(value, fragment):
    with pytest.raises(ValueError, match="expected") as info:
        parse_duration(value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "500ms"),
        (1.5, "1.5s"),
        (30, "30s"),
        (90, "1m30s"),
        (600, "10m"),
        (3600, "1h"),
        (3723, "1h2m3s"),
        (59.9999, "1m"),
    ],
)
def test_formats_readably(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0.001, 0.75, 1, 42.5, 61, 3599, 3600, 7384.25])
def test_format_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
