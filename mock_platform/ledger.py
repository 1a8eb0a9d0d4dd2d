"""All money and stock state of the mock, one per process, plus the audit that proves it honest.

Every check-and-update is a plain method call (no await), so a handler is the critical section.
Money is integer fen, points are integers, times are epoch seconds (wire format: GMT+8 strings).
Bookkeeping is O(1) per call; `audit()` walks the state and is O(n).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from mock_platform.codes import BusinessCodes
from mock_platform.idempotency import DEFAULT_MAX_ENTRIES, DEFAULT_TTL_S, ExpiringMap, IdempotencyStore

CN_TZ = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
USER_ID_RE = re.compile(r"2088[0-9]{12}")
_INT_RE = re.compile(r"-?[0-9]{1,19}")
_MONEY_RE = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,2}))?")
MAX_POINTS = 10**9
MAX_MONEY_FEN = 10_000_000 * 100


# --------------------------------------------------------------------------- input vocabulary


class FieldError(ValueError):
    """A bad or missing input field; `field` is its dotted path, `missing` tells 40001 from 40002."""

    def __init__(self, field: str, problem: str, *, missing: bool = False) -> None:
        self.field = field
        self.problem = problem
        self.missing = missing
        super().__init__(f"{field}: {problem}")


def fen_to_yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, CN_TZ).strftime(TIME_FORMAT)


def is_user_id(value: object) -> bool:
    return isinstance(value, str) and USER_ID_RE.fullmatch(value) is not None


class Reader:
    """Typed access to one JSON object (biz_content or a seed entry), naming the field on error."""

    __slots__ = ("data", "where")

    def __init__(self, data: object, where: str = "") -> None:
        if data.__class__ is not dict and not isinstance(data, Mapping):  # the ABC check is slow
            raise FieldError(where or "biz_content", "must be a JSON object")
        self.data = data
        self.where = where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise FieldError(self.path(key), "is required", missing=True)
            return None
        return value

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                raise FieldError(
                    self.path(str(key)), f"unknown field (allowed: {', '.join(sorted(allowed))})"
                )

    def opt_text(self, key: str, *, max_len: int = 64, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value.__class__ is str and 0 < len(value) <= max_len:  # the usual case, in one frame
            return value
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise FieldError(self.path(key), "must be a string")
        if len(value) > max_len:
            raise FieldError(self.path(key), f"must be at most {max_len} characters")
        return value

    def text(self, key: str, *, max_len: int = 64) -> str:
        return self.opt_text(key, max_len=max_len, required=True)  # type: ignore[return-value]

    def opt_integer(self, key: str, lo: int, hi: int, *, required: bool = False) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, str) and _INT_RE.fullmatch(value):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise FieldError(self.path(key), "must be an integer")
        if not lo <= value <= hi:
            raise FieldError(self.path(key), f"must be between {lo} and {hi}, got {value}")
        return value

    def integer(self, key: str, lo: int, hi: int) -> int:
        return self.opt_integer(key, lo, hi, required=True)  # type: ignore[return-value]

    def opt_money(self, key: str, lo_fen: int, hi_fen: int, *, required: bool = False) -> int | None:
        """A yuan amount ("12.34", 12 or 12.5) as fen, within [lo_fen, hi_fen]."""
        value = self._get(key, required)
        if value is None:
            return None
        match = None
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            match = _MONEY_RE.fullmatch(str(value))
        if match is None:
            raise FieldError(self.path(key), 'must be a yuan amount like "12.34" (at most 2 decimals)')
        fen = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
        if not lo_fen <= fen <= hi_fen:
            raise FieldError(
                self.path(key), f"must be between {fen_to_yuan(lo_fen)} and {fen_to_yuan(hi_fen)} yuan"
            )
        return fen

    def money(self, key: str, lo_fen: int, hi_fen: int) -> int:
        return self.opt_money(key, lo_fen, hi_fen, required=True)  # type: ignore[return-value]

    def opt_time(self, key: str, *, now: float | None = None, required: bool = False) -> float | None:
        """A "yyyy-MM-dd HH:mm:ss" GMT+8 time as epoch seconds; "NowTime" is `now` when given."""
        value = self._get(key, required)
        if value is None:
            return None
        if now is not None and value == "NowTime":
            return now
        if isinstance(value, str) and len(value) == 19:
            try:
                return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=CN_TZ).timestamp()
            except ValueError:
                pass
        raise FieldError(self.path(key), 'must be a time "yyyy-MM-dd HH:mm:ss" (GMT+8)')

    def time(self, key: str, *, now: float | None = None) -> float:
        return self.opt_time(key, now=now, required=True)  # type: ignore[return-value]

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise FieldError(self.path(key), "must be true or false")
        return value

    def obj(self, key: str) -> Reader:
        return Reader(self._get(key, True), self.path(key))

    def items(self, key: str) -> list[Reader]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise FieldError(self.path(key), "must be a list")
        return [Reader(item, f"{self.path(key)}[{i}]") for i, item in enumerate(value)]


def window(reader: Reader, start_key: str, end_key: str, now: float) -> tuple[float, float]:
    start = reader.time(start_key, now=now)
    end = reader.time(end_key)
    if end <= start:
        raise FieldError(reader.path(end_key), f"must be after {start_key}")
    return start, end


def parse_send_freqency(value: str | None, where: str) -> tuple[str | None, int, int]:
    """`send_freqency` ("D3|L10"; sic) -> (period D/W/M or None, period limit, lifetime limit)."""
    if not value:
        return None, 0, 1
    period: str | None = None
    period_limit = 0
    life: int | None = None
    for part in value.split("|"):
        unit, num = part[:1], part[1:]
        if unit not in ("D", "W", "M", "L") or not num.isascii() or not num.isdigit() or len(num) > 3:
            raise FieldError(where, f'bad part "{part}": expected D<n>, W<n>, M<n> or L<n>, e.g. "D3|L10"')
        n = int(num)
        if n < 1:
            raise FieldError(where, f'bad part "{part}": the limit must be at least 1')
        if unit == "L":
            if life is not None or n > 100:
                raise FieldError(where, "exactly one L<n> with n <= 100 is allowed")
            life = n
        elif period is not None:
            raise FieldError(where, "at most one of D, W, M is allowed")
        else:
            period, period_limit = unit, n
    if life is None:
        raise FieldError(where, 'the lifetime limit L<n> is mandatory, e.g. "D3|L10"')
    return period, period_limit, life


def period_key(period: str | None, now: float) -> int:
    """Index of the GMT+8 calendar day, week (from Monday) or month containing `now`."""
    if period is None:
        return 0
    day = int((now + 8 * 3600) // 86400)
    if period == "D":
        return day
    if period == "W":
        return (day + 3) // 7  # 1970-01-01 was a Thursday
    local = datetime.fromtimestamp(now, CN_TZ)
    return local.year * 12 + local.month


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class User:
    """A platform user. Its open ids are derived from the user_id on demand, not stored: a new user
    is one dict entry, and `Ledger.user_by_open_id` reads the user_id back out of the open_id."""

    user_id: str
    nick_name: str = ""  # "" = the default, user<last 4 digits>
    avatar: str = ""
    gender: str = "m"
    province: str = "浙江省"
    city: str = "杭州市"
    followed: bool = False

    @property
    def open_id(self) -> str:
        """Alipay's per-app id: "074a", 31 hex of a digest, the user_id's 12 digits (47 chars)."""
        return "074a" + _digest("alipay", self.user_id)[:31] + self.user_id[4:]

    @property
    def wx_openid(self) -> str:
        """WeChat's openid: "o", 15 hex of a digest, the user_id's 12 digits (28 chars)."""
        return "o" + _digest("wechat", self.user_id)[:15] + self.user_id[4:]

    @property
    def display_name(self) -> str:
        return self.nick_name or f"user{self.user_id[-4:]}"


@dataclass(slots=True)
class Activity:
    """An `alipay.marketing.activity.voucher.*` activity; per_user is kept only when limited."""

    activity_id: str
    activity_name: str
    quantity: int
    limit_per_user: int  # 0 = unlimited
    amount_fen: int
    start: float
    end: float
    issued: int = 0
    per_user: dict[str, int] = field(default_factory=dict)

    def take(self, user_id: str) -> str | None:
        """Issue one voucher, or name the outcome that prevents it."""
        if self.issued >= self.quantity:
            return "sold_out"
        if self.limit_per_user:
            count = self.per_user.get(user_id, 0)
            if count >= self.limit_per_user:
                return "user_limit"
            self.per_user[user_id] = count + 1
        self.issued += 1
        return None


@dataclass(slots=True)
class CashCampaign:
    """An `alipay.marketing.campaign.cash.*` campaign: a money budget split into total_num prizes."""

    crowd_no: str
    coupon_name: str
    prize_type: str  # fixed | random
    total_fen: int
    total_num: int
    period: str | None
    period_limit: int
    life_limit: int
    start: float
    end: float
    prize_msg: str = ""
    paid_fen: int = 0
    count: int = 0
    per_user: dict[str, list[int]] = field(default_factory=dict)  # [lifetime, period key, period count]

    def _random_prize(self, rng: random.Random) -> int:
        """0.5-1.5x the average, drawn so that every remaining prize can still be paid in full."""
        remaining, left = self.total_fen - self.paid_fen, self.total_num - self.count
        lo_cap = max(1, self.total_fen // (2 * self.total_num))
        hi_cap = -(-3 * self.total_fen // (2 * self.total_num))
        lo = max(lo_cap, remaining - (left - 1) * hi_cap)
        hi = min(hi_cap, remaining - (left - 1) * lo_cap)
        if lo > hi:  # only after order_price overrides ate into the budget: share what is left
            lo = hi = remaining // left
        return min(remaining, rng.randint(lo, hi))

    def take(
        self, user_id: str, now: float, order_fen: int | None, rng: random.Random
    ) -> tuple[int, str | None]:
        """Pay one prize (fen), or name the outcome that prevents it."""
        remaining = self.total_fen - self.paid_fen
        if self.count >= self.total_num or remaining <= 0:
            return 0, "cash_budget_exhausted"
        key = period_key(self.period, now)
        rec = self.per_user.get(user_id)
        if rec is not None and (
            rec[0] >= self.life_limit or (self.period and rec[1] == key and rec[2] >= self.period_limit)
        ):
            return 0, "cash_user_limit"
        if order_fen is not None:
            prize = order_fen
        elif self.prize_type == "fixed":
            prize = self.total_fen // self.total_num
        else:
            prize = self._random_prize(rng)
        if prize <= 0 or prize > remaining:
            return 0, "cash_budget_exhausted"
        if rec is None:
            self.per_user[user_id] = [1, key, 1]
        else:
            rec[2] = rec[2] + 1 if rec[1] == key else 1
            rec[0] += 1
            rec[1] = key
        self.paid_fen += prize
        self.count += 1
        return prize, None


@dataclass(slots=True)
class PointBudget:
    budget_code: str
    total: int
    start: float | None
    end: float | None
    enabled: bool = True
    budget_desc: str = ""
    sent: int = 0

    def spend(self, amount: int) -> str | None:
        if self.sent + amount > self.total:
            return "points_budget_exhausted"
        self.sent += amount
        return None


@dataclass(slots=True)
class WxApp:
    appid: str
    secret: str
    unionid: bool = False


@dataclass(slots=True)
class WxStock:
    """A WeChat Pay cash-coupon stock; per_user counts are keyed by openid."""

    stock_id: str
    max_coupons: int
    max_per_user: int
    coupon_value: int  # fen
    issued: int = 0
    per_user: dict[str, int] = field(default_factory=dict)

    def take(self, openid: str) -> str | None:
        if self.issued >= self.max_coupons:
            return "sold_out"
        count = self.per_user.get(openid, 0)
        if count >= self.max_per_user:
            return "user_limit"
        self.per_user[openid] = count + 1
        self.issued += 1
        return None


@dataclass(slots=True)
class MethodStats:
    ok: int = 0
    effects: int = 0
    replays: int = 0
    business_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "ok": self.ok,
            "effects": self.effects,
            "replays": self.replays,
            "business_failures": self.business_failures,
        }


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    idempotency_ttl_s: float = DEFAULT_TTL_S
    idempotency_max_entries: int = DEFAULT_MAX_ENTRIES
    auth_code_ttl_s: float = 300.0
    token_ttl_s: int = 1_296_000
    refresh_token_ttl_s: int = 2_592_000
    auth_max_entries: int = 1_000_000  # cap of each of the auth-code, access- and refresh-token maps
    codes: BusinessCodes = field(default_factory=BusinessCodes)
    random_seed: int | None = None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> LedgerConfig:
        """From the mock's config mapping: sections `idempotency`, `auth`, `codes`, key `random_seed`."""
        config = config or {}
        if not isinstance(config, Mapping):
            raise ValueError("config: must be a mapping")
        idem = Reader(config.get("idempotency") or {}, "idempotency")
        idem.check_keys({"ttl_s", "max_entries"})
        auth = Reader(config.get("auth") or {}, "auth")
        auth.check_keys({"code_ttl_s", "token_ttl_s", "refresh_token_ttl_s", "max_entries"})
        d = cls()
        seed = config.get("random_seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError("random_seed: must be an integer")

        def num(reader: Reader, key: str, default: float, lo: int, hi: int) -> Any:
            value = reader.opt_integer(key, lo, hi)
            return default if value is None else value

        return cls(
            idempotency_ttl_s=num(idem, "ttl_s", d.idempotency_ttl_s, 1, 10**8),
            idempotency_max_entries=num(idem, "max_entries", d.idempotency_max_entries, 1, 10**8),
            auth_code_ttl_s=num(auth, "code_ttl_s", d.auth_code_ttl_s, 1, 10**8),
            token_ttl_s=num(auth, "token_ttl_s", d.token_ttl_s, 1, 10**9),
            refresh_token_ttl_s=num(auth, "refresh_token_ttl_s", d.refresh_token_ttl_s, 1, 10**9),
            auth_max_entries=num(auth, "max_entries", d.auth_max_entries, 1, 10**8),
            codes=BusinessCodes.from_mapping(config.get("codes")),
            random_seed=seed,
        )


def _digest(tag: str, user_id: str) -> str:
    return hashlib.sha256(f"{tag}:{user_id}".encode()).hexdigest()


class Ledger:
    """The mock's state. Apps (keys) survive `reset()`; everything else is cleared."""

    def __init__(self, config: LedgerConfig | None = None) -> None:
        self.config = config or LedgerConfig()
        self.codes = self.config.codes
        self.apps: dict[str, str | None] = {}
        self.wx_apps: dict[str, WxApp] = {}
        self.reset()

    def reset(self) -> None:
        cfg = self.config
        self.rng = random.Random(cfg.random_seed)
        self.users: dict[str, User] = {}
        self.activities: dict[str, Activity] = {}
        self.campaigns: dict[str, CashCampaign] = {}
        self.budgets: dict[str, PointBudget] = {}
        self.wx_stocks: dict[str, WxStock] = {}
        self.idempotency = IdempotencyStore(cfg.idempotency_ttl_s, cfg.idempotency_max_entries)
        self.auth_codes: ExpiringMap[str] = ExpiringMap(cfg.auth_max_entries)
        self.access_tokens: ExpiringMap[str] = ExpiringMap(cfg.auth_max_entries)
        self.refresh_tokens: ExpiringMap[str] = ExpiringMap(cfg.auth_max_entries)
        self.stats: dict[str, MethodStats] = {}
        self._seq = itertools.count(1)

    # ---- ids, users, apps

    def new_id(self, prefix: str) -> str:
        return prefix + str(next(self._seq)).zfill(16)

    def method_stats(self, method: str) -> MethodStats:
        stats = self.stats.get(method)
        if stats is None:
            stats = self.stats[method] = MethodStats()
        return stats

    def user(self, user_id: str) -> User:
        """The user with this (well-formed) user_id, created on first use."""
        user = self.users.get(user_id)
        if user is None:
            user = self.users[user_id] = User(user_id)
        return user

    def user_by_open_id(self, open_id: str) -> User | None:
        """The known user this open_id was given for, else None (a forged digest included)."""
        user = self.users.get("2088" + open_id[-12:]) if len(open_id) == 47 else None
        return user if user is not None and user.open_id == open_id else None

    def register_app(self, app_id: str, public_key_pem: str | None) -> None:
        if not isinstance(app_id, str) or not app_id:
            raise ValueError("app_id: must be a non-empty string")
        if public_key_pem is not None and not isinstance(public_key_pem, str):
            raise ValueError("public_key: must be a PEM string")
        self.apps[app_id] = public_key_pem

    def app_public_key(self, app_id: str) -> str | None:
        return self.apps.get(app_id)

    # ---- what the phone does (/sim)

    def mint_auth_code(self, user_id: str, now: float) -> str:
        """A single-use code for `user_id` (Alipay auth code and WeChat js_code alike)."""
        if not is_user_id(user_id):
            raise ValueError("user_id: must be 2088 followed by 12 digits")
        self.user(user_id)
        code = secrets.token_hex(16)
        self.auth_codes.put(code, user_id, now + self.config.auth_code_ttl_s, now)
        return code

    def consume_auth_code(self, code: str, now: float) -> User | None:
        user_id = self.auth_codes.pop(code, now)
        return None if user_id is None else self.users.get(user_id)

    def follow(self, user_id: str) -> None:
        if not is_user_id(user_id):
            raise ValueError("user_id: must be 2088 followed by 12 digits")
        self.user(user_id).followed = True

    def issue_tokens(self, user: User, now: float) -> tuple[str, str]:
        cfg = self.config
        access, refresh = "authusrB" + secrets.token_hex(16), "authusrB" + secrets.token_hex(16)
        self.access_tokens.put(access, user.user_id, now + cfg.token_ttl_s, now)
        self.refresh_tokens.put(refresh, user.user_id, now + cfg.refresh_token_ttl_s, now)
        return access, refresh

    def token_user(self, access_token: str, now: float) -> User | None:
        user_id = self.access_tokens.get(access_token, now)
        return None if user_id is None else self.users.get(user_id)

    # ---- seed

    def seed(self, data: Mapping[str, Any], now: float | None = None) -> dict[str, int]:
        """Add or replace apps, users, activities, campaigns, budgets and WeChat apps/stocks.

        Everything is validated before anything changes; a bad entry raises ValueError naming it.
        """
        now = time.time() if now is None else now
        root = Reader(data, "seed")
        root.check_keys({"apps", "users", "activities", "cash_campaigns", "point_budgets", "wechat"})
        apps = [(r.text("app_id"), r.opt_text("public_key", max_len=8192)) for r in root.items("apps")]
        users = [self._seed_user(r) for r in root.items("users")]
        activities = [self._seed_activity(r, now) for r in root.items("activities")]
        campaigns = [self._seed_campaign(r, now) for r in root.items("cash_campaigns")]
        budgets = [self._seed_budget(r, now) for r in root.items("point_budgets")]
        wx = Reader(data.get("wechat") or {}, "seed.wechat")
        wx.check_keys({"apps", "stocks"})
        wx_apps = [self._seed_wx_app(r) for r in wx.items("apps")]
        wx_stocks = [self._seed_wx_stock(r) for r in wx.items("stocks")]

        for app_id, key in apps:
            self.register_app(app_id, key)
        for user_id, attrs in users:
            user = self.user(user_id)
            for name, value in attrs.items():
                setattr(user, name, value)
        self.activities.update((a.activity_id, a) for a in activities)
        self.campaigns.update((c.crowd_no, c) for c in campaigns)
        self.budgets.update((b.budget_code, b) for b in budgets)
        self.wx_apps.update((a.appid, a) for a in wx_apps)
        self.wx_stocks.update((s.stock_id, s) for s in wx_stocks)
        return {
            "apps": len(apps),
            "users": len(users),
            "activities": len(activities),
            "cash_campaigns": len(campaigns),
            "point_budgets": len(budgets),
            "wechat_apps": len(wx_apps),
            "wechat_stocks": len(wx_stocks),
        }

    @staticmethod
    def _seed_user(r: Reader) -> tuple[str, dict[str, Any]]:
        r.check_keys({"user_id", "nick_name", "avatar", "gender", "province", "city", "followed"})
        user_id = r.text("user_id")
        if not is_user_id(user_id):
            raise FieldError(r.path("user_id"), "must be 2088 followed by 12 digits")
        attrs: dict[str, Any] = {}
        for key in ("nick_name", "avatar", "gender", "province", "city"):
            value = r.opt_text(key, max_len=256)
            if value is not None:
                attrs[key] = value
        if "followed" in r.data:
            attrs["followed"] = r.flag("followed", False)
        return user_id, attrs

    @staticmethod
    def _seed_activity(r: Reader, now: float) -> Activity:
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

    @staticmethod
    def _seed_campaign(r: Reader, now: float) -> CashCampaign:
        r.check_keys(
            {"crowd_no", "coupon_name", "prize_type", "total_money", "total_num", "send_freqency"}
            | {"start_time", "end_time", "prize_msg"}
        )
        return campaign_from(r, r.text("crowd_no"), now, max_span_s=None)

    @staticmethod
    def _seed_budget(r: Reader, now: float) -> PointBudget:
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

    @staticmethod
    def _seed_wx_app(r: Reader) -> WxApp:
        r.check_keys({"appid", "secret", "unionid"})
        return WxApp(r.text("appid"), r.text("secret", max_len=128), r.flag("unionid", False))

    @staticmethod
    def _seed_wx_stock(r: Reader) -> WxStock:
        r.check_keys({"stock_id", "max_coupons", "max_coupons_per_user", "coupon_value"})
        return WxStock(
            stock_id=r.text("stock_id"),
            max_coupons=r.integer("max_coupons", 0, 10**9),
            max_per_user=r.opt_integer("max_coupons_per_user", 1, 10**6) or 1,
            coupon_value=r.opt_integer("coupon_value", 1, 10**9) or 100,
        )

    # ---- audit

    def audit(self) -> dict[str, Any]:
        """Check every invariant; `violations` has one sentence per broken one."""
        bad: list[str] = []
        vouchers: dict[str, dict[str, int]] = {}
        for a in self.activities.values():
            vouchers[a.activity_id] = {"stock": a.quantity, "issued": a.issued}
            if a.issued > a.quantity:
                bad.append(f"voucher activity {a.activity_id}: issued {a.issued} > stock {a.quantity}")
            if a.limit_per_user:
                over = [u for u, n in a.per_user.items() if n > a.limit_per_user]
                if over:
                    bad.append(
                        f"voucher activity {a.activity_id}: {len(over)} user(s) over the per-user limit "
                        f"{a.limit_per_user}, e.g. {over[0]} has {a.per_user[over[0]]}"
                    )
                if sum(a.per_user.values()) != a.issued:
                    bad.append(f"voucher activity {a.activity_id}: per-user counts do not add up to issued")
        cash: dict[str, dict[str, int]] = {}
        for c in self.campaigns.values():
            cash[c.crowd_no] = {"budget_fen": c.total_fen, "paid_fen": c.paid_fen, "count": c.count}
            if c.paid_fen > c.total_fen:
                bad.append(f"cash campaign {c.crowd_no}: paid {c.paid_fen} fen > budget {c.total_fen} fen")
            if c.count > c.total_num:
                bad.append(f"cash campaign {c.crowd_no}: {c.count} prizes > total_num {c.total_num}")
            over = [
                u
                for u, rec in c.per_user.items()
                if rec[0] > c.life_limit or rec[2] > (c.period_limit or 1 << 62)
            ]
            if over:
                bad.append(
                    f"cash campaign {c.crowd_no}: {len(over)} user(s) over send_freqency, e.g. {over[0]}"
                )
        points: dict[str, dict[str, int]] = {}
        for b in self.budgets.values():
            points[b.budget_code] = {"budget": b.total, "sent": b.sent}
            if b.sent > b.total:
                bad.append(f"point budget {b.budget_code}: sent {b.sent} > budget {b.total}")
        wechat: dict[str, dict[str, int]] = {}
        for s in self.wx_stocks.values():
            wechat[s.stock_id] = {"stock": s.max_coupons, "issued": s.issued}
            if s.issued > s.max_coupons:
                bad.append(f"wechat stock {s.stock_id}: issued {s.issued} > max_coupons {s.max_coupons}")
            over = [u for u, n in s.per_user.items() if n > s.max_per_user]
            if over:
                bad.append(f"wechat stock {s.stock_id}: {len(over)} user(s) over max_coupons_per_user")
        for (scope, key), record in self.idempotency.records():
            if record.effects != 1:
                bad.append(f"idempotency key {key!r} in {scope}: {record.effects} effects instead of 1")
        return {
            "ok": not bad,
            "violations": bad,
            "totals": {
                "methods": {m: s.as_dict() for m, s in sorted(self.stats.items())},
                "vouchers": vouchers,
                "cash": cash,
                "points": points,
                "wechat_coupons": wechat,
                "idempotency": {
                    "entries": len(self.idempotency),
                    "max_entries": self.idempotency.max_entries,
                    "evicted": self.idempotency.evicted,
                },
            },
        }

    def debug_force_issue(
        self, activity_id: str, user_id: str, out_biz_no: str | None = None, now: float | None = None
    ) -> str:
        """TEST ONLY: issue a voucher bypassing stock and per-user checks (and, with an out_biz_no
        already used, record a second effect under it) so a test can prove the audit catches it."""
        activity = self.activities.get(activity_id)
        if activity is None:
            raise ValueError(f"activity_id: no activity {activity_id!r}")
        activity.issued += 1
        activity.per_user[user_id] = activity.per_user.get(user_id, 0) + 1
        voucher_id = self.new_id("VCH")
        if out_biz_no is not None:
            scope = ("alipay.marketing.activity.voucher.send", activity_id)
            now = time.time() if now is None else now
            self.idempotency.remember(scope, out_biz_no, ("forced",), {"voucher_id": voucher_id}, now)
        return voucher_id


def campaign_from(r: Reader, crowd_no: str, now: float, max_span_s: float | None) -> CashCampaign:
    """A cash campaign from cash.create fields (API or seed); validates the per-packet range."""
    prize_type = r.text("prize_type")
    if prize_type not in ("fixed", "random"):
        raise FieldError(r.path("prize_type"), 'must be "fixed" or "random"')
    total_fen = r.money("total_money", 100, MAX_MONEY_FEN)
    total_num = r.integer("total_num", 1, 10**8)
    if not 20 * total_num <= total_fen <= 20_000 * total_num:
        raise FieldError(
            r.path("total_money"), "total_money / total_num must be between 0.20 and 200.00 yuan"
        )
    freq = r.opt_text("send_freqency", max_len=32)
    period, period_limit, life = parse_send_freqency(freq, r.path("send_freqency"))
    start, end = window(r, "start_time", "end_time", now)
    if max_span_s is not None and end - start > max_span_s:
        raise FieldError(r.path("end_time"), "the campaign may last at most 6 months")
    return CashCampaign(
        crowd_no=crowd_no,
        coupon_name=r.text("coupon_name", max_len=256),
        prize_type=prize_type,
        total_fen=total_fen,
        total_num=total_num,
        period=period,
        period_limit=period_limit,
        life_limit=life,
        start=start,
        end=end,
        prize_msg=r.opt_text("prize_msg", max_len=256) or "",
    )
