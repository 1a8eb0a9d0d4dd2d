"""WeChat routes: GET /sns/jscode2session and the WeChat Pay v3 routes (certificates, coupon
stocks, coupons), over the handlers in methods/wechat.py, through the request pipeline.

Two wires answer them. `LoginWire`: jscode2session always answers HTTP 200, with
`errcode`/`errmsg` on failure. `PayWire`: Pay v3 answers an HTTP status with `{"code", "message"}`
and a `Request-ID` header, and every answer to a signed request (every answer with
--sign-responses) carries the platform's Wechatpay-* signature headers, in the public-key or the
certificate mode (wxpay.py). A Pay v3 request with an Authorization header is verified before it
becomes a call (401 SIGN_ERROR otherwise, before anything changes); without one it is taken as
unsigned load traffic unless --strict, as on the Alipay side. Injected faults map to each
dialect: throttling is errcode 45011 / HTTP 429 FREQUENCY_LIMITED, an injected error is errcode
-1 / HTTP 500 SYSTEM_ERROR.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from aiohttp import web

from mock_platform.aioroutes import BodyTooLarge, read_body, respond
from mock_platform.errors import WeChatError
from mock_platform.faults import Decision
from mock_platform.ledger import Ledger
from mock_platform.methods import WECHAT, Call, Handler
from mock_platform.methods.wechat import (
    CODE2SESSION,
    CREATE_STOCK,
    PAUSE_STOCK,
    QUERY_COUPON,
    QUERY_STOCK,
    SEND_COUPON,
    START_STOCK,
)
from mock_platform.pipeline import Pipeline, Reply, Sign
from mock_platform.wxpay import Platform, SignError, parse_authorization, verify_request

if TYPE_CHECKING:
    from mock_platform.app import MockState
    from mock_platform.model import WxMerchant

CERTIFICATES = "wechat.certificates"
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
PUBLIC_KEY: Sign = "public_key"  # sign answers with the WeChat Pay public key (serial PUB_KEY_ID_…)
CERTIFICATE: Sign = "certificate"  # sign answers with the platform certificate's key
_THROTTLED = WeChatError(429, "FREQUENCY_LIMITED", "请求过于频繁 (injected throttle)")
_INJECTED_ERROR = WeChatError(500, "SYSTEM_ERROR", "系统繁忙，请稍后重试 (injected error)")
_SYSTEM_ERROR = WeChatError(500, "SYSTEM_ERROR", "系统错误 (internal error in the mock)")
_LOGIN_INJECTED = {
    "throttle": WeChatError(200, "45011", "api minute-quota reach limit mustslower retry next minute"),
    "error": WeChatError(200, "-1", "system error"),
}
_LOGIN_HEADERS = {"Content-Type": "application/json"}


class PayWire:
    """Pay v3's answers: the status, `{code, message}` on failure, a Request-ID, and the
    Wechatpay-* signature headers when asked (signed here, once, over the exact body)."""

    __slots__ = ("_platform", "handlers")
    answers = (WeChatError, SignError)

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        pay = {name: WECHAT[name] for _, _, name in PAY_ROUTES if name != CERTIFICATES}
        self.handlers: dict[str, Handler] = {**pay, CERTIFICATES: self._certificates}

    def success(self, method: str, result: dict[str, Any], sign: Sign) -> Reply:
        return self._reply(200, result, sign)

    def failure(self, method: str, error: Exception, sign: Sign) -> Reply:
        if isinstance(error, SignError):
            return self._reply(401, {"code": "SIGN_ERROR", "message": f"签名错误 ({error})"}, sign)
        assert isinstance(error, WeChatError)
        return self._reply(error.status, {"code": error.code, "message": error.message}, sign)

    def injected(self, decision: Decision) -> Exception:
        return _THROTTLED if decision.kind == "throttle" else _INJECTED_ERROR

    def internal_error(self, method: str, sign: Sign) -> Reply:
        return self.failure(method, _SYSTEM_ERROR, sign)

    def _reply(self, status: int, payload: dict[str, Any], sign: Sign) -> Reply:
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json; charset=utf-8", "Request-ID": secrets.token_hex(16)}
        if sign is not None:
            headers.update(self._platform.sign_headers(body, certificate_mode=sign == CERTIFICATE))
        return Reply(status, headers, body, "200" if status == 200 else f"{status}/{payload['code']}")

    def _certificates(self, ledger: Ledger, call: Call) -> dict[str, Any]:
        """GET /v3/certificates: the platform certificate under the calling merchant's APIv3 key."""
        merchant = ledger.wx_merchants.get(call.app_id) if call.app_id else None
        if merchant is None:
            raise SignError("GET /v3/certificates must be signed by a registered merchant")
        if merchant.apiv3_key is None:
            raise WeChatError(403, "NO_AUTH", "商户未设置APIv3密钥 (register the merchant with an apiv3_key)")
        return self._platform.certificates(merchant.apiv3_key)


class LoginWire:
    """jscode2session's answers: HTTP 200 always, `{errcode, errmsg}` on failure."""

    __slots__ = ()
    handlers: ClassVar[dict[str, Handler]] = {CODE2SESSION: WECHAT[CODE2SESSION]}
    answers = (WeChatError,)

    def success(self, method: str, result: dict[str, Any], sign: Sign) -> Reply:
        return Reply(200, _LOGIN_HEADERS, orjson.dumps(result), "0")

    def failure(self, method: str, error: Exception, sign: Sign) -> Reply:
        assert isinstance(error, WeChatError)
        code = int(error.code) if error.code.lstrip("-").isdigit() else -1
        body = orjson.dumps({"errcode": code, "errmsg": error.message})
        return Reply(200, _LOGIN_HEADERS, body, error.code)

    def injected(self, decision: Decision) -> Exception:
        return _LOGIN_INJECTED[decision.kind]

    def internal_error(self, method: str, sign: Sign) -> Reply:
        return self.failure(method, _LOGIN_INJECTED["error"], sign)


class WeChatRoutes:
    """The aiohttp routes: each parses its request into a call for the pipeline and writes the
    reply out."""

    def __init__(self, state: MockState, pipeline: Pipeline) -> None:
        self.state = state
        self.pipeline = pipeline
        self.pay_wire = PayWire(state.wechat)
        self.login_wire = LoginWire()

    async def jscode2session(self, request: web.Request) -> web.StreamResponse:
        started, now = time.perf_counter(), time.time()
        params = dict(request.query)
        call = Call("", CODE2SESSION, params, {}, now)
        reply = self.pipeline.run(self.login_wire, call, params.get("appid", ""), None, started)
        return await respond(request, reply)

    def pay_handler(self, method: str) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.pay(request, method)

        return handle

    async def pay(self, request: web.Request, method: str) -> web.StreamResponse:
        """One Pay v3 call: body, signature and JSON make the call; the pipeline answers it."""
        state = self.state
        started, now = time.perf_counter(), time.time()
        header = request.headers.get("Authorization")
        merchant: WxMerchant | None = None
        try:
            try:
                raw = await read_body(request, state.config.max_body_bytes, state.config.body_timeout_s)
            except BodyTooLarge as exc:
                raise WeChatError(413, "PARAM_ERROR", str(exc)) from None
            if header is not None:
                auth = parse_authorization(header)
                merchant = state.ledger.wx_merchants.get(auth.mchid)
                verify_request(merchant, auth, request.method, request.raw_path, raw, now)
            elif state.config.strict:
                raise SignError("the Authorization header is missing")
            payload = _json_body(raw) if request.method == "POST" else {}  # a GET's body is ignored
        except Exception as error:
            sign = self._sign(request, header is not None, merchant)
            reply = self.pipeline.refuse(self.pay_wire, method, error, sign, started)
        else:
            mchid = merchant.mchid if merchant else ""
            key = mchid or str(payload.get("stock_creator_mchid") or payload.get("appid") or "")
            call = Call(mchid, method, {**request.query, **request.match_info}, payload, now)
            sign = self._sign(request, header is not None, merchant)
            reply = self.pipeline.run(self.pay_wire, call, key, sign, started)
        return await respond(request, reply)

    def _sign(self, request: web.Request, signed: bool, merchant: WxMerchant | None) -> Sign:
        """How to sign the answer: not at all for unsigned traffic (unless --sign-responses); in
        the certificate mode when the request named the certificate's serial in Wechatpay-Serial,
        or named none and the merchant has an APIv3 key; else in the public-key mode."""
        if not (signed or self.state.config.sign_responses):
            return None
        platform = self.state.wechat
        serial = request.headers.get("Wechatpay-Serial")
        if serial == platform.certificate_serial or (
            serial != platform.public_key_id and merchant is not None and merchant.apiv3_key is not None
        ):
            return CERTIFICATE
        return PUBLIC_KEY


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


def add_routes(app: web.Application, state: MockState, pipeline: Pipeline) -> None:
    routes = WeChatRoutes(state, pipeline)
    app.router.add_get("/sns/jscode2session", routes.jscode2session)
    for verb, path, method in PAY_ROUTES:
        app.router.add_route(verb, path, routes.pay_handler(method))
