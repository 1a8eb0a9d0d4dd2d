"""Per-method call counts, outcomes and latency, for /admin/stats and /metrics.

The hot path only bumps ints in plain dicts (no locks, no label lookups); prometheus-client
reads them at scrape time through a custom collector on a per-app registry, so several mocks in
one process (tests) never share or clash on metrics.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

# Upper bounds in seconds; the last bucket is open-ended.
BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class MethodMetrics:
    __slots__ = ("buckets", "calls", "outcomes", "total_s")

    def __init__(self) -> None:
        self.calls = 0
        self.total_s = 0.0
        self.outcomes: dict[str, int] = {}
        self.buckets = [0] * (len(BUCKETS_S) + 1)

    def quantile(self, q: float) -> float:
        """Seconds at quantile `q`, interpolated linearly inside its bucket."""
        rank = q * self.calls
        seen = 0
        for i, count in enumerate(self.buckets):
            if count and seen + count >= rank:
                lo = BUCKETS_S[i - 1] if i else 0.0
                hi = BUCKETS_S[i] if i < len(BUCKETS_S) else BUCKETS_S[-1] * 2
                return lo + (hi - lo) * max(0.0, rank - seen) / count
            seen += count
        return 0.0

    def as_dict(self) -> dict[str, object]:
        mean = self.total_s / self.calls if self.calls else 0.0
        return {
            "calls": self.calls,
            "outcomes": dict(sorted(self.outcomes.items())),
            "latency_ms": {
                "count": self.calls,
                "mean": round(mean * 1000, 3),
                "p50": round(self.quantile(0.50) * 1000, 3),
                "p99": round(self.quantile(0.99) * 1000, 3),
            },
        }


class Metrics:
    """One per app. `observe(method, outcome, seconds)` after each answered (or dropped) call."""

    def __init__(self) -> None:
        self.methods: dict[str, MethodMetrics] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, method: str, outcome: str, seconds: float) -> None:
        m = self.methods.get(method)
        if m is None:
            m = self.methods[method] = MethodMetrics()
        m.calls += 1
        m.total_s += seconds
        m.outcomes[outcome] = m.outcomes.get(outcome, 0) + 1
        m.buckets[bisect_left(BUCKETS_S, seconds)] += 1

    def reset(self) -> None:
        self.methods = {}

    def stats(self) -> dict[str, object]:
        return {"methods": {name: m.as_dict() for name, m in sorted(self.methods.items())}}

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """prometheus-client Collector protocol: snapshot the counters at scrape time."""
        calls = CounterMetricFamily(
            "mock_platform_calls",
            "Calls answered, by method and outcome (code or code/sub_code)",
            labels=["method", "outcome"],
        )
        latency = HistogramMetricFamily(
            "mock_platform_latency_seconds",
            "Time from receipt to answer, injected latency included",
            labels=["method"],
        )
        for name, m in sorted(self.methods.items()):
            for outcome, count in sorted(m.outcomes.items()):
                calls.add_metric([name, outcome], count)
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, BUCKETS_S), "+Inf"), m.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([name], buckets, m.total_s)
        yield calls
        yield latency
