"""The campaigns the service runs: built-in defaults (matching the seeds shipped in
`scenarios/seeds/` and `scenarios/plans/`, so a rehearsal works with no config) or a YAML/JSON
file named by `CAMPAIGN_CONFIG`.

A file describes the campaigns completely: a section it leaves out is not offered (its endpoint
answers 404). `platform_codes` (which business sub_codes mean sold out, limit reached, not active)
is merged with the defaults, because Alipay does not publish them all (platform-apis.md §3, §4).
`wechat_coupons` are WeChat Pay cash-coupon stocks (offered only when WeChat is configured).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

__all__ = [
    "DEFAULT_CONFIG",
    "CampaignConfig",
    "CampaignConfigError",
    "CashCampaign",
    "OutcomeCodes",
    "PointsCampaign",
    "VoucherCampaign",
    "WeChatCoupon",
    "load_campaigns",
    "parse_campaigns",
]

LIMIT_PERIODS = ("lifetime", "day")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_PLATFORM_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_PER_USER = 100  # Alipay's cash send_freqency caps the lifetime count at 100
WX_MAX_PER_USER = 60  # WeChat Pay's max_coupons_per_user is at most 60 (docs/wechat-apis.md §2)
_STOCK_ID = re.compile(r"[0-9]{1,20}")
_MCHID = re.compile(r"[0-9]{1,32}")


class CampaignConfigError(ValueError):
    """A bad campaign file; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class PointsCampaign:
    """Jifenbao: one claim per user per China-time day, `points_per_claim` from `budget_code`."""

    budget_code: str
    points_per_claim: int
    title: str


@dataclass(frozen=True, slots=True)
class VoucherCampaign:
    """A voucher activity (`alipay.marketing.activity.voucher.send`); `name` is its URL slug."""

    name: str
    activity_id: str
    per_user_limit: int
    limit_period: str  # "lifetime" | "day"
    title: str


@dataclass(frozen=True, slots=True)
class CashCampaign:
    """A cash red-envelope campaign (`alipay.marketing.campaign.cash.trigger`)."""

    crowd_no: str
    per_user_limit: int
    limit_period: str
    title: str


@dataclass(frozen=True, slots=True)
class WeChatCoupon:
    """A WeChat Pay cash-coupon stock (`POST /v3/marketing/favor/users/{openid}/coupons`)."""

    name: str
    stock_id: str
    per_user_limit: int
    limit_period: str
    title: str
    creator_mchid: str | None  # the stock's creator; None: the service's own CAMPAIGN_WX_MCHID


@dataclass(frozen=True, slots=True)
class OutcomeCodes:
    """Business sub_codes (code 40004) that are answers to the user rather than errors."""

    sold_out: frozenset[str] = frozenset(
        {"BUDGET_NOT_ENOUGH_ERROR", "BUDGET_NOT_ENOUGH", "CASH_CAMP_BUDGET_INSUFFICIENT"}
    )
    limit_reached: frozenset[str] = frozenset({"EXCEED_USER_LIMIT", "EXCEED_TRIGGER_LIMIT"})
    not_active: frozenset[str] = frozenset({"ACTIVITY_NOT_START", "ACTIVITY_EXPIRED", "BUDGET_DISABLED"})

    def classify(self, sub_code: str | None) -> str | None:
        """ "sold_out", "limit_reached", "not_active", or None for any other sub_code."""
        for name in ("sold_out", "limit_reached", "not_active"):
            if sub_code in getattr(self, name):
                return name
        return None


@dataclass(frozen=True, slots=True)
class CampaignConfig:
    jifenbao: PointsCampaign | None
    coupons: Mapping[str, VoucherCampaign]
    follow_gift: VoucherCampaign | None
    red_envelope: CashCampaign | None
    codes: OutcomeCodes = field(default_factory=OutcomeCodes)
    wechat_coupons: Mapping[str, WeChatCoupon] = field(default_factory=dict)  # the first is the default

    def wechat_coupon(self, name: str | None = None, stock_id: str | None = None) -> WeChatCoupon | None:
        """The stock named by campaign name or stock id; the first configured when neither is given."""
        if name is not None:
            return self.wechat_coupons.get(name)
        if stock_id is not None:
            return next((c for c in self.wechat_coupons.values() if c.stock_id == stock_id), None)
        return next(iter(self.wechat_coupons.values()), None)

    def listing(self, *, wechat: bool = False) -> list[dict[str, Any]]:
        """What GET /api/campaigns shows, built once (the WeChat stocks when WeChat is on)."""
        out: list[dict[str, Any]] = []
        if self.jifenbao is not None:
            j = self.jifenbao
            out.append(
                {
                    "name": "jifenbao",
                    "kind": "points",
                    "title": j.title,
                    "budget_code": j.budget_code,
                    "points_per_claim": j.points_per_claim,
                    "per_user_limit": 1,
                    "limit_period": "day",
                    "claim": "/api/jifenbao/claim",
                }
            )
        for c in self.coupons.values():
            out.append({**_voucher_listing(c), "claim": f"/api/coupons/{c.name}/claim"})
        if self.follow_gift is not None:
            out.append(
                {
                    **_voucher_listing(self.follow_gift),
                    "claim": "/api/follow-gift/claim",
                    "requires": "follow",
                }
            )
        if self.red_envelope is not None:
            r = self.red_envelope
            out.append(
                {
                    "name": "red-envelope",
                    "kind": "cash",
                    "title": r.title,
                    "crowd_no": r.crowd_no,
                    "per_user_limit": r.per_user_limit,
                    "limit_period": r.limit_period,
                    "claim": "/api/red-envelope/tap",
                }
            )
        for c in self.wechat_coupons.values() if wechat else ():
            out.append(
                {
                    "name": c.name,
                    "kind": "coupon",
                    "title": c.title,
                    "stock_id": c.stock_id,
                    "per_user_limit": c.per_user_limit,
                    "limit_period": c.limit_period,
                    "claim": "/api/wx/coupons/claim",
                    "body": {"campaign": c.name},
                }
            )
        return out


def _voucher_listing(c: VoucherCampaign) -> dict[str, Any]:
    return {
        "name": c.name,
        "kind": "voucher",
        "title": c.title,
        "activity_id": c.activity_id,
        "per_user_limit": c.per_user_limit,
        "limit_period": c.limit_period,
    }


# The ids, amounts and limits of scenarios/seeds/*.yaml and the flash-sale / red-envelope plans.
DEFAULT_CONFIG: dict[str, Any] = {
    "jifenbao": {"budget_code": "JFB-CHANNEL", "points_per_claim": 100, "title": "Jifenbao channel visit"},
    "coupons": {
        "flash-sale": {
            "activity_id": "FLASH-SALE",
            "per_user_limit": 1,
            "limit_period": "lifetime",
            "title": "Flash sale 50 yuan coupon",
        }
    },
    "follow_gift": {
        "activity_id": "FOLLOW-GIFT",
        "per_user_limit": 1,
        "limit_period": "lifetime",
        "title": "Follow us, get 5 yuan off",
    },
    "red_envelope": {
        "crowd_no": "RAIN-CAMPAIGN",
        "per_user_limit": 5,
        "limit_period": "lifetime",
        "title": "Red-envelope rain",
    },
    "wechat_coupons": {  # scenarios/seeds/wechat_share_coupon.yaml
        "share-coupon": {
            "stock_id": "9856000",
            "per_user_limit": 1,
            "limit_period": "lifetime",
            "title": "New-user coupon, spread by sharing",
        }
    },
}

_SECTIONS = ("jifenbao", "coupons", "follow_gift", "red_envelope", "platform_codes", "wechat_coupons")


def load_campaigns(path: str | Path | None) -> CampaignConfig:
    """The defaults when `path` is None, else the file (YAML or JSON by content)."""
    if path is None:
        return parse_campaigns(DEFAULT_CONFIG)
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignConfigError(f"{where}: cannot read the campaign file ({exc})") from None
    try:
        data = orjson.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise CampaignConfigError(f"{where}: not valid YAML or JSON ({reason})") from None
    try:
        return parse_campaigns(data)
    except CampaignConfigError as exc:
        raise CampaignConfigError(f"{where}: {exc}") from None


def parse_campaigns(data: Any) -> CampaignConfig:
    """A CampaignConfig from the file's structure; CampaignConfigError names the bad key."""
    if not isinstance(data, Mapping):
        raise CampaignConfigError(
            "the campaign file must be a mapping with keys among " + ", ".join(_SECTIONS)
        )
    for key in data:
        if key not in _SECTIONS:
            raise CampaignConfigError(f"{key}: unknown key (expected one of {', '.join(_SECTIONS)})")
    jifenbao = None
    if data.get("jifenbao") is not None:
        r = _Reader(data["jifenbao"], "jifenbao", ("budget_code", "points_per_claim", "title"))
        jifenbao = PointsCampaign(
            r.platform_id("budget_code"), r.integer("points_per_claim", 1, 10**9), r.title("Jifenbao")
        )
    coupons: dict[str, VoucherCampaign] = {}
    raw_coupons = data.get("coupons")
    if raw_coupons is not None:
        if not isinstance(raw_coupons, Mapping):
            raise CampaignConfigError("coupons: must be a mapping of campaign name -> {activity_id, ...}")
        for name, entry in raw_coupons.items():
            if not isinstance(name, str) or not _SLUG.fullmatch(name):
                raise CampaignConfigError(
                    f"coupons.{name}: a campaign name is 1-64 lower-case letters, digits or '-'"
                )
            coupons[name] = _voucher(name, entry, f"coupons.{name}")
    follow_gift = None
    if data.get("follow_gift") is not None:
        follow_gift = _voucher("follow-gift", data["follow_gift"], "follow_gift")
    red_envelope = None
    if data.get("red_envelope") is not None:
        r = _Reader(
            data["red_envelope"], "red_envelope", ("crowd_no", "per_user_limit", "limit_period", "title")
        )
        red_envelope = CashCampaign(
            r.platform_id("crowd_no"),
            r.integer("per_user_limit", 1, MAX_PER_USER),
            r.period(),
            r.title("Red envelopes"),
        )
    return CampaignConfig(
        jifenbao,
        coupons,
        follow_gift,
        red_envelope,
        _codes(data.get("platform_codes")),
        _wechat_coupons(data.get("wechat_coupons")),
    )


def _wechat_coupons(data: Any) -> dict[str, WeChatCoupon]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise CampaignConfigError("wechat_coupons: must be a mapping of campaign name -> {stock_id, ...}")
    out: dict[str, WeChatCoupon] = {}
    keys = ("stock_id", "per_user_limit", "limit_period", "title", "stock_creator_mchid")
    for name, entry in data.items():
        where = f"wechat_coupons.{name}"
        if not isinstance(name, str) or not _SLUG.fullmatch(name):
            raise CampaignConfigError(f"{where}: a campaign name is 1-64 lower-case letters, digits or '-'")
        r = _Reader(entry, where, keys)
        stock_id = r.data.get("stock_id")
        if isinstance(stock_id, int) and not isinstance(stock_id, bool):
            stock_id = str(stock_id)  # YAML reads an unquoted stock id as a number
        if not isinstance(stock_id, str) or not _STOCK_ID.fullmatch(stock_id):
            raise CampaignConfigError(f"{where}.stock_id: required, 1-20 digits (got {stock_id!r})")
        if any(c.stock_id == stock_id for c in out.values()):
            raise CampaignConfigError(f"{where}.stock_id: {stock_id} is already another campaign's stock")
        creator = r.data.get("stock_creator_mchid")
        if isinstance(creator, int) and not isinstance(creator, bool):
            creator = str(creator)
        if creator is not None and (not isinstance(creator, str) or not _MCHID.fullmatch(creator)):
            raise CampaignConfigError(f"{where}.stock_creator_mchid: 1-32 digits (got {creator!r})")
        out[name] = WeChatCoupon(
            name,
            stock_id,
            r.integer("per_user_limit", 1, WX_MAX_PER_USER),
            r.period(),
            r.title(name),
            creator,
        )
    return out


def _voucher(name: str, entry: Any, where: str) -> VoucherCampaign:
    r = _Reader(entry, where, ("activity_id", "per_user_limit", "limit_period", "title"))
    return VoucherCampaign(
        name,
        r.platform_id("activity_id"),
        r.integer("per_user_limit", 1, MAX_PER_USER),
        r.period(),
        r.title(name),
    )


def _codes(data: Any) -> OutcomeCodes:
    if data is None:
        return OutcomeCodes()
    names = ("sold_out", "limit_reached", "not_active")
    r = _Reader(data, "platform_codes", names)
    base = OutcomeCodes()
    values: dict[str, frozenset[str]] = {}
    for name in names:
        raw = r.data.get(name)
        if raw is None:
            values[name] = getattr(base, name)
            continue
        if not isinstance(raw, list) or not all(isinstance(c, str) and c for c in raw):
            raise CampaignConfigError(f"platform_codes.{name}: must be a list of sub_code strings")
        values[name] = frozenset(raw)
    seen: dict[str, str] = {}
    for name, codes in values.items():
        for code in codes:
            if code in seen:
                raise CampaignConfigError(
                    f"platform_codes.{name}: {code} is already listed under {seen[code]}"
                )
            seen[code] = name
    return OutcomeCodes(**values)


class _Reader:
    """Typed access to one mapping of the file, naming `where.key` in every error."""

    __slots__ = ("data", "where")

    def __init__(self, data: Any, where: str, keys: tuple[str, ...]) -> None:
        if not isinstance(data, Mapping):
            raise CampaignConfigError(f"{where}: must be a mapping with keys among {', '.join(keys)}")
        for key in data:
            if key not in keys:
                raise CampaignConfigError(f"{where}.{key}: unknown key (expected one of {', '.join(keys)})")
        self.data = data
        self.where = where

    def platform_id(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or not _PLATFORM_ID.fullmatch(value):
            raise CampaignConfigError(
                f"{self.where}.{key}: required, 1-64 letters, digits, '_', '.' or '-' (got {value!r})"
            )
        return value

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise CampaignConfigError(
                f"{self.where}.{key}: required, an integer {low}-{high} (got {value!r})"
            )
        return value

    def period(self) -> str:
        value = self.data.get("limit_period", "lifetime")
        if value not in LIMIT_PERIODS:
            raise CampaignConfigError(
                f"{self.where}.limit_period: must be one of {', '.join(LIMIT_PERIODS)} (got {value!r})"
            )
        return value

    def title(self, default: str) -> str:
        value = self.data.get("title", default)
        if not isinstance(value, str) or len(value) > 200:
            raise CampaignConfigError(f"{self.where}.title: must be a string of at most 200 characters")
        return value
