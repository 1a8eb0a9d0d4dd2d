"""Seeding: the seed document (config `seed:` or POST /admin/seed) parsed once into typed records,
then applied to a ledger.

The parse checks everything (public keys included) before anything changes, so a bad entry is
refused whole with its path named (`seed.activities[0].quantity: ...`); the config keeps the
parsed records and applies them again at every reset. Entities are copied fresh when applied
(their counters start at zero), so one parse can be applied any number of times. A "NowTime"
start is the time of the parse.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mock_platform import signing
from mock_platform.fields import MAX_MONEY_FEN, FieldError, Reader, is_user_id, window
from mock_platform.model import (
    Activity,
    CashCampaign,
    LedgerState,
    PointBudget,
    WxApp,
    WxMerchant,
    WxStock,
)

__all__ = ["SEED_KEYS", "AppSeed", "Seed", "UserSeed", "apply_seed", "parse_merchant", "parse_seed"]

SEED_KEYS = ("apps", "users", "activities", "cash_campaigns", "point_budgets", "wechat")
WECHAT_KEYS = ("apps", "stocks", "merchants")
MCHID_RE = re.compile(r"[0-9]{1,32}")
APIV3_KEY_RE = re.compile(r"[\x21-\x7e]{32}")
USER_TEXT_KEYS = ("nick_name", "avatar", "gender", "province", "city")


@dataclass(frozen=True, slots=True)
class AppSeed:
    app_id: str
    public_key: str | None  # SPKI PEM (or its bare base64 body), already checked to load


@dataclass(frozen=True, slots=True)
class UserSeed:
    """A user and the attributes the seed sets (the others keep their values)."""

    user_id: str
    attrs: Mapping[str, str | bool]


@dataclass(frozen=True, slots=True)
class Seed:
    apps: tuple[AppSeed, ...] = ()
    users: tuple[UserSeed, ...] = ()
    activities: tuple[Activity, ...] = ()
    cash_campaigns: tuple[CashCampaign, ...] = ()
    point_budgets: tuple[PointBudget, ...] = ()
    wechat_apps: tuple[WxApp, ...] = ()
    wechat_stocks: tuple[WxStock, ...] = ()
    wechat_merchants: tuple[WxMerchant, ...] = ()

    def counts(self) -> dict[str, int]:
        return {f.name: len(getattr(self, f.name)) for f in dataclasses.fields(self)}


def parse_seed(data: Any, now: float | None = None, *, verify_keys: bool = True) -> Seed:
    """The seed document as typed records; ValueError (a FieldError) names the bad entry.

    `verify_keys=False` takes public keys as text unchecked (a ledger-level seed: the gateway
    answers 40003 for an app whose key does not load); the config and POST /admin/seed check them.
    """
    now = time.time() if now is None else now
    root = Reader(data, "seed")
    root.check_keys(set(SEED_KEYS))
    wx = Reader(data.get("wechat", {}), "seed.wechat")  # absent: none; null: not an object
    wx.check_keys(set(WECHAT_KEYS))
    return Seed(
        apps=tuple(_app(r, verify_keys) for r in root.items("apps")),
        users=tuple(_user(r) for r in root.items("users")),
        activities=tuple(_activity(r, now) for r in root.items("activities")),
        cash_campaigns=tuple(_campaign(r, now) for r in root.items("cash_campaigns")),
        point_budgets=tuple(_budget(r, now) for r in root.items("point_budgets")),
        wechat_apps=tuple(_wx_app(r) for r in wx.items("apps")),
        wechat_stocks=tuple(_wx_stock(r) for r in wx.items("stocks")),
        wechat_merchants=tuple(parse_merchant(r) for r in wx.items("merchants")),
    )


def apply_seed(ledger: LedgerState, seed: Seed) -> dict[str, int]:
    """Add or replace what the seed names; returns how many of each it held."""
    for app in seed.apps:
        ledger.register_app(app.app_id, app.public_key)
    for user_seed in seed.users:
        user = ledger.user(user_seed.user_id)
        for name, value in user_seed.attrs.items():
            setattr(user, name, value)
    ledger.activities.update((a.activity_id, dataclasses.replace(a)) for a in seed.activities)
    ledger.campaigns.update((c.crowd_no, dataclasses.replace(c)) for c in seed.cash_campaigns)
    ledger.budgets.update((b.budget_code, dataclasses.replace(b)) for b in seed.point_budgets)
    ledger.wx_apps.update((a.appid, dataclasses.replace(a)) for a in seed.wechat_apps)
    ledger.wx_stocks.update((s.stock_id, dataclasses.replace(s)) for s in seed.wechat_stocks)
    for merchant in seed.wechat_merchants:
        ledger.register_wx_merchant(dataclasses.replace(merchant))
    return seed.counts()


def _app(r: Reader, verify_key: bool) -> AppSeed:
    r.check_keys({"app_id", "public_key"})
    app_id = r.text("app_id")
    pem = r.opt_text("public_key", max_len=8192)
    if pem is not None and verify_key:
        try:
            signing.load_public_key(pem)
        except ValueError as exc:  # "public_key: <reason>"
            raise FieldError(r.path("public_key"), str(exc).removeprefix("public_key: ")) from None
    return AppSeed(app_id, pem)


def _user(r: Reader) -> UserSeed:
    r.check_keys({"user_id", "followed", *USER_TEXT_KEYS})
    user_id = r.text("user_id")
    if not is_user_id(user_id):
        raise FieldError(r.path("user_id"), "must be 2088 followed by 12 digits")
    attrs: dict[str, str | bool] = {}
    for key in USER_TEXT_KEYS:
        value = r.opt_text(key, max_len=256)
        if value is not None:
            attrs[key] = value
    if "followed" in r.data:
        attrs["followed"] = r.flag("followed", False)
    return UserSeed(user_id, attrs)


def _activity(r: Reader, now: float) -> Activity:
    r.check_keys(
        {"activity_id", "activity_name", "quantity", "quantity_limit_per_user", "amount"}
        | {"publish_start_time", "publish_end_time"}
    )
    start, end = window(r, "publish_start_time", "publish_end_time", now)
    return Activity(
        activity_id=r.text("activity_id"),
        activity_name=r.opt_text("activity_name", max_len=256) or "",
        quantity=r.integer("quantity", 0, 99_999_999),
        limit_per_user=r.opt_integer("quantity_limit_per_user", 0, 99_999_999) or 0,
        amount_fen=r.money("amount", 1, MAX_MONEY_FEN),
        start=start,
        end=end,
    )


def _campaign(r: Reader, now: float) -> CashCampaign:
    r.check_keys(
        {"crowd_no", "coupon_name", "prize_type", "total_money", "total_num", "send_freqency"}
        | {"start_time", "end_time", "prize_msg"}
    )
    return CashCampaign.from_fields(r, r.text("crowd_no"), now, max_span_s=None)


def _budget(r: Reader, now: float) -> PointBudget:
    r.check_keys({"budget_code", "total_amount", "start_time", "end_time", "enabled", "budget_desc"})
    start = r.opt_time("start_time", now=now)
    end = r.opt_time("end_time")
    if start is not None and end is not None and end <= start:
        raise FieldError(r.path("end_time"), "must be after start_time")
    return PointBudget(
        budget_code=r.text("budget_code"),
        total=r.integer("total_amount", 0, 10**15),
        start=start,
        end=end,
        enabled=r.flag("enabled", True),
        budget_desc=r.opt_text("budget_desc", max_len=256) or "",
    )


def _wx_app(r: Reader) -> WxApp:
    r.check_keys({"appid", "secret", "unionid"})
    return WxApp(r.text("appid"), r.text("secret", max_len=128), r.flag("unionid", False))


def _wx_stock(r: Reader) -> WxStock:
    """A running stock; with a `stock_creator_mchid` only that merchant may send from it."""
    r.check_keys(
        {
            "stock_id",
            "max_coupons",
            "max_coupons_per_user",
            "coupon_value",
            "stock_creator_mchid",
            "stock_name",
        }
    )
    creator = r.opt_text("stock_creator_mchid", max_len=32)
    if creator is not None and not MCHID_RE.fullmatch(creator):
        raise FieldError(r.path("stock_creator_mchid"), "must be 1-32 digits")
    return WxStock(
        stock_id=r.text("stock_id", max_len=20),
        max_coupons=r.integer("max_coupons", 0, 10**9),
        max_per_user=r.opt_integer("max_coupons_per_user", 1, 10**6) or 1,
        coupon_value=r.opt_integer("coupon_value", 1, 10**9) or 100,
        creator_mchid=creator,
        stock_name=r.opt_text("stock_name", max_len=20) or "",
    )


def parse_merchant(r: Reader) -> WxMerchant:
    """A WeChat Pay merchant (seed `wechat.merchants[]` or POST /admin/wechat/merchants)."""
    r.check_keys({"mchid", "serial_no", "public_key", "apiv3_key"})
    mchid = r.text("mchid", max_len=32)
    if not MCHID_RE.fullmatch(mchid):
        raise FieldError(r.path("mchid"), "must be 1-32 digits")
    serial_no = r.text("serial_no", max_len=64)
    pem = r.text("public_key", max_len=8192)
    try:
        signing.load_public_key(pem)
    except ValueError as exc:
        raise FieldError(r.path("public_key"), str(exc).removeprefix("public_key: ")) from None
    apiv3_key = r.opt_text("apiv3_key", max_len=64)
    if apiv3_key is not None and not APIV3_KEY_RE.fullmatch(apiv3_key):
        raise FieldError(r.path("apiv3_key"), "must be 32 printable ASCII characters (an AES-256 key)")
    return WxMerchant(mchid, serial_no, pem, apiv3_key)
