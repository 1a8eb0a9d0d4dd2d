"""The HTTP API (aiohttp): routes, input checks, sessions, error bodies, metrics, /admin/grants.

Every answer is JSON (but /metrics and /admin/grants); every client mistake is a 4xx with
`{"error": "<code>", "message": "<sentence>"}`; nothing answers with a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from campaign_service import answers
from campaign_service.answers import Answer
from campaign_service.budget import BudgetCache
from campaign_service.claims import Claims
from campaign_service.gateway import PlatformClient
from campaign_service.login import login, wechat_login
from campaign_service.metrics import CONTENT_TYPE, Metrics
from campaign_service.repository import GrantStore
from campaign_service.sessions import SessionSigner
from campaign_service.settings import Settings
from campaign_service.wechat import WeChatClient

__all__ = ["STATE", "ServiceState", "create_app"]

log = logging.getLogger(__name__)

MAX_AUTH_CODE = 256
MAX_CAMPAIGN_FIELD = 64
ADMIN_HEADER = "X-Admin-Token"
JSON_TYPE = "application/json"
NDJSON_TYPE = "application/x-ndjson"


class ServiceState:
    """Everything the handlers share; built by create_app, opened and closed with the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store = GrantStore(settings.db_path)
        self.platform = PlatformClient(settings, self.metrics)
        self.wechat = (
            None if settings.wechat is None else WeChatClient(settings.wechat, settings.tuning, self.metrics)
        )
        self.sessions = SessionSigner(settings.session_secret, settings.session_ttl_s)
        self.claims = Claims(
            self.store, self.platform, settings.campaigns, self.metrics, wechat=self.wechat, bug=settings.bug
        )
        jifenbao = settings.campaigns.jifenbao
        self.budget = (
            None if jifenbao is None else BudgetCache(self.platform, jifenbao, settings.tuning.budget_cache_s)
        )
        listing = settings.campaigns.listing(wechat=self.wechat is not None)
        self.campaign_list = orjson.dumps({"campaigns": listing})
        self.ready = False
        self.draining = False

    def deadline(self) -> float:
        """The loop time by which a request started now must be answered."""
        return asyncio.get_running_loop().time() + self.settings.tuning.deadline_s


STATE: web.AppKey[ServiceState] = web.AppKey("campaign_service_state", ServiceState)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """A client mistake found while reading a request: answered as `answers.error`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.answer = answers.error(status, code, message)


class Labelled(web.Response):
    """A response that names its result for the metrics (`granted`, `try_later`, `invalid_json`...)."""

    result: str


def labelled(body: bytes, content_type: str, result: str, status: int = 200) -> Labelled:
    response = Labelled(status=status, body=body)
    response.headers["Content-Type"] = content_type
    response.result = result
    return response


def respond(answer: Answer) -> Labelled:
    response = labelled(orjson.dumps(answer.body), JSON_TYPE, answer.result, answer.status)
    if answer.retry_after_s is not None:
        response.headers["Retry-After"] = str(answer.retry_after_s)
    return response


_HTTP_ERRORS = {
    404: ("not_found", "no such endpoint"),
    405: ("method_not_allowed", "this endpoint does not take that method"),
    413: ("body_too_large", "the request body is too large"),
}


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON errors for everything (aiohttp's own 404/405/413 included), and the request metrics."""
    started = time.perf_counter()
    state = request.app[STATE]
    try:
        response = await handler(request)
    except ApiError as exc:
        response = respond(exc.answer)
    except web.HTTPException as exc:
        code, message = _HTTP_ERRORS.get(exc.status, ("bad_request", exc.reason or "bad request"))
        if exc.status == 405:
            allowed = getattr(exc, "allowed_methods", ())
            message = f"{request.method} is not allowed here; use {', '.join(sorted(allowed))}"
        elif exc.status == 404:
            message = f"no such endpoint: {request.path[:200]}"
        response = respond(answers.error(exc.status, code, message))
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.path[:200])
        response = respond(answers.error(500, "internal", "an unexpected error; it has been logged"))
    route = request.match_info.route.resource
    state.metrics.observe_request(
        route.canonical if route is not None else "unmatched",
        getattr(response, "result", "ok" if response.status < 400 else str(response.status)),
        response.status,
        time.perf_counter() - started,
    )
    return response


async def read_json(request: web.Request, *, required: bool) -> dict[str, Any]:
    """The body as a JSON object ({} when empty and not `required`)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[STATE].settings.max_body_bytes
        raise ApiError(413, "body_too_large", f"the request body is over {limit} bytes") from None
    if not raw.strip():
        if required:
            raise ApiError(400, "missing_body", "this endpoint needs a JSON object body")
        return {}
    if request.content_type != JSON_TYPE:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as {JSON_TYPE}, not {request.content_type or 'nothing'}",
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", f"the body must be a JSON object, not {_json_kind(data)}")
    return data


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number or boolean"


def session_user(request: web.Request, *, wechat: bool = False) -> str:
    """The user id of the request's `Authorization: Bearer <session>` (an openid with `wechat`)."""
    login_path = "/api/wx/login" if wechat else "/api/login"
    header = request.headers.get("Authorization")
    if header is None:
        raise ApiError(
            401, "unauthorized", f"log in first: send Authorization: Bearer <session from {login_path}>"
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "invalid_session", "the Authorization header must be: Bearer <session>")
    user_id = request.app[STATE].sessions.user_of(token.strip(), time.time(), wechat=wechat)
    if user_id is None:
        raise ApiError(
            401,
            "invalid_session",
            f"the session is invalid or expired, or not from {login_path}; log in again",
        )
    return user_id


async def claimant(request: web.Request) -> tuple[ServiceState, float, str]:
    """What every claim starts with: its deadline (from its arrival), the session's user, and a
    body that is empty or a JSON object (its content is not used)."""
    state = request.app[STATE]
    deadline = state.deadline()
    user_id = session_user(request)
    await read_json(request, required=False)
    return state, deadline, user_id


async def handle_login(request: web.Request) -> web.Response:
    state = request.app[STATE]
    deadline = state.deadline()
    body = await read_json(request, required=True)
    code = body.get("auth_code")
    if "auth_code" not in body:
        raise ApiError(
            400, "missing_field", "auth_code is required (the code my.getAuthCode gave the mini-program)"
        )
    if not isinstance(code, str) or not code or len(code) > MAX_AUTH_CODE or not code.isprintable():
        raise ApiError(
            400,
            "invalid_field",
            f"auth_code must be a non-empty string of at most {MAX_AUTH_CODE} characters",
        )
    return respond(await login(state.platform, state.sessions, code, deadline))


def wechat_client(request: web.Request) -> tuple[ServiceState, WeChatClient]:
    state = request.app[STATE]
    if state.wechat is None:
        raise ApiError(
            404, "wechat_not_configured", "WeChat is not configured on this service (CAMPAIGN_WX_BASE_URL)"
        )
    return state, state.wechat


async def handle_wx_login(request: web.Request) -> web.Response:
    state, wechat = wechat_client(request)
    deadline = state.deadline()
    body = await read_json(request, required=True)
    if "code" not in body:
        raise ApiError(400, "missing_field", "code is required (the code wx.login gave the mini-program)")
    code = body["code"]
    if not isinstance(code, str) or not code or len(code) > MAX_AUTH_CODE or not code.isprintable():
        raise ApiError(
            400, "invalid_field", f"code must be a non-empty string of at most {MAX_AUTH_CODE} characters"
        )
    return respond(await wechat_login(wechat, state.sessions, code, deadline))


async def handle_wx_coupon(request: web.Request) -> web.Response:
    """The body names the stock: {} (the first configured), {"campaign": name} or {"stock_id": id}."""
    state, _ = wechat_client(request)
    deadline = state.deadline()
    openid = session_user(request, wechat=True)
    body = await read_json(request, required=False)
    unknown = sorted(set(body) - {"campaign", "stock_id"})
    if unknown:
        raise ApiError(400, "invalid_body", f"unknown field {unknown[0][:64]!r}: give campaign or stock_id")
    if len(body) > 1:
        raise ApiError(400, "invalid_body", "give campaign or stock_id, not both")
    for key, value in body.items():
        if not isinstance(value, str) or not value or len(value) > MAX_CAMPAIGN_FIELD:
            raise ApiError(
                400,
                "invalid_field",
                f"{key} must be a non-empty string of at most {MAX_CAMPAIGN_FIELD} characters",
            )
    campaigns = state.settings.campaigns
    if not campaigns.wechat_coupons:
        raise ApiError(404, "not_configured", "no WeChat coupon stock is configured")
    name, stock_id = body.get("campaign"), body.get("stock_id")
    campaign = campaigns.wechat_coupon(name, stock_id)
    if campaign is None:
        which = f"campaign {name!r}" if name is not None else f"stock {stock_id!r}"
        raise ApiError(404, "unknown_campaign", f"no WeChat coupon {which}; see GET /api/campaigns")
    return respond(await state.claims.wechat_coupon(campaign, openid, deadline))


async def handle_budget(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.budget is None:
        raise ApiError(404, "not_configured", "no Jifenbao campaign is configured")
    return respond(await state.budget.get(state.deadline()))


async def handle_points(request: web.Request) -> web.Response:
    state, deadline, user_id = await claimant(request)
    if state.settings.campaigns.jifenbao is None:
        raise ApiError(404, "not_configured", "no Jifenbao campaign is configured")
    return respond(await state.claims.points(user_id, deadline))


async def handle_coupon(request: web.Request) -> web.Response:
    state, deadline, user_id = await claimant(request)
    name = request.match_info["campaign"]
    campaign = state.settings.campaigns.coupons.get(name)
    if campaign is None:
        raise ApiError(
            404, "unknown_campaign", f"no coupon campaign named {name[:64]!r}; see GET /api/campaigns"
        )
    return respond(await state.claims.coupon(campaign, user_id, deadline))


async def handle_follow_gift(request: web.Request) -> web.Response:
    state, deadline, user_id = await claimant(request)
    if state.settings.campaigns.follow_gift is None:
        raise ApiError(404, "not_configured", "no follow gift is configured")
    return respond(await state.claims.follow_gift(user_id, deadline))


async def handle_red_envelope(request: web.Request) -> web.Response:
    state, deadline, user_id = await claimant(request)
    campaign = state.settings.campaigns.red_envelope
    if campaign is None:
        raise ApiError(404, "not_configured", "no red-envelope campaign is configured")
    return respond(await state.claims.red_envelope(campaign, user_id, deadline))


async def handle_campaigns(request: web.Request) -> web.Response:
    return labelled(request.app[STATE].campaign_list, JSON_TYPE, "ok")


async def handle_healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.draining or not state.ready:
        return respond(Answer(503, {"ok": False, "draining": state.draining}))
    return respond(Answer(200, {"ok": True}))


async def handle_metrics(request: web.Request) -> web.Response:
    return labelled(request.app[STATE].metrics.render(), CONTENT_TYPE, "ok")


async def handle_grants(request: web.Request) -> web.StreamResponse:
    """NDJSON, one GrantRow per line, streamed chunk by chunk from the reader thread."""
    state = request.app[STATE]
    expected = state.settings.admin_token
    if expected is None:
        raise web.HTTPNotFound()
    given = request.headers.get(ADMIN_HEADER, "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", f"missing or wrong {ADMIN_HEADER} header")
    since: float | None = None
    if "since" in request.query:
        try:
            since = float(request.query["since"])
        except ValueError:
            since = math.nan
        if not math.isfinite(since):
            raise ApiError(400, "invalid_query", "since must be epoch seconds (a number)")
    response = web.StreamResponse(headers={"Content-Type": NDJSON_TYPE})
    await response.prepare(request)
    try:
        async for chunk in state.store.stream(since):
            await response.write(b"".join(row.to_json() + b"\n" for row in chunk))
        await response.write_eof()
    except ConnectionError:  # the reader went away; nothing more to send
        log.info("/admin/grants: the client closed the connection mid-stream")
    return response


async def _start(app: web.Application) -> None:
    state = app[STATE]
    await state.store.open(time.time())
    await state.platform.start()
    if state.wechat is not None:
        await state.wechat.start()
    state.ready = True


async def _stop(app: web.Application) -> None:
    state = app[STATE]
    state.draining = True
    await state.platform.close()
    if state.wechat is not None:
        await state.wechat.close()
    abandoned = await state.store.close(time.time())
    if abandoned:
        log.warning("%d grant(s) were still pending at shutdown and are now unknown", abandoned)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=settings.max_body_bytes)
    app[STATE] = ServiceState(settings)
    r = app.router
    r.add_post("/api/login", handle_login)
    r.add_get("/api/jifenbao/budget", handle_budget, allow_head=False)
    r.add_post("/api/jifenbao/claim", handle_points)
    r.add_post("/api/coupons/{campaign}/claim", handle_coupon)
    r.add_post("/api/follow-gift/claim", handle_follow_gift)
    r.add_post("/api/red-envelope/tap", handle_red_envelope)
    r.add_post("/api/wx/login", handle_wx_login)
    r.add_post("/api/wx/coupons/claim", handle_wx_coupon)
    r.add_get("/api/campaigns", handle_campaigns, allow_head=False)
    r.add_get("/healthz", handle_healthz, allow_head=False)
    r.add_get("/metrics", handle_metrics, allow_head=False)
    r.add_get("/admin/grants", handle_grants, allow_head=False)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app
