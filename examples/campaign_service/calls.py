"""The bounds every platform call goes through, whichever platform: a timeout per attempt,
retries with backoff, the request's deadline over everything, a bulkhead and a circuit breaker.

`CallGuard.call()` never raises for platform trouble: it returns a CallResult saying what came
back (a verified reply) or why nothing did, how many attempts were sent, and whether one of them
may have taken effect without the service knowing (`maybe_done`), which is what decides between
a grant row that is `failed` and one that is `unknown`. Each platform (the Alipay gateway,
WeChat) has its own guard: one platform's outage must not open the other's breaker.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from campaign_service.metrics import Metrics
from campaign_service.resilience import Breaker, BreakerState, Bulkhead, backoff_s
from campaign_service.settings import PlatformTuning

__all__ = ["FAILURES", "MAYBE_DONE", "MIN_ATTEMPT_S", "Attempt", "CallGuard", "CallResult", "Outcome"]

MIN_ATTEMPT_S = 0.05  # an attempt with less time than this left is not worth sending
P = TypeVar("P")  # what an attempt sends (its payload)
R = TypeVar("R")  # what a verified answer is read into


class Outcome(StrEnum):
    """One attempt's outcome, or why none was sent (the `outcome` label of the metrics)."""

    OK = "ok"
    BUSINESS = "business"  # a definite answer about this user: sold out, limit reached, bad code...
    REJECTED = "rejected"  # any other definite refusal (bad parameters, permissions, signature...)
    TIMEOUT = "timeout"
    THROTTLED = "throttled"  # 40005, HTTP 429: the platform did nothing
    UNAVAILABLE = "unavailable"  # 20000, HTTP 5xx, WeChat -1, a connection broken after sending
    BAD_RESPONSE = "bad_response"  # unparseable, unsigned or a signature that does not verify
    CONNECT_FAILED = "connect_failed"  # never reached the platform
    BREAKER_OPEN = "breaker_open"
    BULKHEAD_FULL = "bulkhead_full"
    NO_TIME = "no_time"  # the request's deadline left no room for another attempt


# Attempts the platform may have carried out although the service never learnt the result.
MAYBE_DONE = frozenset({Outcome.TIMEOUT, Outcome.UNAVAILABLE, Outcome.BAD_RESPONSE})
# Outcomes that count against the breaker (the platform is in trouble, not the request).
FAILURES = MAYBE_DONE | {Outcome.THROTTLED, Outcome.CONNECT_FAILED}

# One attempt: (payload, seconds it may take) -> (outcome, the verified answer or None).
Attempt = Callable[[P, float], Awaitable[tuple[Outcome, R | None]]]


@dataclass(frozen=True, slots=True)
class CallResult(Generic[R]):
    outcome: Outcome  # the last attempt's, or why none was sent
    reply: R | None  # a verified answer (ok, business, rejected), else None
    attempts: int  # calls sent
    maybe_done: bool  # some attempt may have taken effect unseen
    retry_after_s: int  # for a "try later" answer


class CallGuard:
    """One per platform: its breaker, its bulkhead, and the retry loop around its attempts."""

    def __init__(
        self,
        tuning: PlatformTuning,
        metrics: Metrics,
        on_breaker_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.tuning = tuning
        self.metrics = metrics
        self.breaker = Breaker(
            tuning.breaker_failures, tuning.breaker_cooldown_s, on_change=on_breaker_change
        )
        self.bulkhead = Bulkhead(tuning.max_inflight)

    async def call(
        self,
        method: str,
        payload: P,
        attempt: Attempt[P, R],
        *,
        deadline: float,
        idempotent: bool,
        before_retry: Callable[[P], Awaitable[P]] | None = None,
    ) -> CallResult[R]:
        """Run `attempt` until it gives an answer, within `deadline` (loop time) and the retries.

        `idempotent`: the call may be repeated after an attempt that may have taken effect (true
        for sends with an idempotency key and for queries; false for a login, whose code is
        single-use). `before_retry(payload)` may replace the payload before a retry that follows a
        timeout (the planted bug uses it). Each attempt is recorded in the metrics by `attempt`.
        """
        if not self.bulkhead.try_acquire():
            self.metrics.platform_calls.labels(method, Outcome.BULKHEAD_FULL).inc()
            return CallResult(Outcome.BULKHEAD_FULL, None, 0, False, 1)
        self.metrics.platform_inflight.inc()
        loop = asyncio.get_running_loop()
        attempts, maybe_done, outcome = 0, False, Outcome.NO_TIME
        try:
            while True:
                wait = self.breaker.allow()
                if wait is not None:
                    self.metrics.platform_calls.labels(method, Outcome.BREAKER_OPEN).inc()
                    return CallResult(
                        Outcome.BREAKER_OPEN, None, attempts, maybe_done, max(1, math.ceil(wait))
                    )
                left = deadline - loop.time()
                if left < MIN_ATTEMPT_S:
                    self.breaker.record(failed=None)
                    outcome = Outcome.NO_TIME
                    break
                attempts += 1
                failed: bool | None = None
                try:
                    outcome, reply = await attempt(payload, min(self.tuning.timeout_s, left))
                    failed = outcome in FAILURES
                finally:
                    self.breaker.record(failed=failed)
                if reply is not None:
                    return CallResult(outcome, reply, attempts, maybe_done, 0)
                maybe_done = maybe_done or outcome in MAYBE_DONE
                if attempts > self.tuning.retries or (outcome in MAYBE_DONE and not idempotent):
                    break
                pause = backoff_s(attempts, self.tuning.backoff_s, self.tuning.backoff_max_s)
                if loop.time() + pause + MIN_ATTEMPT_S > deadline:
                    break
                await asyncio.sleep(pause)
                if before_retry is not None and outcome is Outcome.TIMEOUT:
                    payload = await before_retry(payload)
                self.metrics.retries.labels(method).inc()
        finally:
            self.bulkhead.release()
            self.metrics.platform_inflight.dec()
        return CallResult(outcome, None, attempts, maybe_done, 1)
