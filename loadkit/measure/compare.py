"""Two runs' key figures side by side: the one comparison behind `loadkit compare` and the
baseline gate (`loadkit run --baseline`).

A change counts only when it is larger than all of: a relative tolerance (a share of the
baseline), an absolute floor (1 ms of latency, 1 req/s, 0.1 point of error rate) and the runs' own
noise. Without the floor, two identical runs of a 2-ms service differ by a "worse" +0.3 ms; without
the noise, a short run's p99 moves more than any sane tolerance from one run to the next.

The noise of a figure is estimated from each run alone and combined as independent errors:
- QPS held: the spread of the per-second successes in the gate window (standard error of the mean);
- a latency percentile: the spread of that percentile over the 5-s windows of the gate, and the
  order-statistic error of a sample quantile, sqrt(q(1-q)/n) / density, with the density read off
  the neighbouring percentiles (p95..p99 for p99);
- the error rate: the binomial error sqrt(p(1-p)/n).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypedDict

from loadkit.plan import Plan, PlanError, parse_plan

Change = Literal["worse", "better", "same", "unknown"]
Kind = Literal["qps", "latency", "error_rate"]
UNITS: dict[str, str] = {"qps": "req/s", "latency": "ms", "error_rate": "fraction"}
LATENCY_KEYS = ("p50", "p95", "p99")
ENDPOINT_LATENCY_KEYS = ("p95", "p99")
# (percentile, lower neighbour, its quantile, upper neighbour, its quantile): the density near a
# percentile is read off the percentiles around it
_NEIGHBOURS = {
    "p50": ("p50", 0.50, "p90", 0.90),
    "p95": ("p90", 0.90, "p99", 0.99),
    "p99": ("p95", 0.95, "p99", 0.99),
}
_QUANTILE = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
WINDOW_S = 5  # the latency time series holds one value per 5-s window, repeated for each second


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much a figure may move before it counts as a change (the largest of the four)."""

    relative: float = 0.05  # share of the baseline figure
    latency_ms: float = 1.0
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
    for key in LATENCY_KEYS:
        noises = [
            _max(_window_noise(r, g, key), _quantile_noise(r, key)) for r, g in zip(runs, gates, strict=True)
        ]
        rows.append(_row(f"latency_{key}_ms", None, "latency", runs, ("latency_ms", key), noises, tolerance))
    endpoints = [dict(r.get("endpoints") or {}) for r in runs]
    for name in sorted(set(endpoints[0]) & set(endpoints[1])):
        pair = (endpoints[0][name] or {}, endpoints[1][name] or {})
        for key in ENDPOINT_LATENCY_KEYS:
            noises = [_quantile_noise(ep, key) for ep in pair]
            rows.append(
                _row(
                    f"{name} latency_{key}_ms", name, "latency", pair, ("latency_ms", key), noises, tolerance
                )
            )
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
    """The values of a time series inside the gate window (whole windows only for step 5)."""
    if gate is None:
        return []
    series = (run.get("timeseries") or {}).get(key) or []
    start, end = math.ceil(gate[0] / step) * step, int(gate[1])
    return [series[s] for s in range(start, min(end, len(series)), step) if s + step <= end]


def _quantile_noise(figures: Mapping[str, Any], key: str) -> float | None:
    """Order-statistic standard error of a sample percentile: sqrt(q(1-q)/n) / density, the
    density read off the neighbouring percentiles."""
    lat = figures.get("latency_ms") or {}
    count = _count(figures)
    lo_key, lo_q, hi_key, hi_q = _NEIGHBOURS[key]
    lo, hi = lat.get(lo_key), lat.get(hi_key)
    if not count or lo is None or hi is None:
        return None
    q = _QUANTILE[key]
    return math.sqrt(q * (1 - q) / count) * max(0.0, hi - lo) / (hi_q - lo_q)


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
