"""Two runs' key figures side by side: the one comparison behind `loadkit compare` and the
baseline gate (`loadkit run --baseline`).

A change counts only when it is larger than all of: a relative tolerance (10% of the baseline by
default), an absolute floor (2 ms of latency, 1 req/s, 0.1 point of error rate) and the runs' own
noise. Without the floor, two identical runs of a 2-ms service differ by a "worse" +0.3 ms; without
the noise, a short run's p99 moves more than any sane tolerance from one run to the next. What no
single run can show is how much a shared machine's load changes between runs: compare runs made
under the same conditions.

The noise of a figure is estimated from each run alone and combined as independent errors:
- QPS held: the spread of the per-second successes in the gate window (standard error of the mean);
- a latency percentile: the spread of that percentile over the 5-s windows of the gate, and the
  order-statistic error of a sample quantile (the latencies at the quantiles one standard error of
  the rank, sqrt(q(1-q)/n), either side, read off the run's own percentiles up to its max, with an
  exponential tail between them);
- the error rate: the binomial error sqrt(p(1-p)/n).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any, Literal, TypedDict

from loadkit.plan import Plan, PlanError, parse_plan

Change = Literal["worse", "better", "same", "unknown"]
Kind = Literal["qps", "latency", "error_rate"]
UNITS: dict[str, str] = {"qps": "req/s", "latency": "ms", "error_rate": "fraction"}
LATENCY_KEYS = ("p50", "p95", "p99")
ENDPOINT_LATENCY_KEYS = ("p95", "p99")
_QUANTILE = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
_KNOWN = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))  # and the max, in every summary
WINDOW_S = 5  # the latency time series holds one value per 5-s window, repeated for each second


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much a figure may move before it counts as a change (the largest of the four)."""

    relative: float = 0.10  # share of the baseline figure
    latency_ms: float = 2.0
    qps: float = 1.0
    error_rate: float = 0.001
    noise_sigmas: float = 3.0  # standard errors of the two runs' combined noise

    def floor(self, kind: Kind) -> float:
        return {"qps": self.qps, "latency": self.latency_ms, "error_rate": self.error_rate}[kind]

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Tolerance:
        fields = cls.__dataclass_fields__
        return cls(**{k: float(v) for k, v in (data or {}).items() if k in fields})


def parse_fraction(text: str | float) -> float:
    """ "10%" or "0.1" -> 0.1 (ValueError with a sentence when it is neither, or negative)."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"expected a share such as 10% or 0.1, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected a share such as 10% or 0.1, got {text!r}")
    return value


class Row(TypedDict):
    figure: str  # "qps_held", "latency_p99_ms", "points.send latency_p99_ms", ...
    endpoint: str | None
    kind: Kind
    unit: str
    baseline: float | None
    current: float | None
    delta: float | None
    delta_pct: float | None
    noise: float | None  # one standard error of the difference, from both runs' own spread
    allowed: float | None  # the change tolerated: max(relative, absolute floor, sigmas x noise)
    change: Change


def compare(
    current: Mapping[str, Any],
    baseline: Mapping[str, Any],
    tolerance: Tolerance = Tolerance(),
    *,
    current_gate: tuple[float, float] | None = None,
) -> list[Row]:
    """One row per key figure: held QPS, error rate, p50/p95/p99, and p95/p99 of every endpoint
    both runs have. `current` and `baseline` are summaries (or evidence: the same keys);
    `current_gate` is the current run's gate window in plan seconds when it carries no plan."""
    gates = (current_gate or gate_window(current), gate_window(baseline))
    runs = (current, baseline)
    qps_noise = [_qps_noise(r, g) for r, g in zip(runs, gates, strict=True)]
    rows = [
        _row("qps_held", None, "qps", runs, ("qps", "held"), qps_noise, tolerance),
        _row(
            "error_rate", None, "error_rate", runs, ("error_rate",), [_rate_noise(r) for r in runs], tolerance
        ),
    ]
    spread = {
        key: [_window_noise(r, g, key) for r, g in zip(runs, gates, strict=True)] for key in LATENCY_KEYS
    }
    for key in LATENCY_KEYS:
        noises = [_max(spread[key][i], _quantile_noise(runs[i], key)) for i in range(2)]
        rows.append(_row(f"latency_{key}_ms", None, "latency", runs, ("latency_ms", key), noises, tolerance))
    endpoints = [dict(r.get("endpoints") or {}) for r in runs]
    for name in sorted(set(endpoints[0]) & set(endpoints[1])):
        pair = (endpoints[0][name] or {}, endpoints[1][name] or {})
        for key in ENDPOINT_LATENCY_KEYS:
            # an endpoint has no time series of its own: the run's spread over time, in proportion
            noises = [
                _max(_quantile_noise(pair[i], key), _scaled(spread[key][i], pair[i], runs[i], key))
                for i in range(2)
            ]
            figure = f"{name} latency_{key}_ms"
            rows.append(_row(figure, name, "latency", pair, ("latency_ms", key), noises, tolerance))
    return rows


def _row(
    figure: str,
    endpoint: str | None,
    kind: Kind,
    runs: Sequence[Mapping[str, Any]],
    keys: tuple[str, ...],
    noises: Sequence[float | None],
    tolerance: Tolerance,
) -> Row:
    cur, base = (_get(r, keys) for r in runs)
    row: Row = {
        "figure": figure,
        "endpoint": endpoint,
        "kind": kind,
        "unit": UNITS[kind],
        "baseline": base,
        "current": cur,
        "delta": None,
        "delta_pct": None,
        "noise": _combined(noises),
        "allowed": None,
        "change": "unknown",
    }
    return _judge(row, tolerance)


def _judge(row: Row, tolerance: Tolerance) -> Row:
    base, cur = row["baseline"], row["current"]
    if base is None or cur is None:
        return row
    delta = cur - base
    noise = row["noise"] or 0.0
    allowed = max(
        tolerance.relative * abs(base), tolerance.floor(row["kind"]), tolerance.noise_sigmas * noise
    )
    bad = -delta if row["kind"] == "qps" else delta  # more QPS is better; more latency or errors worse
    change: Change = "worse" if bad > allowed else "better" if -bad > allowed else "same"
    return {
        **row,
        "delta": round(delta, 6),
        "delta_pct": round(delta / base * 100, 2) if base else None,
        "allowed": round(allowed, 6),
        "change": change,
    }


# --- noise ------------------------------------------------------------------------------------


def judged_gate(plan: Plan, results: Mapping[str, Any]) -> tuple[float, float]:
    """The part of `plan`'s gate window (plan seconds) that the results were judged on."""
    start, end = plan.gate_window()
    ran = (results.get("window") or {}).get("seconds")
    if isinstance(ran, int | float) and not isinstance(ran, bool):
        end = min(end, start + float(ran))
    return start, end


def gate_window(summary: Mapping[str, Any]) -> tuple[float, float] | None:
    """The gate window in plan seconds, from the run's own plan; cut to the seconds that ran."""
    raw = (summary.get("plan") or {}).get("raw")
    if not raw:
        return None
    try:
        return judged_gate(parse_plan(raw), summary)
    except (PlanError, TypeError, ValueError):
        return None


def _qps_noise(run: Mapping[str, Any], gate: tuple[float, float] | None) -> float | None:
    """Standard error of the mean of the successes per second in the gate window (a paced run
    holds its rate much more steadily than a Poisson count would)."""
    series = _gate_series(run, gate, "qps", step=1)
    return statistics.stdev(series) / math.sqrt(len(series)) if len(series) >= 2 else None


def _window_noise(run: Mapping[str, Any], gate: tuple[float, float] | None, key: str) -> float | None:
    """Standard error of the mean of the percentile over the gate's 5-s windows."""
    values = [v for v in _gate_series(run, gate, key, step=WINDOW_S) if v is not None]
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) >= 2 else None


def _gate_series(run: Mapping[str, Any], gate: tuple[float, float] | None, key: str, *, step: int) -> list:
    """The values of a time series in the gate window: one per second (step 1), or one per 5-s
    window that overlaps it (step 5: the series repeats each window's value for its seconds)."""
    if gate is None:
        return []
    series = (run.get("timeseries") or {}).get(key) or []
    start = math.floor(gate[0] / step) * step
    end = math.ceil(gate[1]) if step > 1 else math.floor(gate[1])  # no partial last second
    return [series[s] for s in range(start, min(end, len(series)), step)]


def _quantile_noise(figures: Mapping[str, Any], key: str) -> float | None:
    """Order-statistic error of a sample percentile: the latencies at the quantiles one standard
    error of the rank away, q +- sqrt(q(1-q)/n), read off the run's own percentiles (p50, p90,
    p95, p99 and the max, the slowest of n at about 1 - 1/2n); half their distance. A p99 of 200
    requests is the second-slowest of them: it may be anywhere up to the slowest."""
    lat = figures.get("latency_ms") or {}
    count = _count(figures)
    if not count:
        return None
    q = _QUANTILE[key]
    d = math.sqrt(q * (1 - q) / count)
    lo, hi = _value_at(lat, q - d, count), _value_at(lat, q + d, count)
    return (hi - lo) / 2 if lo is not None and hi is not None else None


def _value_at(latency: Mapping[str, Any], q: float, count: float) -> float | None:
    """The latency at quantile `q`, between the known percentiles: linear in -log(1 - q), the way
    an exponential tail runs (linear in q would put most of the top 1% near the max)."""
    points = [*_KNOWN, ("max", 1 - 0.5 / max(count, 1.0))]  # the slowest of n
    values = [(at, latency.get(k)) for k, at in points]
    known = [(-math.log(1 - at), float(v)) for at, v in values if isinstance(v, int | float)]
    if len(known) < 2:
        return None
    x = min(max(-math.log(1 - min(q, 1 - 1e-12)), known[0][0]), known[-1][0])
    for (x0, v0), (x1, v1) in pairwise(known):
        if x <= x1:
            return v0 + (v1 - v0) * (x - x0) / (x1 - x0) if x1 > x0 else v1
    return known[-1][1]


def _rate_noise(run: Mapping[str, Any]) -> float | None:
    rate = _get(run, ("error_rate",))
    count = _count(run)
    if rate is None or not count:
        return None
    return math.sqrt(max(0.0, rate * (1 - rate)) / count)


def _count(figures: Mapping[str, Any]) -> float | None:
    """Requests behind the figures: `requests.count` of a run, `requests` of an endpoint."""
    requests = figures.get("requests")
    if isinstance(requests, Mapping):
        return _get(requests, ("count",))
    return _get(figures, ("requests",))


def _scaled(noise: float | None, part: Mapping[str, Any], whole: Mapping[str, Any], key: str) -> float | None:
    """The run's noise of a percentile, in proportion to an endpoint's value of it."""
    mine, overall = _get(part, ("latency_ms", key)), _get(whole, ("latency_ms", key))
    return noise * mine / overall if noise is not None and mine is not None and overall else None


def _combined(noises: Sequence[float | None]) -> float | None:
    known = [n for n in noises if n is not None]
    return round(math.sqrt(sum(n * n for n in known)), 6) if known else None


def _max(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _get(doc: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    value: Any = doc
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


# --- plans ------------------------------------------------------------------------------------


def plan_differences(current: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[str]:
    """What differs between the two runs' plans (name, stages, arrivals, budgets), in words;
    empty when they ran the same plan. The host and the locustfile path may differ."""
    plans = [r.get("plan") or {} for r in (current, baseline)]
    out = []
    if plans[0].get("name") != plans[1].get("name"):
        out.append(f"plan {plans[0].get('name')!r} vs {plans[1].get('name')!r}")
    raws = [p.get("raw") or {} for p in plans]
    for key in ("stages", "arrivals", "budgets"):
        if raws[0].get(key) != raws[1].get(key):
            out.append(f"its {key} differ")
    return out
