"""Prometheus metrics (prometheus-client), on a registry of the service's own (not the global
one), served as text at GET /metrics.

Label sets are small and fixed (routes by their pattern, results, platform methods and outcomes),
so the series count does not grow with traffic.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from campaign_service.resilience import BreakerState

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "campaign_http_requests", "HTTP requests answered", ["route", "result", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "campaign_http_request_seconds",
            "HTTP request latency, from the handler's start to its answer",
            ["route", "result"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        self.platform_calls = Counter(
            "campaign_platform_calls",
            "Platform calls by outcome (one per attempt)",
            ["method", "outcome"],
            registry=r,
        )
        self.platform_seconds = Histogram(
            "campaign_platform_call_seconds",
            "Platform call latency per attempt",
            ["method", "outcome"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        self.platform_inflight = Gauge(
            "campaign_platform_inflight",
            "Requests holding a bulkhead slot (platform calls in flight)",
            registry=r,
        )
        self.retries = Counter("campaign_platform_retries", "Platform call retries", ["method"], registry=r)
        self.breaker_state = Gauge(
            "campaign_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", registry=r
        )
        self.breaker_opened = Counter(
            "campaign_breaker_opened", "Times the circuit breaker opened", registry=r
        )
        self.wechat_breaker_state = Gauge(
            "campaign_wechat_breaker_state",
            "WeChat's circuit breaker: 0 closed, 1 half-open, 2 open",
            registry=r,
        )
        self.wechat_breaker_opened = Counter(
            "campaign_wechat_breaker_opened", "Times WeChat's circuit breaker opened", registry=r
        )
        self.grants = Counter(
            "campaign_grants_completed",
            "Grant rows completed, by kind and status",
            ["kind", "status"],
            registry=r,
        )

    def observe_request(self, route: str, result: str, status: int, seconds: float) -> None:
        self.requests.labels(route, result, str(status)).inc()
        self.request_seconds.labels(route, result).observe(seconds)

    def observe_call(self, method: str, outcome: str, seconds: float) -> None:
        self.platform_calls.labels(method, outcome).inc()
        self.platform_seconds.labels(method, outcome).observe(seconds)

    def breaker_changed(self, state: BreakerState) -> None:
        """The Alipay gateway's breaker."""
        self.breaker_state.set(int(state))
        if state is BreakerState.OPEN:
            self.breaker_opened.inc()

    def wechat_breaker_changed(self, state: BreakerState) -> None:
        self.wechat_breaker_state.set(int(state))
        if state is BreakerState.OPEN:
            self.wechat_breaker_opened.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
