"""/admin/*: faults, stats, audit, reset, seed, apps, keys, health and the OpenAPI document.

Every admin route needs the `X-Admin-Token` header (401 otherwise). Bodies are JSON; a bad one
is a 400 with `{"error": "..."}` naming what is wrong.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from mock_platform import signing
from mock_platform.config import ConfigError, check_seed
from mock_platform.fields import Reader
from mock_platform.openapi import LAYER_KEYS, NDJSON, TOKEN_HEADER, openapi_document
from mock_platform.seeding import parse_merchant

if TYPE_CHECKING:
    from mock_platform.app import MockState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    """A client mistake in an admin or sim call: answered 400 with the message."""


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def json_error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (BadRequest otherwise)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest("the body is too large") from None
    try:
        data = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _field(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key}: a non-empty string is required")
    return value


class Admin:
    def __init__(self, state: MockState) -> None:
        self.state = state
        self._document = openapi_document(debug_hooks=state.config.debug_hooks)

    def guarded(self, handler: Handler) -> Handler:
        """`handler` behind the admin token; BadRequest/ValueError become 400."""
        token = self.state.admin_token.encode()

        async def guard(request: web.Request) -> web.StreamResponse:
            given = request.headers.get(TOKEN_HEADER, "").encode()
            if not hmac.compare_digest(given, token):
                return json_error(401, f"missing or wrong {TOKEN_HEADER} header")
            try:
                return await handler(request)
            except (BadRequest, ValueError) as exc:
                return json_error(400, str(exc))

        return guard

    async def health(self, request: web.Request) -> web.StreamResponse:
        s = self.state
        return json_response(
            {
                "status": "ok",
                "uptime_s": round(time.time() - s.started_at, 3),
                "strict": s.config.strict,
                "sign_responses": s.config.sign_responses,
                "profile": s.config.profile,
            }
        )

    async def get_faults(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.state.faults.snapshot())

    async def put_faults(self, request: web.Request) -> web.StreamResponse:
        self.state.faults.configure(await json_object(request))
        return json_response(self.state.faults.snapshot())

    async def get_layers(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        return json_response({"now": now, "layers": self.state.faults.layers(now)})

    async def put_layer(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await json_object(request)
        for key in body:
            if key not in LAYER_KEYS:
                raise BadRequest(f"layers.{name}.{key}: unknown key (known: {', '.join(LAYER_KEYS)})")
        if "faults" not in body:
            raise BadRequest(f"layers.{name}.faults: required")
        listing = self.state.faults.put_layer(
            name, body["faults"], start_at=body.get("start_at"), duration_s=body.get("duration_s")
        )
        return json_response(listing)

    async def delete_layer(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if not self.state.faults.delete_layer(name):
            return json_error(404, f"no fault layer named {name!r}")
        return json_response({"ok": True, "name": name})

    async def effects(self, request: web.Request) -> web.StreamResponse:
        """The effects journal as NDJSON, streamed (never built in memory)."""
        raw = request.query.get("after", "0")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            raise BadRequest("after: must be a non-negative integer (the last seq already read)")
        journal = self.state.ledger.effects
        chunks = journal.export(int(raw))
        response = web.StreamResponse(headers={"Content-Type": NDJSON, "X-Last-Seq": str(journal.last_seq)})
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
        return response

    async def stats(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.state.metrics.stats())

    async def audit(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.state.ledger.audit())

    async def reset(self, request: web.Request) -> web.StreamResponse:
        self.state.reset()
        return json_response({"ok": True})

    async def seed(self, request: web.Request) -> web.StreamResponse:
        body = await json_object(request)
        try:
            seed = check_seed(body)
        except ConfigError as exc:
            raise BadRequest(str(exc)) from None
        return json_response({"ok": True, "seeded": self.state.ledger.seed(seed)})

    async def add_app(self, request: web.Request) -> web.StreamResponse:
        body = Reader(await json_object(request), "")
        app_id = body.text("app_id", max_len=64)  # FieldError -> 400 naming the field, as in the seed
        pem = body.text("public_key", max_len=8192)
        signing.load_public_key(pem)  # ValueError -> 400 with the reason
        self.state.ledger.register_app(app_id, pem)
        return json_response({"ok": True, "app_id": app_id})

    async def add_wx_merchant(self, request: web.Request) -> web.StreamResponse:
        merchant = parse_merchant(Reader(await json_object(request), ""))  # FieldError -> 400
        self.state.ledger.register_wx_merchant(merchant)
        return json_response({"ok": True, "mchid": merchant.mchid})

    async def wx_platform(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.state.wechat.describe())

    async def keys(self, request: web.Request) -> web.StreamResponse:
        return json_response({"sign_type": "RSA2", "alipay_public_key": self.state.public_pem})

    async def openapi(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._document)

    async def force_issue(self, request: web.Request) -> web.StreamResponse:
        body = await json_object(request)
        out_biz_no = body.get("out_biz_no")
        if out_biz_no is not None and not isinstance(out_biz_no, str):
            raise BadRequest("out_biz_no: must be a string")
        voucher_id = self.state.ledger.debug_force_issue(
            _field(body, "activity_id"), _field(body, "user_id"), out_biz_no
        )
        return json_response({"voucher_id": voucher_id})


def add_routes(app: web.Application, state: MockState) -> None:
    admin = Admin(state)
    g = admin.guarded
    r = app.router
    r.add_get("/admin/health", g(admin.health))
    r.add_get("/admin/faults", g(admin.get_faults))
    r.add_put("/admin/faults", g(admin.put_faults))
    r.add_get("/admin/faults/layers", g(admin.get_layers))
    r.add_put("/admin/faults/layers/{name}", g(admin.put_layer))
    r.add_delete("/admin/faults/layers/{name}", g(admin.delete_layer))
    r.add_get("/admin/effects", g(admin.effects))
    r.add_get("/admin/stats", g(admin.stats))
    r.add_get("/admin/audit", g(admin.audit))
    r.add_post("/admin/reset", g(admin.reset))
    r.add_post("/admin/seed", g(admin.seed))
    r.add_post("/admin/apps", g(admin.add_app))
    r.add_get("/admin/keys", g(admin.keys))
    r.add_post("/admin/wechat/merchants", g(admin.add_wx_merchant))
    r.add_get("/admin/wechat/platform", g(admin.wx_platform))
    r.add_get("/admin/openapi.json", g(admin.openapi))
    if state.config.debug_hooks:
        r.add_post("/admin/debug/force_issue", g(admin.force_issue))
