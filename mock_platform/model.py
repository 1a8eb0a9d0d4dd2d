"""The model: users, voucher activities, cash campaigns, point budgets, WeChat apps and stocks, and
the ledger state that holds them with its O(1) bookkeeping (ids, auth codes, tokens, per-method
stats, the effects journal).

Every check-and-update is a plain method call (no await), so a handler is the critical section.
Money is integer fen, points are integers, times are epoch seconds (wire format: GMT+8 strings).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mock_platform.codes import BusinessCodes
from mock_platform.effects import EffectJournal
from mock_platform.fields import (
    MAX_MONEY_FEN,
    FieldError,
    Reader,
    is_user_id,
    parse_send_freqency,
    period_key,
    window,
)
from mock_platform.idempotency import DEFAULT_MAX_ENTRIES, DEFAULT_TTL_S, ExpiringMap, IdempotencyStore

__all__ = [
    "Activity",
    "CashCampaign",
    "LedgerConfig",
    "LedgerState",
    "MethodStats",
    "PointBudget",
    "User",
    "WxApp",
    "WxCoupon",
    "WxMerchant",
    "WxStock",
]


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
    issued: int = field(default=0, init=False)
    per_user: dict[str, int] = field(default_factory=dict, init=False)

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
    paid_fen: int = field(default=0, init=False)
    count: int = field(default=0, init=False)
    # [lifetime, period key, period count]
    per_user: dict[str, list[int]] = field(default_factory=dict, init=False)

    @classmethod
    def from_fields(cls, r: Reader, crowd_no: str, now: float, max_span_s: float | None) -> CashCampaign:
        """A campaign from cash.create's fields (the API's or a seed's); checks the per-packet range."""
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
        return cls(
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
    sent: int = field(default=0, init=False)

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
class WxMerchant:
    """A WeChat Pay merchant: its API certificate's serial and public key verify its requests; its
    APIv3 key (32 characters) encrypts the platform certificates it downloads."""

    mchid: str
    serial_no: str
    public_key: str  # SPKI PEM
    apiv3_key: str | None = None


@dataclass(slots=True)
class WxStock:
    """A WeChat Pay cash-coupon stock (代金券批次); per_user counts are keyed by openid.

    A seeded stock without a creator or a window is running, sends for any merchant, and always.
    """

    stock_id: str
    max_coupons: int
    max_per_user: int
    coupon_value: int  # fen per coupon (fixed_normal_coupon.coupon_amount)
    creator_mchid: str | None = None
    stock_name: str = ""
    status: str = "running"  # unactivated | running | paused
    begin: float | None = None
    end: float | None = None
    transaction_minimum: int = 0
    max_amount_by_day: int | None = None
    natural_person_limit: bool = False
    prevent_api_abuse: bool = False
    no_cash: bool = False
    comment: str = ""
    created: float = 0.0
    started: float | None = None
    paused: float | None = None
    issued: int = field(default=0, init=False)
    per_user: dict[str, int] = field(default_factory=dict, init=False)

    @property
    def max_amount(self) -> int:
        return self.max_coupons * self.coupon_value

    def take(self, openid: str) -> str | None:
        if self.issued >= self.max_coupons:
            return "sold_out"
        count = self.per_user.get(openid, 0)
        if count >= self.max_per_user:
            return "user_limit"
        self.per_user[openid] = count + 1
        self.issued += 1
        return None


@dataclass(frozen=True, slots=True)
class WxCoupon:
    """What a coupon query answers: kept in a bounded map, like the idempotency records."""

    stock_id: str
    openid: str
    appid: str
    created: float


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
    effects_path: str | None = None  # the effects journal's file; None: a private temporary one

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
        effects = Reader(config.get("effects") or {}, "effects")
        effects.check_keys({"path"})
        effects_path = effects.opt_text("path", max_len=4096)
        if effects_path is not None and (
            os.path.isdir(effects_path) or not os.path.isdir(os.path.dirname(os.path.abspath(effects_path)))
        ):
            raise FieldError("effects.path", "must name a file in an existing directory")
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
            effects_path=effects_path,
        )


def _digest(tag: str, user_id: str) -> str:
    return hashlib.sha256(f"{tag}:{user_id}".encode()).hexdigest()


class LedgerState:
    """The mock's state and its O(1) bookkeeping. Apps and WeChat merchants (keys) survive
    `reset()`; everything else is cleared. `ledger.Ledger` adds seeding and the audit on top."""

    def __init__(self, config: LedgerConfig | None = None) -> None:
        self.config = config or LedgerConfig()
        self.codes = self.config.codes
        self.apps: dict[str, str | None] = {}
        self.wx_apps: dict[str, WxApp] = {}
        self.wx_merchants: dict[str, WxMerchant] = {}
        self.effects = EffectJournal(self.config.effects_path)
        self.reset()

    def reset(self) -> None:
        cfg = self.config
        self.rng = random.Random(cfg.random_seed)
        self.users: dict[str, User] = {}
        self.activities: dict[str, Activity] = {}
        self.campaigns: dict[str, CashCampaign] = {}
        self.budgets: dict[str, PointBudget] = {}
        self.wx_stocks: dict[str, WxStock] = {}
        self.wx_coupons: ExpiringMap[WxCoupon] = ExpiringMap(cfg.idempotency_max_entries)
        self.used_codes: ExpiringMap[str] = ExpiringMap(cfg.auth_max_entries)
        self.wx_logins: dict[str, list[int]] = {}  # user_id -> [minute, code2session calls in it]
        self.idempotency = IdempotencyStore(cfg.idempotency_ttl_s, cfg.idempotency_max_entries)
        self.auth_codes: ExpiringMap[str] = ExpiringMap(cfg.auth_max_entries)
        self.access_tokens: ExpiringMap[str] = ExpiringMap(cfg.auth_max_entries)
        self.refresh_tokens: ExpiringMap[str] = ExpiringMap(cfg.auth_max_entries)
        self.stats: dict[str, MethodStats] = {}
        self._seq = itertools.count(1)
        self.effects.clear()

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
        if user_id is None:
            return None
        self.used_codes.put(code, user_id, now + self.config.auth_code_ttl_s, now)
        return self.users.get(user_id)

    def code_was_used(self, code: str, now: float) -> bool:
        """Whether `code` was a valid code already consumed (WeChat tells 40163 from 40029)."""
        return self.used_codes.get(code, now) is not None

    def register_wx_merchant(self, merchant: WxMerchant) -> None:
        self.wx_merchants[merchant.mchid] = merchant

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
