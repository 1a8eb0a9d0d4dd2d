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
from mock_platform.effects import UNITS, Effect
from mock_platform.fields import Reader
from mock_platform.seeding import parse_merchant

if TYPE_CHECKING:
    from mock_platform.app import MockState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_HEADER = "X-Admin-Token"
NDJSON = "application/x-ndjson"
LAYER_KEYS = ("faults", "start_at", "duration_s")
EFFECT_FIELDS = tuple(Effect.__annotations__)


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
        body = await json_object(request)
        app_id = _field(body, "app_id")
        pem = _field(body, "public_key")
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
        return json_response(OPENAPI)

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


# ----------------------------------------------------------------------------- OpenAPI 3.1


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_OBJ: dict[str, Any] = {"type": "object"}
_ERROR = {"$ref": "#/components/schemas/Error"}
_BAD = _json(_ERROR, "Bad request: the message names the problem")
_DENIED = _json(_ERROR, "Missing or wrong X-Admin-Token")
_USER_BODY = {
    "type": "object",
    "required": ["user_id"],
    "properties": {"user_id": {"type": "string", "pattern": "^2088[0-9]{12}$"}},
}


def _admin(summary: str, ok: dict[str, Any], body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": ok, "401": _DENIED}}
    if body is not None:
        op["requestBody"] = _body(body)
        op["responses"]["400"] = _BAD
    return op


def _with_name(op: dict[str, Any]) -> dict[str, Any]:
    """`op` with the layer-name path parameter."""
    name = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}
    return {**op, "parameters": [{"name": "name", "in": "path", "required": True, "schema": name}]}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "mock_platform admin and client-simulator API",
        "version": "1",
        "description": "Control plane of the Alipay/WeChat mock (the gateway itself is POST /gateway.do "
        "in Alipay's form-encoded dialect, outside this document).",
    },
    "components": {
        "securitySchemes": {"adminToken": {"type": "apiKey", "in": "header", "name": TOKEN_HEADER}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Effect": {
                "description": "One line of GET /admin/effects: a grant the ledger made (not a replay, "
                "not a business failure)",
                "type": "object",
                "required": list(EFFECT_FIELDS),
                "additionalProperties": False,
                "properties": {
                    "seq": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "1, 2, ...; restarts after a reset",
                    },
                    "method": {
                        "type": "string",
                        "examples": ["alipay.user.alipaypoint.send", "wechat.coupon.send"],
                    },
                    "app_id": {
                        "type": "string",
                        "description": "Alipay app_id; WeChat: the stock creator mchid",
                    },
                    "biz_no": {
                        "type": "string",
                        "description": "partner_biz_no / out_biz_no / out_request_no",
                    },
                    "user_id": {"type": "string", "description": "Alipay user_id; WeChat: the openid"},
                    "campaign": {
                        "type": "string",
                        "description": "budget_code / activity_id / crowd_no / stock_id",
                    },
                    "amount": {"type": "integer", "description": "points, fen, or 1 per voucher or coupon"},
                    "unit": {"enum": list(UNITS)},
                    "id": {
                        "type": "string",
                        "description": "record_id / voucher_id / prize biz_no / coupon_id",
                    },
                    "at": {"type": "number", "description": "epoch seconds at receipt of the call"},
                },
            },
            "WxMerchant": {
                "type": "object",
                "required": ["mchid", "serial_no", "public_key"],
                "additionalProperties": False,
                "properties": {
                    "mchid": {"type": "string", "pattern": "^[0-9]{1,32}$"},
                    "serial_no": {"type": "string", "minLength": 1, "maxLength": 64},
                    "public_key": {"type": "string", "description": "the merchant API key, SPKI PEM"},
                    "apiv3_key": {"type": "string", "pattern": "^[\\x21-\\x7e]{32}$"},
                },
            },
            "FaultLayer": {
                "type": "object",
                "required": ["name", "faults", "start_at", "end_at", "duration_s", "state"],
                "properties": {
                    "name": {"type": "string"},
                    "faults": _OBJ,
                    "start_at": {"type": "number"},
                    "end_at": {"type": ["number", "null"]},
                    "duration_s": {"type": ["number", "null"]},
                    "state": {"enum": ["scheduled", "active", "ended"]},
                },
            },
            "Audit": {
                "type": "object",
                "required": ["ok", "violations", "totals"],
                "properties": {
                    "ok": {"type": "boolean"},
                    "violations": {"type": "array", "items": {"type": "string"}},
                    "totals": {"type": "object"},
                },
            },
        },
    },
    "security": [{"adminToken": []}],
    "paths": {
        "/admin/health": {"get": _admin("Liveness and the switches in force", _json(_OBJ))},
        "/admin/faults": {
            "get": _admin("The fault spec in force", _json(_OBJ)),
            "put": _admin(
                "Replace the fault spec (per method or '*': latency, error, throttle, outage)",
                _json(_OBJ),
                _OBJ,
            ),
        },
        "/admin/faults/layers": {
            "get": _admin(
                "Every fault layer with its window and state",
                _json(
                    {
                        "type": "object",
                        "properties": {
                            "now": {"type": "number"},
                            "layers": {"type": "array", "items": {"$ref": "#/components/schemas/FaultLayer"}},
                        },
                    }
                ),
            )
        },
        "/admin/faults/layers/{name}": {
            "put": _with_name(
                _admin(
                    "Add or replace a named fault layer: its faults apply key by key over the base spec in "
                    "[start_at, start_at + duration_s) by the mock's clock; latency may be {scale: k}",
                    _json({"$ref": "#/components/schemas/FaultLayer"}),
                    {
                        "type": "object",
                        "required": ["faults"],
                        "additionalProperties": False,
                        "properties": {
                            "faults": _OBJ,
                            "start_at": {"type": "number", "description": "epoch seconds; default now"},
                            "duration_s": {
                                "type": "number",
                                "exclusiveMinimum": 0,
                                "description": "default: until deleted",
                            },
                        },
                    },
                )
            ),
            "delete": _with_name(
                {
                    **_admin("Remove a fault layer at once", _json(_OBJ)),
                    "responses": {"200": _json(_OBJ), "401": _DENIED, "404": _json(_ERROR, "No such layer")},
                }
            ),
        },
        "/admin/effects": {
            "get": {
                **_admin("The effects journal", _json(_OBJ)),
                "description": "One JSON line (an Effect) per grant, in order; X-Last-Seq holds the last "
                "seq made before the export, for the next ?after=",
                "parameters": [
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0},
                        "description": "only lines with a greater seq",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "NDJSON, one Effect per line",
                        "headers": {"X-Last-Seq": {"schema": {"type": "integer"}}},
                        "content": {NDJSON: {"schema": {"$ref": "#/components/schemas/Effect"}}},
                    },
                    "400": _BAD,
                    "401": _DENIED,
                },
            }
        },
        "/admin/stats": {
            "get": _admin(
                "Per method: calls, outcomes by code/sub_code, latency count/mean/p50/p99", _json(_OBJ)
            )
        },
        "/admin/audit": {
            "get": _admin("Ledger invariants and totals", _json({"$ref": "#/components/schemas/Audit"}))
        },
        "/admin/reset": {
            "post": _admin("Clear the ledger and stats; the start-up seed is applied again", _json(_OBJ))
        },
        "/admin/seed": {
            "post": _admin(
                "Add apps, users, activities, cash campaigns, point budgets, WeChat apps and stocks",
                _json(_OBJ),
                {
                    "type": "object",
                    "properties": {
                        k: {"type": "array", "items": _OBJ}
                        for k in ("apps", "users", "activities", "cash_campaigns", "point_budgets")
                    }
                    | {"wechat": _OBJ},
                },
            )
        },
        "/admin/apps": {
            "post": _admin(
                "Register an app's RSA2 public key (its signed requests are then verified)",
                _json(_OBJ),
                {
                    "type": "object",
                    "required": ["app_id", "public_key"],
                    "properties": {"app_id": {"type": "string"}, "public_key": {"type": "string"}},
                },
            )
        },
        "/admin/keys": {
            "get": _admin(
                "The mock's response-signing public key (what the SDK calls the Alipay public key)",
                _json(
                    {
                        "type": "object",
                        "properties": {
                            "sign_type": {"const": "RSA2"},
                            "alipay_public_key": {"type": "string"},
                        },
                    }
                ),
            )
        },
        "/admin/wechat/merchants": {
            "post": _admin(
                "Register a WeChat Pay merchant: its API certificate's serial and public key verify its "
                "signed requests; with an APIv3 key it may download the platform certificates",
                _json(
                    {
                        "type": "object",
                        "required": ["ok", "mchid"],
                        "properties": {"ok": {"const": True}, "mchid": {"type": "string"}},
                    }
                ),
                {"$ref": "#/components/schemas/WxMerchant"},
            )
        },
        "/admin/wechat/platform": {
            "get": _admin(
                "The WeChat Pay platform's public key (public-key mode), its id, and the platform "
                "certificate's serial (certificate mode)",
                _json(
                    {
                        "type": "object",
                        "required": ["public_key", "public_key_id", "certificate_serial"],
                        "properties": {
                            "public_key": {"type": "string", "description": "SPKI PEM"},
                            "public_key_id": {"type": "string", "pattern": "^PUB_KEY_ID_"},
                            "certificate_serial": {"type": "string", "pattern": "^[0-9A-F]+$"},
                        },
                    }
                ),
            )
        },
        "/admin/openapi.json": {"get": _admin("This document", _json(_OBJ))},
        "/admin/debug/force_issue": {
            "post": _admin(
                "Test only (--debug-hooks): issue a voucher past every check, to prove the audit catches it",
                _json({"type": "object", "properties": {"voucher_id": {"type": "string"}}}),
                {
                    "type": "object",
                    "required": ["activity_id", "user_id"],
                    "properties": {k: {"type": "string"} for k in ("activity_id", "user_id", "out_biz_no")},
                },
            )
        },
        "/sim/auth_code": {
            "post": {
                "summary": "Mint a single-use auth code for a user (what my.getAuthCode / wx.login give)",
                "security": [],
                "requestBody": _body(_USER_BODY),
                "responses": {
                    "200": _json({"type": "object", "properties": {"auth_code": {"type": "string"}}}),
                    "400": _BAD,
                },
            }
        },
        "/sim/follow": {
            "post": {
                "summary": "The user follows the life account",
                "security": [],
                "requestBody": _body(_USER_BODY),
                "responses": {
                    "200": _json({"type": "object", "properties": {"ok": {"const": True}}}),
                    "400": _BAD,
                },
            }
        },
    },
}
