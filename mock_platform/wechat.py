"""WeChat routes: GET /sns/jscode2session and POST /v3/marketing/favor/users/{openid}/coupons.

The business rules live in methods/wechat.py; this module speaks HTTP: jscode2session always
answers HTTP 200 with `errcode`/`errmsg` on failure, Pay v3 answers an HTTP status with
`{"code", "message"}` and a `Request-ID` header. Authorization headers are accepted as they come.
Injected faults map to each dialect: throttling is errcode 45011 / HTTP 429 FREQUENCY_LIMITED,
an injected error is errcode -1 / HTTP 500 SYSTEM_ERROR.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from mock_platform.errors import WeChatError
from mock_platform.gateway import Refusal, drop_connection, read_body
from mock_platform.methods.wechat import CODE2SESSION, SEND_COUPON, code2session, send_coupon

if TYPE_CHECKING:
    from mock_platform.app import MockState

_JSON = "application/json"
# (status, code, message) of an injected fault, per route and kind.
_INJECTED = {
    (CODE2SESSION, "throttle"): (200, "45011", "api minute-quota reach limit mustslower retry next minute"),
    (CODE2SESSION, "error"): (200, "-1", "system error"),
    (SEND_COUPON, "throttle"): (429, "FREQUENCY_LIMITED", "请求过于频繁 (injected throttle)"),
    (SEND_COUPON, "error"): (500, "SYSTEM_ERROR", "系统繁忙，请稍后重试 (injected error)"),
}


class WeChatRoutes:
    def __init__(self, state: MockState) -> None:
        self.state = state

    async def _fault(
        self, request: web.Request, method: str, app_key: str, now: float, started: float
    ) -> WeChatError | None:
        """None to serve normally, the WeChatError to answer with, or the connection is dropped."""
        decision = self.state.faults.decide(method, app_key, now)
        if decision is None:
            return None
        if decision.kind in ("throttle", "error"):
            return WeChatError(*_INJECTED[method, decision.kind])
        self.state.metrics.observe(method, decision.kind, time.perf_counter() - started)
        if decision.kind == "hang":
            await asyncio.sleep(decision.hang_s)
        drop_connection(request, reset=decision.kind == "reset")

    async def _latency(self, method: str) -> None:
        latency = self.state.faults.latency_s(method)
        if latency > 0:
            await asyncio.sleep(latency)

    async def jscode2session(self, request: web.Request) -> web.StreamResponse:
        started, now = time.perf_counter(), time.time()
        q = request.query
        appid = q.get("appid")
        error = await self._fault(request, CODE2SESSION, appid or "", now, started)
        if error is None:
            try:
                if q.get("grant_type") != "authorization_code":
                    raise WeChatError(200, "40002", "invalid grant_type: must be authorization_code")
                body: dict[str, Any] = code2session(
                    self.state.ledger, appid, q.get("secret"), q.get("js_code"), now
                )
                outcome = "0"
            except WeChatError as exc:
                error = exc
            await self._latency(CODE2SESSION)
        if error is not None:
            code = int(error.code) if error.code.lstrip("-").isdigit() else -1
            body, outcome = {"errcode": code, "errmsg": error.message}, error.code
        self.state.metrics.observe(CODE2SESSION, outcome, time.perf_counter() - started)
        return web.Response(body=orjson.dumps(body), content_type=_JSON)

    async def send_coupon(self, request: web.Request) -> web.StreamResponse:
        started, now = time.perf_counter(), time.time()
        status, outcome = 200, "200"
        try:
            raw = await read_body(request, self.state.config.max_body_bytes)
            payload = _json_body(raw)
            appid = payload.get("appid") if isinstance(payload, dict) else None
            fault = await self._fault(request, SEND_COUPON, str(appid or ""), now, started)
            if fault is not None:
                raise fault
            try:
                body: dict[str, Any] = send_coupon(
                    self.state.ledger, request.match_info["openid"], payload, now
                )
            finally:
                await self._latency(SEND_COUPON)
        except Refusal as exc:  # body over the size limit
            status, outcome = exc.status, f"{exc.status}/PARAM_ERROR"
            body = {"code": "PARAM_ERROR", "message": exc.sub_msg}
        except WeChatError as exc:
            status, outcome = exc.status, f"{exc.status}/{exc.code}"
            body = {"code": exc.code, "message": exc.message}
        self.state.metrics.observe(SEND_COUPON, outcome, time.perf_counter() - started)
        response = web.Response(status=status, body=orjson.dumps(body), content_type=_JSON)
        response.headers["Request-ID"] = secrets.token_hex(16)
        if status == 413:
            response.force_close()
        return response


def _json_body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WeChatError(400, "PARAM_ERROR", f"the body is not JSON: {exc}") from None


def add_routes(app: web.Application, state: MockState) -> None:
    routes = WeChatRoutes(state)
    app.router.add_get("/sns/jscode2session", routes.jscode2session)
    app.router.add_post("/v3/marketing/favor/users/{openid}/coupons", routes.send_coupon)
