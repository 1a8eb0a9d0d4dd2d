"""Calls to WeChat: `GET /sns/jscode2session` (the mini-program login) and WeChat Pay v3's coupon
send, bounded by WeChat's own CallGuard (a timeout per attempt, retries, the deadline, a bulkhead
and a breaker of its own, so an Alipay outage does not stop WeChat claims or the other way round).

Why not the `wechatpayv3` package: it calls `requests` synchronously (a blocking call per
request, a new connection each time), which would stall this service's event loop; its signing
rules are few and are written out in wechatpay.py instead. The tests use the package to drive
the mock, where blocking is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import orjson

from campaign_service.calls import FAILURES, CallGuard, CallResult, Outcome
from campaign_service.metrics import Metrics
from campaign_service.settings import PlatformTuning, WeChatSettings
from campaign_service.wechatpay import AnswerError, PayReply, authorization, read_answer

__all__ = ["CODE2SESSION", "COUPON_SEND", "LoginReply", "WeChatClient"]

log = logging.getLogger(__name__)

CODE2SESSION = "wechat.jscode2session"
COUPON_SEND = "wechat.coupon.send"
# Pay v3 refusals about this user or this stock: answers to give, not errors (docs/wechat-apis.md §2).
PAY_BUSINESS = frozenset({"NOT_ENOUGH", "RULE_LIMIT"})
# jscode2session errcodes about this user's code: 40029 invalid, 40163 used, 45011 the user's
# minute quota, 40226 a high-risk user blocked (docs/wechat-apis.md §3). -1 is "busy".
LOGIN_BUSINESS = frozenset({40029, 40163, 45011, 40226})
LOGIN_BUSY = -1
_JSON = {"Accept": "application/json", "Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class LoginReply:
    """A jscode2session answer (HTTP 200 always): errcode 0 with openid/session_key, or an error."""

    errcode: int
    fields: dict[str, Any]

    @property
    def detail(self) -> str:
        return f"jscode2session errcode {self.errcode} {self.fields.get('errmsg', '')}".strip()


class WeChatClient:
    """One per service (when WeChat is configured): the HTTP session and WeChat's guard."""

    def __init__(self, settings: WeChatSettings, tuning: PlatformTuning, metrics: Metrics) -> None:
        self.settings = settings
        self.tuning = tuning
        self.metrics = metrics
        self.guard = CallGuard(tuning, metrics, metrics.wechat_breaker_changed)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.tuning.max_inflight + 8, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def code2session(self, js_code: str, *, deadline: float) -> CallResult[LoginReply]:
        """The login: not repeated after an attempt that may have arrived (the code is single-use)."""
        return await self.guard.call(
            CODE2SESSION, js_code, self._login_attempt, deadline=deadline, idempotent=False
        )

    async def send_coupon(
        self,
        openid: str,
        body: dict[str, Any],
        *,
        deadline: float,
        before_retry: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
    ) -> CallResult[PayReply]:
        """`POST /v3/marketing/favor/users/{openid}/coupons`, repeated with the same body (the
        same out_request_no: WeChat Pay replays instead of sending twice)."""

        async def attempt(payload: dict[str, Any], timeout: float) -> tuple[Outcome, PayReply | None]:
            return await self._send_attempt(openid, payload, timeout)

        return await self.guard.call(
            COUPON_SEND, body, attempt, deadline=deadline, idempotent=True, before_retry=before_retry
        )

    async def _login_attempt(self, js_code: str, timeout: float) -> tuple[Outcome, LoginReply | None]:
        s = self.settings
        query = urlencode(
            {"appid": s.appid, "secret": s.secret, "js_code": js_code, "grant_type": "authorization_code"}
        )
        started = time.perf_counter()
        reply: LoginReply | None = None
        url = f"{s.base_url}/sns/jscode2session?{query}"
        status, raw, _headers, outcome = await self._http("GET", url, None, {}, timeout)
        if outcome is None:
            if status == 429:
                outcome = Outcome.THROTTLED
            elif status != 200:
                outcome = Outcome.UNAVAILABLE
            else:
                reply = _login_reply(raw)
                if reply is None:
                    log.warning("%s: the answer is not a JSON object with an integer errcode", CODE2SESSION)
                    outcome = Outcome.BAD_RESPONSE
                elif reply.errcode == 0:
                    outcome = Outcome.OK
                elif reply.errcode == LOGIN_BUSY:
                    outcome, reply = Outcome.UNAVAILABLE, None
                else:
                    outcome = Outcome.BUSINESS if reply.errcode in LOGIN_BUSINESS else Outcome.REJECTED
        self.metrics.observe_call(CODE2SESSION, outcome, time.perf_counter() - started)
        return outcome, reply

    async def _send_attempt(
        self, openid: str, body: dict[str, Any], timeout: float
    ) -> tuple[Outcome, PayReply | None]:
        s = self.settings
        url = f"{s.pay_url}/v3/marketing/favor/users/{quote(openid, safe='')}/coupons"
        raw_body = orjson.dumps(body)
        headers = {
            **_JSON,
            "Authorization": authorization(
                s.private_key,
                mchid=s.mchid,
                serial_no=s.serial_no,
                method="POST",
                target=urlsplit(url).path,
                body=raw_body,
                now=time.time(),
            ),
        }
        if s.public_key_id is not None:
            headers["Wechatpay-Serial"] = s.public_key_id  # the public-key mode names its key
        started = time.perf_counter()
        reply: PayReply | None = None
        status, raw, answer_headers, outcome = await self._http("POST", url, raw_body, headers, timeout)
        if outcome is None:
            try:
                reply = read_answer(
                    status,
                    answer_headers,
                    raw,
                    key=s.platform_public_key,
                    key_id=s.public_key_id,
                    now=time.time(),
                )
            except AnswerError as exc:
                log.warning("%s: refusing WeChat Pay's answer: %s", COUPON_SEND, exc)
                outcome = Outcome.BAD_RESPONSE
            else:
                if reply is None:
                    outcome = Outcome.THROTTLED if status == 429 else Outcome.UNAVAILABLE
                elif reply.ok:
                    outcome = Outcome.OK
                else:
                    outcome = Outcome.BUSINESS if reply.code in PAY_BUSINESS else Outcome.REJECTED
                if outcome in FAILURES:
                    reply = None
        self.metrics.observe_call(COUPON_SEND, outcome, time.perf_counter() - started)
        return outcome, reply

    async def _http(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes, Mapping[str, str], Outcome | None]:
        """(status, body, headers, None) for an answer; the outcome when there was none. Errors
        are never logged with the URL: the login's query carries the AppSecret."""
        assert self._session is not None, "WeChatClient.start() was not awaited"
        try:
            async with asyncio.timeout(timeout):
                async with self._session.request(method, url, data=body, headers=headers) as resp:
                    return resp.status, await resp.read(), resp.headers.copy(), None
        except TimeoutError:
            return 0, b"", {}, Outcome.TIMEOUT
        except aiohttp.ClientConnectorError:
            return 0, b"", {}, Outcome.CONNECT_FAILED
        except (aiohttp.ClientError, OSError):
            return 0, b"", {}, Outcome.UNAVAILABLE


def _login_reply(raw: bytes) -> LoginReply | None:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    errcode = doc.get("errcode", 0)  # absent on success since a change; 0 in older answers
    if isinstance(errcode, bool) or not isinstance(errcode, int):
        return None
    return LoginReply(errcode, doc)
