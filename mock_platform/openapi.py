"""The admin and client-simulator API's OpenAPI 3.1 document (GET /admin/openapi.json).

The schemas say what the server accepts, as far as JSON Schema can: types, required keys, lengths,
patterns, no unknown keys. What it cannot say (a public key that loads, a time window whose end
follows its start, a fault spec's distribution parameters) is checked by the server with a 400
naming the key; such operations carry `x-semantic-checks`. tests/mock_platform/test_openapi.py
runs Schemathesis against it. Test-only routes are listed only when they are served.
"""

from __future__ import annotations

from typing import Any

from mock_platform.effects import UNITS, Effect

__all__ = ["LAYER_KEYS", "NDJSON", "OPENAPI", "TOKEN_HEADER", "openapi_document"]

TOKEN_HEADER = "X-Admin-Token"
NDJSON = "application/x-ndjson"
LAYER_KEYS = ("faults", "start_at", "duration_s")
EFFECT_FIELDS = tuple(Effect.__annotations__)


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


def _semantic(op: dict[str, Any], what: str) -> dict[str, Any]:
    """Mark an operation whose body the server also checks beyond its schema (then a 400)."""
    return {**op, "x-semantic-checks": what}


def _obj(required: tuple[str, ...], **props: dict[str, Any]) -> dict[str, Any]:
    """An object of exactly these properties (the server refuses unknown keys)."""
    return {"type": "object", "required": list(required), "properties": props, "additionalProperties": False}


# Field types as the server reads them (fields.Reader): an optional field may be null (= absent),
# an integer may also come as a string of digits, a yuan amount as a string or a number.
_TEXT = {"type": "string", "minLength": 1, "maxLength": 256}
_OPT_TEXT = {"type": ["string", "null"], "maxLength": 256}
_INT = {"type": ["integer", "string"]}
_OPT_INT = {"type": ["integer", "string", "null"]}
_MONEY = {"type": ["string", "number"]}
_TIME = {"type": "string", "description": "yyyy-MM-dd HH:mm:ss (GMT+8), or NowTime for a start"}
_OPT_TIME = {"type": ["string", "null"], "description": _TIME["description"]}
_FLAG = {"type": "boolean"}
_PEM = {"type": "string", "format": "pem-public-key", "minLength": 1, "maxLength": 8192}


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


_SEED: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "apps": _list(
            _obj(
                ("app_id",),
                app_id={**_TEXT, "maxLength": 64},
                public_key={"type": ["string", "null"], "maxLength": 8192},
            )
        ),
        "users": _list(
            _obj(
                ("user_id",),
                user_id={"type": "string", "pattern": "^2088[0-9]{12}$"},
                followed=_FLAG,
                **{k: _OPT_TEXT for k in ("nick_name", "avatar", "gender", "province", "city")},
            )
        ),
        "activities": _list(
            _obj(
                ("activity_id", "quantity", "amount", "publish_start_time", "publish_end_time"),
                activity_id=_TEXT,
                activity_name=_OPT_TEXT,
                quantity=_INT,
                quantity_limit_per_user=_OPT_INT,
                amount=_MONEY,
                publish_start_time=_TIME,
                publish_end_time=_TIME,
            )
        ),
        "cash_campaigns": _list(
            _obj(
                (
                    "crowd_no",
                    "coupon_name",
                    "prize_type",
                    "total_money",
                    "total_num",
                    "start_time",
                    "end_time",
                ),
                crowd_no=_TEXT,
                coupon_name=_TEXT,
                prize_type={"enum": ["fixed", "random"]},
                total_money=_MONEY,
                total_num=_INT,
                send_freqency={
                    "type": ["string", "null"],
                    "maxLength": 32,
                    "description": "e.g. D3|L10 (sic)",
                },
                start_time=_TIME,
                end_time=_TIME,
                prize_msg=_OPT_TEXT,
            )
        ),
        "point_budgets": _list(
            _obj(
                ("budget_code", "total_amount"),
                budget_code=_TEXT,
                total_amount=_INT,
                start_time=_OPT_TIME,
                end_time=_OPT_TIME,
                enabled=_FLAG,
                budget_desc=_OPT_TEXT,
            )
        ),
        "wechat": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "apps": _list(
                    _obj(("appid", "secret"), appid=_TEXT, secret={**_TEXT, "maxLength": 128}, unionid=_FLAG)
                ),
                "stocks": _list(
                    _obj(
                        ("stock_id", "max_coupons"),
                        stock_id={**_TEXT, "maxLength": 20},
                        max_coupons=_INT,
                        max_coupons_per_user=_OPT_INT,
                        coupon_value=_OPT_INT,
                        stock_creator_mchid={"type": ["string", "null"], "pattern": "^([0-9]{1,32})?$"},
                        stock_name={"type": ["string", "null"], "maxLength": 20},
                    )
                ),
                "merchants": _list({"$ref": "#/components/schemas/WxMerchant"}),
            },
        },
    },
}
_METHOD_FAULTS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {key: {"type": ["object", "null"]} for key in ("latency", "error", "throttle", "outage")},
}
_FAULTS: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"minLength": 1},
    "properties": {
        "profile": {"type": ["string", "null"], "description": "a preset in mock_platform/profiles"},
        "seed": {"type": ["integer", "string", "null"]},
    },
    "additionalProperties": _METHOD_FAULTS,
    "description": "per Alipay/WeChat method name, or '*': latency, error, throttle, outage",
}
_LAYER_FAULTS: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"minLength": 1},
    "additionalProperties": _METHOD_FAULTS,
    "description": "as in PUT /admin/faults; latency may also be {scale: k}",
}
_SEMANTIC_FAULTS = "distribution parameters (p99 above median, max above min, rates within 0-1, ...)"


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
                    "public_key": {**_PEM, "description": "the merchant API key, SPKI PEM"},
                    "apiv3_key": {
                        "type": ["string", "null"],
                        "pattern": "^([\\x21-\\x7e]{32})?$",
                        "description": "32 characters; absent, null or empty: none (public-key mode only)",
                    },
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
            "put": _semantic(
                _admin(
                    "Replace the fault spec (per method or '*': latency, error, throttle, outage)",
                    _json(_OBJ),
                    _FAULTS,
                ),
                _SEMANTIC_FAULTS + "; a known profile",
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
                _semantic(
                    _admin(
                        "Add or replace a named fault layer: its faults apply key by key over the base spec "
                        "in [start_at, start_at + duration_s) by the mock's clock; latency may be {scale: k}",
                        _json({"$ref": "#/components/schemas/FaultLayer"}),
                        {
                            "type": "object",
                            "required": ["faults"],
                            "additionalProperties": False,
                            "properties": {
                                "faults": _LAYER_FAULTS,
                                "start_at": {
                                    "type": ["number", "null"],
                                    "minimum": 0,
                                    "description": "epoch seconds; default (or null) now",
                                },
                                "duration_s": {
                                    "type": ["number", "null"],
                                    "exclusiveMinimum": 0,
                                    "description": "default (or null): until deleted",
                                },
                            },
                        },
                    ),
                    _SEMANTIC_FAULTS,
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
                        "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
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
            "post": _semantic(
                _admin(
                    "Add apps, users, activities, cash campaigns, point budgets, and WeChat apps, stocks "
                    "and merchants",
                    _json(_OBJ),
                    _SEED,
                ),
                "times, windows (end after start), yuan amounts, ranges, send_freqency, public keys",
            )
        },
        "/admin/apps": {
            "post": _admin(
                "Register an app's RSA2 public key (its signed requests are then verified)",
                _json(_OBJ),
                {
                    "type": "object",
                    "required": ["app_id", "public_key"],
                    "properties": {
                        "app_id": {"type": "string", "minLength": 1, "maxLength": 64},
                        "public_key": _PEM,
                    },
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

_DEBUG_PATHS: dict[str, Any] = {
    "/admin/debug/force_issue": {
        "post": _semantic(
            _admin(
                "Test only (--debug-hooks): issue a voucher past every check, to prove the audit catches it",
                _json({"type": "object", "properties": {"voucher_id": {"type": "string"}}}),
                {
                    "type": "object",
                    "required": ["activity_id", "user_id"],
                    "properties": {
                        "activity_id": {"type": "string", "minLength": 1},
                        "user_id": {"type": "string", "minLength": 1},
                        "out_biz_no": {"type": ["string", "null"]},
                    },
                },
            ),
            "the activity exists",
        )
    },
}


def openapi_document(*, debug_hooks: bool) -> dict[str, Any]:
    """The document for a mock: the test-only routes are in it only when they are served."""
    if not debug_hooks:
        return OPENAPI
    return {**OPENAPI, "paths": {**OPENAPI["paths"], **_DEBUG_PATHS}}
