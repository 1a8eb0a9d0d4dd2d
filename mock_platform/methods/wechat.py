"""WeChat on the same ledger: jscode2session and Pay v3 cash-coupon send, as plain functions.

A js_code is any code minted by `Ledger.mint_auth_code` (the same /sim/auth_code serves both
dialects, single-use across them); the openid is derived stably from the user. Failures raise
WeChatError: HTTP 200 + errcode for jscode2session, HTTP status + code for Pay v3.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any

from mock_platform.errors import WeChatError
from mock_platform.fields import FieldError, Reader
from mock_platform.idempotency import IdempotencyConflict
from mock_platform.ledger import Ledger

CODE2SESSION = "wechat.jscode2session"
SEND_COUPON = "wechat.coupon.send"
_OPENID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def code2session(
    ledger: Ledger, appid: str | None, secret: str | None, js_code: str | None, now: float
) -> dict:
    """`GET /sns/jscode2session`: {openid, session_key[, unionid]}. With no WeChat app seeded, any
    appid/secret is accepted; otherwise both must match a seeded app."""
    if not appid:
        raise WeChatError(200, "41002", "appid missing")
    if not secret:
        raise WeChatError(200, "41004", "appsecret missing")
    if not js_code:
        raise WeChatError(200, "41008", "missing code")
    app = ledger.wx_apps.get(appid)
    if ledger.wx_apps:
        if app is None:
            raise WeChatError(200, "40013", "invalid appid")
        if app.secret != secret:
            raise WeChatError(200, "40125", "invalid appsecret")
    user = ledger.consume_auth_code(js_code, now)
    if user is None:
        raise WeChatError(200, "40029", "invalid code")
    out = {"session_key": base64.b64encode(secrets.token_bytes(16)).decode(), "openid": user.wx_openid}
    if app is not None and app.unionid:
        out["unionid"] = "o6_bm" + hashlib.sha256(f"unionid:{user.user_id}".encode()).hexdigest()[:23]
    ledger.method_stats(CODE2SESSION).ok += 1
    return out


def send_coupon(ledger: Ledger, openid: str, body: object, now: float) -> dict[str, Any]:
    """`POST /v3/marketing/favor/users/{openid}/coupons`: {coupon_id}; idempotent on
    out_request_no per stock_creator_mchid."""
    stats = ledger.method_stats(SEND_COUPON)
    try:
        r = Reader(body, "")
        stock_id = r.text("stock_id", max_len=20)
        out_request_no = r.text("out_request_no", max_len=128)
        appid = r.text("appid", max_len=32)
        mchid = r.text("stock_creator_mchid", max_len=32)
    except FieldError as error:
        raise WeChatError(400, "PARAM_ERROR", str(error)) from None
    if not isinstance(openid, str) or not _OPENID_RE.fullmatch(openid):
        raise WeChatError(400, "PARAM_ERROR", "openid: must be 1-128 letters, digits, _ or -")
    if ledger.wx_apps and appid not in ledger.wx_apps:
        raise WeChatError(400, "INVALID_REQUEST", "openid与appID不匹配 (unknown appid)")
    stock = ledger.wx_stocks.get(stock_id)
    if stock is None:
        raise WeChatError(404, "RESOURCE_NOT_EXISTS", "批次不存在 (no such stock_id)")
    scope = (SEND_COUPON, mchid)
    fingerprint = (stock_id, openid, appid)
    try:
        prior = ledger.idempotency.lookup(scope, out_request_no, fingerprint, now)
    except IdempotencyConflict:
        raise WeChatError(
            400,
            "INVALID_REQUEST",
            "out_request_no已使用但参数不一致 (out_request_no reused with other parameters)",
        ) from None
    if prior is not None:
        stats.ok += 1
        stats.replays += 1
        return prior
    outcome = stock.take(openid)
    if outcome == "sold_out":
        stats.business_failures += 1
        raise WeChatError(403, "NOT_ENOUGH", "批次预算不足 (stock used up)")
    if outcome == "user_limit":
        stats.business_failures += 1
        raise WeChatError(403, "RULE_LIMIT", "用户已达最大领券次数 (per-user limit reached)")
    result = {"coupon_id": ledger.new_id("")}
    ledger.effects.append(
        SEND_COUPON, mchid, out_request_no, openid, stock_id, 1, "coupon", result["coupon_id"], now
    )
    ledger.idempotency.remember(scope, out_request_no, fingerprint, result, now)
    stats.ok += 1
    stats.effects += 1
    return result
