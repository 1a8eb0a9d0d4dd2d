"""WeChat routes: GET /sns/jscode2session and the WeChat Pay v3 routes (certificates, coupon
stocks, coupons), over the handlers in methods/wechat.py.

jscode2session always answers HTTP 200, with `errcode`/`errmsg` on failure. Pay v3 answers an
HTTP status with `{"code", "message"}` and a `Request-ID` header; a request with an
Authorization header is verified (401 SIGN_ERROR otherwise, before anything changes), and every
answer to a signed request (every answer with --sign-responses) carries the platform's
Wechatpay-* signature headers, in the public-key or the certificate mode (wxpay.py). Without an
Authorization header a call is taken as unsigned load traffic unless --strict, as on the Alipay
side. Injected faults map to each dialect: throttling is errcode 45011 / HTTP 429
FREQUENCY_LIMITED, an injected error is errcode -1 / HTTP 500 SYSTEM_ERROR.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from mock_platform.errors import WeChatError
from mock_platform.gateway import Refusal, drop_connection, read_body
from mock_platform.methods import WECHAT, Call
from mock_platform.methods.wechat import (
    CODE2SESSION,
    CREATE_STOCK,
    PAUSE_STOCK,
    QUERY_COUPON,
    QUERY_STOCK,
    SEND_COUPON,
    START_STOCK,
)
from mock_platform.wxpay import SignError, parse_authorization, verify_request

if TYPE_CHECKING:
    from mock_platform.app import MockState
    from mock_platform.model import WxMerchant

log = logging.getLogger(__name__)

CERTIFICATES = "wechat.certificates"
_JSON = "application/json; charset=utf-8"
# The Pay v3 routes: (HTTP method, path, the handler's name).
PAY_ROUTES = (
    ("GET", "/v3/certificates", CERTIFICATES),
    ("POST", "/v3/marketing/favor/coupon-stocks", CREATE_STOCK),
    ("POST", "/v3/marketing/favor/stocks/{stock_id}/start", START_STOCK),
    ("POST", "/v3/marketing/favor/stocks/{stock_id}/pause", PAUSE_STOCK),
    ("GET", "/v3/marketing/favor/stocks/{stock_id}", QUERY_STOCK),
    ("POST", "/v3/marketing/favor/users/{openid}/coupons", SEND_COUPON),
    ("GET", "/v3/marketing/favor/users/{openid}/coupons/{coupon_id}", QUERY_COUPON),
)
_THROTTLED = WeChatError(429, "FREQUENCY_LIMITED", "请求过于频繁 (injected throttle)")
_INJECTED_ERROR = WeChatError(500, "SYSTEM_ERROR", "系统繁忙，请稍后重试 (injected error)")
_LOGIN_INJECTED = {
    "throttle": WeChatError(200, "45011", "api minute-quota reach limit mustslower retry next minute"),
    "error": WeChatError(200, "-1", "system error"),
}


class WeChatRoutes:
    def __init__(self, state: MockState) -> None:
        self.state = state

    async def _fault(
        self, request: web.Request, method: str, key: str, now: float, started: float
    ) -> str | None:
        """None to serve normally, "throttle" or "error" to answer with, or the connection is dropped."""
        decision = self.state.faults.decide(method, key, now)
        if decision is None:
            return None
        if decision.kind in ("throttle", "error"):
            return decision.kind
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
        params = dict(request.query)
        injected = await self._fault(request, CODE2SESSION, params.get("appid", ""), now, started)
        body: dict[str, Any]
        try:
            if injected is not None:
                raise _LOGIN_INJECTED[injected]
            try:
                body = WECHAT[CODE2SESSION](self.state.ledger, Call("", CODE2SESSION, params, {}, now))
                outcome = "0"
            finally:
                await self._latency(CODE2SESSION)
        except WeChatError as error:
            code = int(error.code) if error.code.lstrip("-").isdigit() else -1
            body, outcome = {"errcode": code, "errmsg": error.message}, error.code
        self.state.metrics.observe(CODE2SESSION, outcome, time.perf_counter() - started)
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def pay_handler(self, method: str) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.pay(request, method)

        return handle

    async def pay(self, request: web.Request, method: str) -> web.StreamResponse:
        """One Pay v3 call: body, signature, JSON, faults, handler, latency, signed answer, metrics."""
        state = self.state
        started, now = time.perf_counter(), time.time()
        merchant: WxMerchant | None = None
        signed = False
        status, result = 200, None
        try:
            raw = await read_body(request, state.config.max_body_bytes)
            header = request.headers.get("Authorization")
            if header is not None:
                signed = True
                auth = parse_authorization(header)
                merchant = state.ledger.wx_merchants.get(auth.mchid)
                verify_request(merchant, auth, request.method, request.raw_path, raw, now)
            elif state.config.strict:
                raise SignError("the Authorization header is missing")
            payload = _json_body(raw) if request.method == "POST" else {}  # a GET's body is ignored
            params = {**request.query, **request.match_info}
            key = (
                merchant.mchid
                if merchant
                else str(payload.get("stock_creator_mchid") or payload.get("appid") or "")
            )
            injected = await self._fault(request, method, key, now, started)
            if injected is not None:
                raise _THROTTLED if injected == "throttle" else _INJECTED_ERROR
            try:
                if method == CERTIFICATES:
                    result = self._certificates(merchant)
                else:
                    call = Call(merchant.mchid if merchant else "", method, params, payload, now)
                    result = WECHAT[method](state.ledger, call)
            finally:
                await self._latency(method)
        except Refusal as exc:  # body over the size limit
            status, result = exc.status, {"code": "PARAM_ERROR", "message": exc.sub_msg}
        except SignError as exc:
            status, result = 401, {"code": "SIGN_ERROR", "message": f"签名错误 ({exc})"}
        except WeChatError as exc:
            status, result = exc.status, {"code": exc.code, "message": exc.message}
        except Exception:  # a mock bug still answers as WeChat Pay would
            log.exception("wechat: unexpected error in %s", method)
            status, result = 500, {"code": "SYSTEM_ERROR", "message": "系统错误 (internal error in the mock)"}
        body = orjson.dumps(result)
        response = web.Response(status=status, body=body, content_type="application/json", charset="utf-8")
        response.headers["Request-ID"] = secrets.token_hex(16)
        if signed or state.config.sign_responses:
            platform = state.wechat
            serial = request.headers.get("Wechatpay-Serial")
            certificate_mode = serial == platform.certificate_serial or (
                serial != platform.public_key_id and merchant is not None and merchant.apiv3_key is not None
            )
            response.headers.update(platform.sign_headers(body, certificate_mode=certificate_mode))
        outcome = "200" if status == 200 else f"{status}/{result['code']}"
        state.metrics.observe(method, outcome, time.perf_counter() - started)
        if status == 413:
            response.force_close()
        return response

    def _certificates(self, merchant: WxMerchant | None) -> dict[str, Any]:
        if merchant is None:
            raise SignError("GET /v3/certificates must be signed by a registered merchant")
        if merchant.apiv3_key is None:
            raise WeChatError(403, "NO_AUTH", "商户未设置APIv3密钥 (register the merchant with an apiv3_key)")
        return self.state.wechat.certificates(merchant.apiv3_key)


def _json_body(raw: bytes) -> dict[str, Any]:
    """The JSON object in the body ({} for none): 400 PARAM_ERROR otherwise."""
    if not raw.strip():
        return {}
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WeChatError(400, "PARAM_ERROR", f"the body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WeChatError(400, "PARAM_ERROR", "the body must be a JSON object")
    return payload


def add_routes(app: web.Application, state: MockState) -> None:
    routes = WeChatRoutes(state)
    app.router.add_get("/sns/jscode2session", routes.jscode2session)
    for verb, path, method in PAY_ROUTES:
        app.router.add_route(verb, path, routes.pay_handler(method))
