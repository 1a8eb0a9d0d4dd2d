"""Calls to the Alipay gateway, bounded by the gateway's CallGuard (calls.py): a timeout per
attempt, retries with backoff, the request's deadline over everything, a bulkhead and a circuit
breaker. `call()` never raises for platform trouble; its CallResult says what came back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from campaign_service.alipay import Reply, ResponseError, read_reply, signed_request
from campaign_service.calls import FAILURES, CallGuard, CallResult, Outcome
from campaign_service.metrics import Metrics
from campaign_service.settings import Settings

__all__ = ["PlatformClient"]

log = logging.getLogger(__name__)

THROTTLED_CODE = "40005"  # isv.app-call-limited / isv.method-call-limited
UNKNOWN_CODE = "20000"  # isp.unknow-error: the platform does not know whether it happened
BUSINESS_CODE = "40004"
_FORM = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}

BeforeRetry = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class PlatformClient:
    """One per service: the HTTP session to the gateway and its guard (breaker, bulkhead)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.tuning = settings.tuning
        self.metrics = metrics
        self.guard = CallGuard(self.tuning, metrics, metrics.breaker_changed)
        self._url = settings.gateway_url + ("&" if "?" in settings.gateway_url else "?")
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
    ) -> CallResult[Reply]:
        """Call `method` until it answers, within `deadline` (loop time) and the retry budget.

        `idempotent`: the call may be repeated after an attempt that may have taken effect (true
        for sends with an idempotency key and for queries; false for oauth.token, whose auth code
        is single-use). `before_retry(biz)` may replace biz_content before a retry that follows
        a timeout (the planted bug uses it).
        """

        async def attempt(payload: dict[str, Any] | None, timeout: float) -> tuple[Outcome, Reply | None]:
            return await self._attempt(method, payload, params, timeout)

        async def renumber(payload: dict[str, Any] | None) -> dict[str, Any] | None:
            return payload if payload is None or before_retry is None else await before_retry(payload)

        return await self.guard.call(
            method,
            biz,
            attempt,
            deadline=deadline,
            idempotent=idempotent,
            before_retry=renumber if before_retry is not None else None,
        )

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
                async with self._session.post(self._url + query, data=body, headers=_FORM) as resp:
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
