"""compare(): two runs' key figures side by side, with relative, absolute and noise tolerances."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from loadkit.measure.compare import Tolerance, compare, gate_window, parse_fraction, plan_differences

RAW = {
    "name": "c",
    "stages": [
        {"name": "warmup", "duration": "10s", "qps": 50},
        {"name": "hold", "duration": "20s", "qps": 50, "gate": True},
    ],
    "budgets": {"qps_min": 45},
}


def run(
    p99: float = 2.1, held: float = 50.0, error_rate: float = 0.0, spread: float = 0.0, count: int = 1000
) -> dict[str, Any]:
    """A summary-shaped run: 30 s, gate 10..30 s; `spread` makes its 5-s p99 windows vary."""
    n = 30
    p99s = [p99 + (spread if (s // 5) % 2 else -spread) for s in range(n)]
    latency = {"p50": p99 * 0.4, "p90": p99 * 0.7, "p95": p99 * 0.85, "p99": p99, "max": p99 * 1.5}
    return {
        "plan": {"name": "c", "raw": copy.deepcopy(RAW)},
        "window": {"seconds": 20.0},
        "qps": {"held": held},
        "error_rate": error_rate,
        "requests": {"count": count},
        "latency_ms": latency,
        "endpoints": {"home": {"requests": count, "latency_ms": dict(latency)}},
        "timeseries": {"qps": [held] * n, "p50": [p99 * 0.4] * n, "p95": [p99 * 0.85] * n, "p99": p99s},
    }


DEFAULT = Tolerance()


def rows_of(current: dict, baseline: dict, tolerance: Tolerance = DEFAULT) -> dict[str, dict]:
    return {r["figure"]: r for r in compare(current, baseline, tolerance)}


def test_identical_runs_are_the_same_on_every_figure():
    current = run()
    current["endpoints"]["only-here"] = {"requests": 5, "latency_ms": {"p99": 1.0}}
    rows = rows_of(current, run())
    assert list(rows) == [
        "qps_held",
        "error_rate",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "home latency_p95_ms",
        "home latency_p99_ms",
    ]  # endpoints both runs have, only
    assert {r["change"] for r in rows.values()} == {"same"}


def test_a_fraction_of_a_millisecond_is_not_worse():
    # the case: +0.07 to +0.39 ms on a 2-ms service was called "worse" by a flat 5%
    row = rows_of(run(p99=2.49), run(p99=2.1))["latency_p99_ms"]
    assert row["change"] == "same" and row["allowed"] >= 1.0
    assert row["delta"] == pytest.approx(0.39) and row["delta_pct"] == pytest.approx(18.57)


def test_a_real_change_is_worse_or_better_by_direction():
    rows = rows_of(run(p99=30.0, held=40.0, error_rate=0.01), run(p99=20.0, held=50.0))
    assert rows["latency_p99_ms"]["change"] == "worse"
    assert rows["home latency_p99_ms"]["change"] == "worse"
    assert rows["qps_held"]["change"] == "worse"  # less QPS held is worse
    assert rows["error_rate"]["change"] == "worse"
    better = rows_of(run(p99=20.0, held=50.0), run(p99=30.0, held=40.0, error_rate=0.01))
    assert {better[k]["change"] for k in ("latency_p99_ms", "qps_held", "error_rate")} == {"better"}


def test_a_change_within_the_runs_own_noise_is_the_same():
    # p99 swings +-5 ms from one 5-s window to the next: a 4-ms change (20%) is within that noise
    big = 20_000
    noisy = rows_of(run(p99=24.0, spread=5.0, count=big), run(p99=20.0, spread=5.0, count=big))
    assert noisy["latency_p99_ms"]["noise"] > 1.0 and noisy["latency_p99_ms"]["change"] == "same", noisy
    steady = rows_of(run(p99=24.0, count=big), run(p99=20.0, count=big))["latency_p99_ms"]
    assert steady["change"] == "worse", steady
    # the p99 of few requests is one of the slowest few: as noisy as the tail is long
    few = rows_of(run(p99=24.0, count=200), run(p99=20.0, count=200))["latency_p99_ms"]
    assert few["change"] == "same" and few["noise"] > steady["noise"], (few, steady)


def test_the_tolerance_is_configurable():
    strict = Tolerance(relative=0.0, latency_ms=0.1, noise_sigmas=0.0)
    assert rows_of(run(p99=2.49), run(p99=2.1), strict)["latency_p99_ms"]["change"] == "worse"
    loose = Tolerance(relative=0.6)
    assert rows_of(run(p99=30.0), run(p99=20.0), loose)["latency_p99_ms"]["change"] == "same"


def test_missing_figures_are_unknown_never_worse():
    current = run()
    current["latency_ms"]["p99"] = None
    row = rows_of(current, run())["latency_p99_ms"]
    assert row["change"] == "unknown" and row["delta"] is None


def test_zero_baseline_error_rate_has_an_absolute_floor_and_a_binomial_noise():
    big = 100_000
    assert rows_of(run(error_rate=0.0005, count=big), run(count=big))["error_rate"]["change"] == "same"
    row = rows_of(run(error_rate=0.002, count=big), run(count=big))["error_rate"]
    assert row["change"] == "worse" and row["delta_pct"] is None
    # 2 errors in 1000 requests against none: within the noise of so few
    assert rows_of(run(error_rate=0.002), run())["error_rate"]["change"] == "same"


def test_gate_window_is_the_judged_part_of_the_plans_gate():
    assert gate_window(run()) == (10.0, 30.0)
    short = run()
    short["window"]["seconds"] = 4.0  # interrupted 4 s into the gate
    assert gate_window(short) == (10.0, 14.0)
    assert gate_window({"plan": {"raw": {"name": "broken"}}}) is None


def test_plan_differences_in_words():
    assert plan_differences(run(), run()) == []
    other = run()
    other["plan"]["name"] = "d"
    other["plan"]["raw"]["stages"][1]["qps"] = 60
    assert plan_differences(run(), other) == ["plan 'c' vs 'd'", "its stages differ"]


def test_parse_fraction():
    assert parse_fraction("10%") == pytest.approx(0.1)
    assert parse_fraction("0.25") == 0.25
    for bad in ("ten", "-5%", "nan"):
        with pytest.raises(ValueError, match="expected a share"):
            parse_fraction(bad)


def test_tolerance_round_trips_as_a_dict():
    tolerance = Tolerance(relative=0.1, latency_ms=2.0)
    assert Tolerance.from_dict(tolerance.as_dict()) == tolerance
    assert Tolerance.from_dict(None) == Tolerance()
