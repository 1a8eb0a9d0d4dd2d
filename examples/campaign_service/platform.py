"""Calls to the Alipay gateway, bounded: a timeout per attempt, retries with backoff, the
request's deadline over everything, a bulkhead and a circuit breaker.

`call()` never raises for platform trouble: it returns a CallResult saying what came back (a
verified Reply) or why nothing did, how many attempts were sent, and whether one of them may have
taken effect without the service knowing (`maybe_done`), which is what decides between a grant
row that is `failed` and one that is `unknown`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp

from campaign_service.alipay import Reply, ResponseError, read_reply, signed_request
from campaign_service.metrics import Metrics
from campaign_service.resilience import Breaker, Bulkhead, backoff_s
from campaign_service.settings import Settings

__all__ = ["CallResult", "Outcome", "PlatformClient"]

log = logging.getLogger(__name__)

THROTTLED_CODE = "40005"  # isv.app-call-limited / isv.method-call-limited
UNKNOWN_CODE = "20000"  # isp.unknow-error: the platform does not know whether it happened
BUSINESS_CODE = "40004"
MIN_ATTEMPT_S = 0.05  # an attempt with less time than this left is not worth sending
_FORM = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}


class Outcome(StrEnum):
    """One attempt's outcome, or why none was sent (the `outcome` label of the metrics)."""

    OK = "ok"
    BUSINESS = "business"  # 40004 with a sub_code: sold out, limit reached, ...
    REJECTED = "rejected"  # any other definite refusal (40001-40003, 40006, 20001, ...)
    TIMEOUT = "timeout"
    THROTTLED = "throttled"  # 40005 or HTTP 429
    UNAVAILABLE = "unavailable"  # 20000, HTTP 5xx, a connection broken after sending
    BAD_RESPONSE = "bad_response"  # unparseable, unsigned or a signature that does not verify
    CONNECT_FAILED = "connect_failed"  # never reached the platform
    BREAKER_OPEN = "breaker_open"
    BULKHEAD_FULL = "bulkhead_full"
    NO_TIME = "no_time"  # the request's deadline left no room for another attempt


# Attempts the platform may have carried out although the service never learnt the result.
MAYBE_DONE = frozenset({Outcome.TIMEOUT, Outcome.UNAVAILABLE, Outcome.BAD_RESPONSE})
# Outcomes that count against the breaker (the platform is in trouble, not the request).
FAILURES = MAYBE_DONE | {Outcome.THROTTLED, Outcome.CONNECT_FAILED}

BeforeRetry = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class CallResult:
    outcome: Outcome  # the last attempt's, or why none was sent
    reply: Reply | None  # a verified answer (ok, business, rejected), else None
    attempts: int  # calls sent
    maybe_done: bool  # some attempt may have taken effect unseen
    retry_after_s: int  # for a "try later" answer


class PlatformClient:
    """One per service: the HTTP session to the gateway, the breaker and the bulkhead."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.tuning = settings.tuning
        self.metrics = metrics
        self.breaker = Breaker(
            self.tuning.breaker_failures, self.tuning.breaker_cooldown_s, on_change=metrics.breaker_changed
        )
        self.bulkhead = Bulkhead(self.tuning.max_inflight)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.tuning.max_inflight + 8, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        method: str,
        *,
        deadline: float,
        biz: dict[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool,
        before_retry: BeforeRetry | None = None,
    ) -> CallResult:
        """Call `method` until it answers, within `deadline` (loop time) and the retry budget.

        `idempotent`: the call may be repeated after an attempt that may have taken effect (true
        for sends with an idempotency key and for queries; false for oauth.token, whose auth code
        is single-use). `before_retry(biz)` may replace biz_content before a retry that follows
        a timeout (the planted bug uses it).
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
                    outcome, reply = await self._attempt(
                        method, biz, params, min(self.tuning.timeout_s, left)
                    )
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
                if before_retry is not None and biz is not None and outcome is Outcome.TIMEOUT:
                    biz = await before_retry(biz)
                self.metrics.retries.labels(method).inc()
        finally:
            self.bulkhead.release()
            self.metrics.platform_inflight.dec()
        return CallResult(outcome, None, attempts, maybe_done, 1)

    async def _attempt(
        self, method: str, biz: dict[str, Any] | None, params: Mapping[str, str] | None, timeout: float
    ) -> tuple[Outcome, Reply | None]:
        """One signed POST; (outcome, the verified reply when there is one)."""
        assert self._session is not None, "PlatformClient.start() was not awaited"
        s = self.settings
        started = time.perf_counter()
        query, body = signed_request(
            s.app_private_key, s.app_id, method, biz=biz, params=params, now=time.time()
        )
        reply: Reply | None = None
        try:
            async with asyncio.timeout(timeout):
                async with self._session.post(f"{s.gateway_url}?{query}", data=body, headers=_FORM) as resp:
                    raw = await resp.read()
                    status = resp.status
        except TimeoutError:
            outcome = Outcome.TIMEOUT
        except aiohttp.ClientConnectorError:
            outcome = Outcome.CONNECT_FAILED
        except (aiohttp.ClientError, OSError):
            outcome = Outcome.UNAVAILABLE
        else:
            if status == 429:
                outcome = Outcome.THROTTLED
            elif status != 200:
                outcome = Outcome.UNAVAILABLE
            else:
                try:
                    reply = read_reply(raw, method, s.platform_public_key)
                except ResponseError as exc:
                    log.warning("%s: refusing the platform's answer: %s", method, exc)
                    outcome = Outcome.BAD_RESPONSE
                else:
                    outcome = _classify(reply)
                    if outcome in FAILURES:
                        reply = None
        self.metrics.observe_call(method, outcome, time.perf_counter() - started)
        return outcome, reply


def _classify(reply: Reply) -> Outcome:
    if reply.ok:
        return Outcome.OK
    code = reply.code
    if code == THROTTLED_CODE:
        return Outcome.THROTTLED
    if code == UNKNOWN_CODE:
        return Outcome.UNAVAILABLE
    if code == BUSINESS_CODE and reply.sub_code:
        return Outcome.BUSINESS
    return Outcome.REJECTED
