"""WeChat on the same ledger and the same handler contract: jscode2session and the Pay v3 cash
coupons (代金券): create, start, pause and query a stock, send a coupon, query a coupon.

A js_code is any code minted by `Ledger.mint_auth_code` (the same /sim/auth_code serves both
dialects, single-use across them); the openid is derived stably from the user. Failures raise
WeChatError: HTTP 200 + errcode for jscode2session, HTTP status + code for Pay v3. The rules and
codes are recorded with their sources in docs/wechat-apis.md.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import datetime
from typing import Any

from mock_platform.errors import WeChatError
from mock_platform.fields import CN_TZ, FieldError, Reader
from mock_platform.ledger import Ledger
from mock_platform.methods._common import Call, remember, replay
from mock_platform.model import WxCoupon, WxStock

CODE2SESSION = "wechat.jscode2session"
SEND_COUPON = "wechat.coupon.send"
QUERY_COUPON = "wechat.coupon.query"
CREATE_STOCK = "wechat.stock.create"
START_STOCK = "wechat.stock.start"
PAUSE_STOCK = "wechat.stock.pause"
QUERY_STOCK = "wechat.stock.query"
LOGINS_PER_MINUTE = 100  # code2Session: "每个用户每分钟100次" (45011)
MAX_WINDOW_S = 90 * 86400  # a stock's available window: at most 90 days
MAX_START_AHEAD_S = 365 * 86400  # no stock may start more than 365 days ahead
BEGIN_SLACK_S = 60.0  # "not earlier than now", with a minute for the client's clock and the trip [I]
MAX_PER_USER = 60
_OPENID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_ID_RE = re.compile(r"[0-9]{1,20}")
_REQUEST_NO_RE = re.compile(r"[0-9A-Za-z|_*-]{1,128}")
BUSINESS_FAILURES = frozenset({"NOT_ENOUGH", "RULE_LIMIT"})


def param_error(message: str) -> WeChatError:
    return WeChatError(400, "PARAM_ERROR", message)


def field_error(error: FieldError) -> WeChatError:
    """A bad or missing field: 400 PARAM_ERROR naming it."""
    return param_error(str(error))


def _conflict() -> WeChatError:
    return WeChatError(
        400,
        "INVALID_REQUEST",
        "out_request_no已使用但参数不一致 (out_request_no reused with other parameters)",
    )


def rfc3339(epoch: float) -> str:
    """`2015-05-20T13:29:35+08:00`: WeChat Pay's times (GMT+8)."""
    return datetime.fromtimestamp(int(epoch), CN_TZ).isoformat()


def _time(r: Reader, key: str) -> float:
    value = r.text(key, max_len=40)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise FieldError(
            r.path(key), "must be an RFC 3339 time with its offset, e.g. 2026-05-20T13:29:35+08:00"
        )
    return moment.timestamp()


def _integer(r: Reader, key: str, lo: int, hi: int, *, required: bool = True) -> int | None:
    """An integer that is a JSON number (WeChat Pay's integers are never strings)."""
    value = r.data.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(r.path(key), "must be an integer", missing=value is None)
    if not lo <= value <= hi:
        raise FieldError(r.path(key), f"must be between {lo} and {hi}, got {value}")
    return value


def _digits(r: Reader, key: str) -> str:
    value = r.text(key, max_len=20)
    if not _ID_RE.fullmatch(value):
        raise FieldError(r.path(key), "must be 1-20 digits")
    return value


def _stock(ledger: Ledger, call: Call) -> WxStock:
    stock = ledger.wx_stocks.get(call.params.get("stock_id", ""))
    if stock is None:
        raise WeChatError(404, "RESOURCE_NOT_EXISTS", "批次不存在 (no such stock_id)")
    return stock


def _creator(stock: WxStock, mchid: str, call: Call) -> None:
    """The stock must be the named creator's, and the caller that creator (no cross-merchant)."""
    if stock.creator_mchid is not None and (
        mchid != stock.creator_mchid or (call.app_id and call.app_id != stock.creator_mchid)
    ):
        raise WeChatError(403, "NO_AUTH", "商户无权操作该批次 (the stock was created by another merchant)")


# --------------------------------------------------------------------------- mini-program login


def code2session(ledger: Ledger, call: Call) -> dict[str, Any]:
    """`GET /sns/jscode2session`: {openid, session_key[, unionid]}. With no WeChat app seeded, any
    appid/secret is accepted; otherwise both must match a seeded app."""
    q = call.params
    appid, secret, js_code = q.get("appid"), q.get("secret"), q.get("js_code")
    if not appid:
        raise WeChatError(200, "41002", "appid missing")
    if not secret:
        raise WeChatError(200, "41004", "appsecret missing")
    if not js_code:
        raise WeChatError(200, "41008", "missing code")
    if q.get("grant_type") != "authorization_code":
        raise WeChatError(200, "40002", "invalid grant_type: must be authorization_code")
    app = ledger.wx_apps.get(appid)
    if ledger.wx_apps:
        if app is None:
            raise WeChatError(200, "40013", "invalid appid")
        if app.secret != secret:
            raise WeChatError(200, "40125", "invalid appsecret")
    user = ledger.consume_auth_code(js_code, call.now)
    if user is None:
        if ledger.code_was_used(js_code, call.now):
            raise WeChatError(200, "40163", "code been used")
        raise WeChatError(200, "40029", "invalid code")
    minute = int(call.now // 60)
    seen = ledger.wx_logins.get(user.user_id)
    if seen is None or seen[0] != minute:
        seen = ledger.wx_logins[user.user_id] = [minute, 0]
    seen[1] += 1
    if seen[1] > LOGINS_PER_MINUTE:
        raise WeChatError(200, "45011", "api minute-quota reach limit mustslower retry next minute")
    out = {"session_key": base64.b64encode(secrets.token_bytes(16)).decode(), "openid": user.wx_openid}
    if app is not None and app.unionid:
        out["unionid"] = "o6_bm" + hashlib.sha256(f"unionid:{user.user_id}".encode()).hexdigest()[:23]
    return out


# --------------------------------------------------------------------------- Pay v3 coupon stocks


def create_stock(ledger: Ledger, call: Call) -> dict[str, Any]:
    """`POST /v3/marketing/favor/coupon-stocks` -> {stock_id, create_time}; the stock is
    `unactivated` until started. Idempotent on out_request_no per merchant."""
    r = Reader(call.biz, "")
    name = r.text("stock_name", max_len=20)
    belong = _digits(r, "belong_merchant")
    if call.app_id and belong != call.app_id:
        raise FieldError("belong_merchant", "must be the calling merchant's mchid")
    out_request_no = r.text("out_request_no", max_len=128)
    begin, end = _time(r, "available_begin_time"), _time(r, "available_end_time")
    if begin < call.now - BEGIN_SLACK_S:
        raise FieldError("available_begin_time", "must not be earlier than now")
    if begin > call.now + MAX_START_AHEAD_S:
        raise FieldError("available_begin_time", "must not be more than 365 days ahead")
    if end <= begin:
        raise FieldError("available_end_time", "must be after available_begin_time")
    if end - begin > MAX_WINDOW_S:
        raise FieldError("available_end_time", "the available window may be at most 90 days")
    rule = r.obj("stock_use_rule")
    max_coupons = _integer(rule, "max_coupons", 1, 10**9)
    max_amount = _integer(rule, "max_amount", 1, 10**12)
    per_user = _integer(rule, "max_coupons_per_user", 1, MAX_PER_USER)
    by_day = _integer(rule, "max_amount_by_day", 1, 10**12, required=False)
    natural = rule.flag("natural_person_limit", False)
    abuse = rule.flag("prevent_api_abuse", False)
    fixed = r.obj("coupon_use_rule").obj("fixed_normal_coupon")
    amount = _integer(fixed, "coupon_amount", 1, 10**8)
    minimum = _integer(fixed, "transaction_minimum", 0, 10**10)
    assert max_coupons is not None and max_amount is not None and amount is not None
    if max_amount != amount * max_coupons:
        raise FieldError(
            "stock_use_rule.max_amount",
            "批次预算等于批次面额乘以发券数 (must be coupon_amount × max_coupons)",
        )
    if r.text("stock_type", max_len=16) != "NORMAL":
        raise FieldError("stock_type", "must be NORMAL")
    no_cash = r.flag("no_cash", False)
    comment = r.opt_text("comment", max_len=60) or ""
    mchid = call.app_id or belong
    scope = (CREATE_STOCK, mchid)
    fingerprint = (name, begin, end, max_coupons, max_amount, per_user, amount, minimum, no_cash)
    prior = replay(ledger, call, scope, out_request_no, fingerprint, _conflict)
    if prior is not None:
        return prior
    stock = WxStock(
        stock_id=ledger.new_id("")[-10:].lstrip("0") or "1",
        max_coupons=max_coupons,
        max_per_user=per_user or 1,
        coupon_value=amount,
        creator_mchid=mchid,
        stock_name=name,
        status="unactivated",
        begin=begin,
        end=end,
        transaction_minimum=minimum or 0,
        max_amount_by_day=by_day,
        natural_person_limit=natural,
        prevent_api_abuse=abuse,
        no_cash=no_cash,
        comment=comment,
        created=call.now,
    )
    ledger.wx_stocks[stock.stock_id] = stock
    result = {"stock_id": stock.stock_id, "create_time": rfc3339(call.now)}
    return remember(ledger, call, scope, out_request_no, fingerprint, result)


def start_stock(ledger: Ledger, call: Call) -> dict[str, Any]:
    """`POST /v3/marketing/favor/stocks/{stock_id}/start` -> {stock_id, start_time}; again on a
    running stock answers the same."""
    stock = _stock(ledger, call)
    _creator(stock, _digits(Reader(call.biz, ""), "stock_creator_mchid"), call)
    if stock.status != "running":
        stock.status = "running"
        stock.started = call.now
        stock.paused = None
        ledger.method_stats(call.method).effects += 1
    return {"stock_id": stock.stock_id, "start_time": rfc3339(stock.started or stock.created)}


def pause_stock(ledger: Ledger, call: Call) -> dict[str, Any]:
    """`POST /v3/marketing/favor/stocks/{stock_id}/pause` -> {stock_id, pause_time}."""
    stock = _stock(ledger, call)
    _creator(stock, _digits(Reader(call.biz, ""), "stock_creator_mchid"), call)
    if stock.status == "unactivated":
        raise WeChatError(400, "INVALID_REQUEST", "批次未激活，不能暂停 (the stock was never started)")
    if stock.status != "paused":
        stock.status = "paused"
        stock.paused = call.now
        ledger.method_stats(call.method).effects += 1
    return {"stock_id": stock.stock_id, "pause_time": rfc3339(stock.paused or call.now)}


def query_stock(ledger: Ledger, call: Call) -> dict[str, Any]:
    """`GET /v3/marketing/favor/stocks/{stock_id}?stock_creator_mchid=…`."""
    stock = _stock(ledger, call)
    _creator(stock, _digits(Reader(call.params, ""), "stock_creator_mchid"), call)
    out: dict[str, Any] = {
        "stock_id": stock.stock_id,
        "stock_creator_mchid": stock.creator_mchid or call.params["stock_creator_mchid"],
        "stock_name": stock.stock_name or stock.stock_id,
        "status": stock.status,
        "create_time": rfc3339(stock.created),
        "description": stock.comment,
        "stock_use_rule": {
            "max_coupons": stock.max_coupons,
            "max_amount": stock.max_amount,
            "max_coupons_per_user": stock.max_per_user,
            "natural_person_limit": stock.natural_person_limit,
            "prevent_api_abuse": stock.prevent_api_abuse,
        },
        "distributed_coupons": stock.issued,
        "no_cash": stock.no_cash,
        "stock_type": "NORMAL",
        "singleitem": False,
    }
    if stock.max_amount_by_day is not None:
        out["stock_use_rule"]["max_amount_by_day"] = stock.max_amount_by_day
    if stock.begin is not None and stock.end is not None:
        out["available_begin_time"] = rfc3339(stock.begin)
        out["available_end_time"] = rfc3339(stock.end)
    if stock.started is not None:
        out["start_time"] = rfc3339(stock.started)
    return out


# --------------------------------------------------------------------------- Pay v3 coupons


def send_coupon(ledger: Ledger, call: Call) -> dict[str, Any]:
    """`POST /v3/marketing/favor/users/{openid}/coupons` -> {coupon_id}; idempotent on
    out_request_no per merchant (the caller's mchid, else stock_creator_mchid)."""
    r = Reader(call.biz, "")
    stock_id = r.text("stock_id", max_len=20)
    out_request_no = r.text("out_request_no", max_len=128)
    appid = r.text("appid", max_len=128)
    mchid = r.text("stock_creator_mchid", max_len=20)
    openid = call.params.get("openid", "")
    if not _OPENID_RE.fullmatch(openid):
        raise param_error("openid: must be 1-128 letters, digits, _ or -")
    if not _REQUEST_NO_RE.fullmatch(out_request_no):
        raise param_error("out_request_no: letters, digits and | _ * - only")
    if ledger.wx_apps and appid not in ledger.wx_apps:
        raise WeChatError(400, "INVALID_REQUEST", "openid与appID不匹配 (unknown appid)")
    stock = ledger.wx_stocks.get(stock_id)
    if stock is None:
        raise WeChatError(404, "RESOURCE_NOT_EXISTS", "批次不存在 (no such stock_id)")
    _creator(stock, mchid, call)
    sender = call.app_id or mchid
    scope = (SEND_COUPON, sender)
    fingerprint = (stock_id, openid, appid)
    prior = replay(ledger, call, scope, out_request_no, fingerprint, _conflict)
    if prior is not None:
        return prior
    if (
        stock.status != "running"
        or (stock.begin is not None and call.now < stock.begin)
        or (stock.end is not None and call.now >= stock.end)
    ):
        raise WeChatError(400, "INVALID_REQUEST", "活动已结束或未激活 (the stock is not running)")
    outcome = stock.take(openid)
    if outcome == "sold_out":
        raise WeChatError(403, "NOT_ENOUGH", "批次预算不足 (stock used up)")
    if outcome == "user_limit":
        raise WeChatError(403, "RULE_LIMIT", "用户已达最大领券次数 (per-user limit reached)")
    coupon_id = ledger.new_id("")[-11:].lstrip("0") or "1"
    ledger.wx_coupons.put(
        coupon_id,
        WxCoupon(stock_id, openid, appid, call.now),
        call.now + ledger.config.idempotency_ttl_s,
        call.now,
    )
    # The effect is the sending merchant's (the scope of out_request_no).
    ledger.effects.append(
        SEND_COUPON, sender, out_request_no, openid, stock_id, 1, "coupon", coupon_id, call.now
    )
    return remember(ledger, call, scope, out_request_no, fingerprint, {"coupon_id": coupon_id})


def query_coupon(ledger: Ledger, call: Call) -> dict[str, Any]:
    """`GET /v3/marketing/favor/users/{openid}/coupons/{coupon_id}?appid=…`."""
    appid = Reader(call.params, "").text("appid", max_len=128)
    coupon = ledger.wx_coupons.get(call.params.get("coupon_id", ""), call.now)
    if coupon is None or coupon.openid != call.params.get("openid") or coupon.appid != appid:
        raise WeChatError(404, "RESOURCE_NOT_EXISTS", "券不存在 (no such coupon for this user)")
    stock = ledger.wx_stocks.get(coupon.stock_id)
    out: dict[str, Any] = {
        "stock_creator_mchid": (stock.creator_mchid if stock else None) or "",
        "stock_id": coupon.stock_id,
        "coupon_id": call.params["coupon_id"],
        "coupon_name": (stock.stock_name if stock else "") or coupon.stock_id,
        "status": "SENDED",
        "description": stock.comment if stock else "",
        "create_time": rfc3339(coupon.created),
        "coupon_type": "NORMAL",
        "no_cash": stock.no_cash if stock else False,
        "singleitem": False,
        "normal_coupon_information": {
            "coupon_amount": stock.coupon_value if stock else 0,
            "transaction_minimum": stock.transaction_minimum if stock else 0,
        },
    }
    if stock is not None and stock.begin is not None and stock.end is not None:
        out["available_begin_time"] = rfc3339(stock.begin)
        out["available_end_time"] = rfc3339(stock.end)
    return out


HANDLERS = {
    CODE2SESSION: code2session,
    CREATE_STOCK: create_stock,
    START_STOCK: start_stock,
    PAUSE_STOCK: pause_stock,
    QUERY_STOCK: query_stock,
    SEND_COUPON: send_coupon,
    QUERY_COUPON: query_coupon,
}
