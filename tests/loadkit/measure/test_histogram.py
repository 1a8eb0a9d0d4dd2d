"""LatencyHistogram: HDR accuracy, hdrh's percentile rule, wire round trip, merging, clamping."""

from __future__ import annotations

import math
import random

import pytest
from hdrh.histogram import HdrHistogram

from loadkit.measure.histogram import HIGHEST_US, HistogramDecodeError, LatencyHistogram


def _exact(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values) - 1e-9))
    return sorted_values[rank - 1]


def _sample(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [min(max(rng.lognormvariate(3.5, 1.5), 1.0), 600_000.0) for _ in range(n)]


def test_percentiles_within_a_tenth_of_a_percent_of_exact() -> None:
    values = _sample(100_000, seed=7)
    hist = LatencyHistogram()
    for v in values:
        hist.record_ms(v)
    ordered = sorted(values)
    assert hist.count == len(values)
    for p in (1, 10, 50, 75, 90, 95, 99, 99.9, 100):
        exact = _exact(ordered, p)
        got = hist.percentile_ms(p)
        assert got is not None
        assert abs(got - exact) <= 0.001 * exact, (p, got, exact)
    assert abs(hist.max_ms - ordered[-1]) <= 0.001 * ordered[-1]
    assert abs(hist.min_ms - ordered[0]) <= 0.001 * ordered[0]
    assert abs(hist.mean_ms - sum(values) / len(values)) <= 0.001 * (sum(values) / len(values))


def test_same_answers_as_hdrh() -> None:
    values = _sample(20_000, seed=3)
    ours = LatencyHistogram()
    theirs = HdrHistogram(1, HIGHEST_US, 3)
    for v in values:
        ours.record_ms(v)
        theirs.record_value(int(v * 1000 + 0.5))
    for p in (0, 0.5, 50, 90, 99, 99.99, 100):
        assert ours.percentile_ms(p) == theirs.get_value_at_percentile(p) / 1000
    assert ours.max_ms == theirs.get_max_value() / 1000
    assert ours.min_ms == theirs.get_min_value() / 1000
    assert ours.mean_ms == pytest.approx(theirs.get_mean_value() / 1000)


def test_encode_decode_round_trip_and_hdrh_can_read_it() -> None:
    hist = LatencyHistogram()
    for v in _sample(5_000, seed=11):
        hist.record_ms(v)
    encoded = hist.encode()
    assert isinstance(encoded, str)
    back = LatencyHistogram.decode(encoded)
    assert back.count == hist.count
    assert back.summary_ms() == hist.summary_ms()
    assert list(back.items()) == list(hist.items())
    foreign = HdrHistogram.decode(encoded)
    assert foreign.get_total_count() == hist.count
    assert foreign.get_value_at_percentile(99) / 1000 == hist.percentile_ms(99)


def test_add_equals_recording_everything_in_one() -> None:
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i, v in enumerate(_sample(10_000, seed=5)):
        (a if i % 3 else b).record_ms(v)
        both.record_ms(v)
    merged = LatencyHistogram.decode(a.encode())
    merged.add(LatencyHistogram.decode(b.encode()))
    assert merged.count == both.count
    assert list(merged.items()) == list(both.items())
    assert merged.summary_ms() == both.summary_ms()


def test_empty_summary_is_none_and_reset_empties() -> None:
    hist = LatencyHistogram()
    assert hist.summary_ms() == {"p50": None, "p90": None, "p95": None, "p99": None, "max": None}
    assert hist.percentile_ms(50) is None and hist.mean_ms is None and hist.min_ms is None
    assert LatencyHistogram.decode(hist.encode()).count == 0
    hist.record_ms(5)
    assert hist.summary_ms()["p50"] == pytest.approx(5.0, rel=0.001)
    hist.reset()
    assert hist.count == 0 and hist.max_ms is None


def test_out_of_range_values_are_clamped_never_raise() -> None:
    hist = LatencyHistogram()
    hist.record_ms(10 * 3600 * 1000)  # ten hours
    hist.record_ms(float("inf"))
    hist.record_ms(-3)
    hist.record_ms(float("nan"))
    assert hist.count == 4
    assert hist.min_ms == 0.0
    assert 3600 * 1000 <= hist.max_ms <= 3600 * 1000 * 1.001
    assert LatencyHistogram.decode(hist.encode()).summary_ms() == hist.summary_ms()


@pytest.mark.parametrize("garbage", ["", "not base64 !!", "SGVsbG8gd29ybGQ=", b"\x00\x01"])
def test_decoding_garbage_is_a_clear_error(garbage: str | bytes) -> None:
    with pytest.raises(HistogramDecodeError, match="not an encoded HDR histogram"):
        LatencyHistogram.decode(garbage)


def test_histoblobs_from_other_hdr_settings_are_read() -> None:
    wide = HdrHistogram(1, 10**13, 3)  # same layout, wider range: values above one hour clamp
    for v in (5_000, 7_000, 10**12):
        wide.record_value(v)
    hist = LatencyHistogram.decode(wide.encode())
    assert hist.count == 3 and hist.percentile_ms(50) == wide.get_value_at_percentile(50) / 1000
    assert hist.max_ms == pytest.approx(3600 * 1000, rel=0.001)
    coarse = HdrHistogram(1000, 10**9, 2)  # other layout: re-bucketed by value
    for v in range(10_000, 20_000, 10):
        coarse.record_value(v)
    hist = LatencyHistogram.decode(coarse.encode())
    assert hist.count == 1000
    assert hist.percentile_ms(50) == pytest.approx(coarse.get_value_at_percentile(50) / 1000, rel=0.01)
