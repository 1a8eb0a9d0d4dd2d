"""The grant workflows: Jifenbao points, voucher coupons, the follow gift, red envelopes (Alipay)
and WeChat Pay cash coupons.

Every grant goes the same way (README: "The grant state machine"):

1. `reserve()` in the service's own records: the user's limit is checked there first (no platform
   call when it is used up), and a `pending` row with a fresh biz number is written BEFORE the
   platform is called; or the user's `unknown` row is resumed with ITS biz number.
2. The platform is called with that biz number (WeChat's out_request_no), retried with the same
   number after a timeout (the platform is idempotent on it, so a retry never pays twice).
3. The row is completed: `granted`, `failed` (the platform certainly did nothing), or `unknown`
   (an attempt may have taken effect; the user is told to try later and their next claim resumes
   the same grant).

A second tap by the same user while the first is at the platform finds the row busy, waits for
the first to finish (within its own deadline) and then answers from the records.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from campaign_service.alipay import CHINA_TZ, Reply
from campaign_service.answers import Answer, platform_rejected, try_later
from campaign_service.calls import CallResult, Outcome
from campaign_service.campaigns import CampaignConfig, CashCampaign, VoucherCampaign, WeChatCoupon
from campaign_service.gateway import PlatformClient
from campaign_service.metrics import Metrics
from campaign_service.repository import ClaimKey, GrantRow, GrantStore, ReserveKind
from campaign_service.wechat import COUPON_SEND, WeChatClient

__all__ = ["CASH_TRIGGER", "FOLLOW_QUERY", "POINTS_SEND", "VOUCHER_SEND", "Claims", "new_biz_no"]

POINTS_SEND = "alipay.user.alipaypoint.send"
VOUCHER_SEND = "alipay.marketing.activity.voucher.send"
CASH_TRIGGER = "alipay.marketing.campaign.cash.trigger"
FOLLOW_QUERY = "alipay.open.public.user.follow.query"
NO_PRIZE = "trigger_result_false"
LEASE_MARGIN_S = 5.0  # a pending row outlives its request's deadline by this much before others may resume it
_RNG = random.Random()  # seeded from os.urandom
_YUAN = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")

# WeChat Pay refusals that are answers to the user (the Alipay ones are in the campaign config).
WX_OUTCOMES = {"NOT_ENOUGH": "sold_out", "RULE_LIMIT": "limit_reached"}

Precheck = Callable[[float], Awaitable[Answer | None]]
BeforeRetry = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
# How a grant reaches its platform: (row, the call's body, deadline, before_retry) -> its result.
Send = Callable[[GrantRow, dict[str, Any], float, BeforeRetry | None], Awaitable[CallResult[Any]]]


def new_biz_no(prefix: str) -> str:
    """A biz number unique across restarts and processes: prefix, China-time second, 64 random
    bits (from a generator seeded by the OS: unguessable is not needed, unique is; a clash would
    be refused by the UNIQUE biz_no column, not paid twice)."""
    return f"{prefix}{datetime.now(CHINA_TZ):%Y%m%d%H%M%S}{_RNG.getrandbits(64):016x}"


def china_day(now: float) -> str:
    return datetime.fromtimestamp(now, CHINA_TZ).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class _Spec:
    """One kind of grant: which method, which campaign, which limit, and how to read a success."""

    kind: str  # points | voucher | cash | coupon
    method: str
    campaign: str
    limit: int
    period: str  # lifetime | day
    amount: int  # the row's amount before the platform answers
    prefix: str  # of the biz number
    biz_key: str  # partner_biz_no | out_biz_no | out_request_no
    biz: Callable[[GrantRow], dict[str, Any]]
    # (platform_id, amount or None to keep the row's, extra answer fields), or None when the
    # platform answered but granted nothing (a cash trigger with trigger_result "false")
    granted: Callable[[GrantRow, Any], tuple[str | None, int | None, dict[str, Any]] | None]
    done: Callable[[GrantRow], Answer]
    send: Send | None = None  # None: the Alipay gateway, `method` with `biz` as biz_content
    # a refusal's user-facing outcome (sold_out, ...), or None; None: the config's Alipay sub_codes
    outcome: Callable[[Any], str | None] | None = None


class Claims:
    def __init__(
        self,
        store: GrantStore,
        platform: PlatformClient,
        campaigns: CampaignConfig,
        metrics: Metrics,
        *,
        wechat: WeChatClient | None = None,
        bug: str | None = None,
    ) -> None:
        self.store = store
        self.platform = platform
        self.wechat = wechat
        self.campaigns = campaigns
        self.metrics = metrics
        self.bug = bug
        self.lease_s = platform.tuning.deadline_s + LEASE_MARGIN_S
        self._inflight: dict[int, asyncio.Event] = {}  # grant_id -> set when its request is done

    async def points(self, user_id: str, deadline: float) -> Answer:
        j = self.campaigns.jifenbao
        assert j is not None, "the API answers 404 when no Jifenbao campaign is configured"
        spec = _Spec(
            "points", POINTS_SEND, j.budget_code, 1, "day", j.points_per_claim, "JFB", "partner_biz_no",
            biz=lambda row: {
                "budget_code": row.campaign,
                "partner_biz_no": row.biz_no,
                "point_amount": row.amount,
                "user_id": row.user_id,
                "memo": j.title,
            },
            granted=lambda row, reply: (_text(reply, "record_id"), None, {"points": row.amount}),
            done=lambda row: Answer(
                200, {"result": "already_claimed", "grant_id": row.grant_id, "biz_no": row.biz_no}
            ),
        )  # fmt: skip
        return await self._grant(spec, user_id, deadline)

    async def coupon(self, campaign: VoucherCampaign, user_id: str, deadline: float) -> Answer:
        return await self._grant(_voucher_spec(campaign), user_id, deadline)

    async def follow_gift(self, user_id: str, deadline: float) -> Answer:
        """Checks the follow only for a new grant: a resumed one passed that check already."""
        gift = self.campaigns.follow_gift
        assert gift is not None, "the API answers 404 when no follow gift is configured"

        async def following(deadline: float) -> Answer | None:
            result = await self.platform.call(
                FOLLOW_QUERY, deadline=deadline, biz={"user_id": user_id}, idempotent=True
            )
            if result.reply is None:
                return try_later(result.retry_after_s)
            if result.outcome is not Outcome.OK:
                return platform_rejected(FOLLOW_QUERY, result.reply)
            if result.reply.fields.get("is_follow") != "T":
                return Answer(200, {"result": "not_following"})
            return None

        return await self._grant(_voucher_spec(gift), user_id, deadline, following)

    async def red_envelope(self, campaign: CashCampaign, user_id: str, deadline: float) -> Answer:
        def granted(row: GrantRow, reply: Reply) -> tuple[str | None, int | None, dict[str, Any]] | None:
            if str(reply.fields.get("trigger_result", "true")).lower() != "true":
                return None  # answered, but no prize: nothing was paid
            prize = str(reply.fields.get("prize_amount", ""))
            fen = int(Decimal(prize) * 100) if _YUAN.fullmatch(prize) else None
            return _text(reply, "biz_no"), fen, {"amount": prize}

        spec = _Spec(
            "cash", CASH_TRIGGER, campaign.crowd_no, campaign.per_user_limit, campaign.limit_period, 0,
            "CSH", "out_biz_no",
            biz=lambda row: {"crowd_no": row.campaign, "out_biz_no": row.biz_no, "user_id": row.user_id},
            granted=granted,
            done=lambda row: Answer(200, {"result": "limit_reached"}),
        )  # fmt: skip
        return await self._grant(spec, user_id, deadline)

    async def wechat_coupon(self, campaign: WeChatCoupon, openid: str, deadline: float) -> Answer:
        """A WeChat Pay cash coupon from `campaign`'s stock to `openid`: out_request_no is the
        row's biz number (the mchid, the China-time second, 64 random bits: unique per merchant)."""
        wx = self.wechat
        assert wx is not None, "the API answers 404 when WeChat is not configured"
        creator = campaign.creator_mchid or wx.settings.mchid

        def granted(row: GrantRow, reply: Any) -> tuple[str | None, int | None, dict[str, Any]]:
            coupon_id = _text(reply, "coupon_id")
            return coupon_id, None, {"coupon_id": coupon_id}

        async def send(
            row: GrantRow, body: dict[str, Any], deadline: float, before_retry: BeforeRetry | None
        ) -> CallResult[Any]:
            return await wx.send_coupon(row.user_id, body, deadline=deadline, before_retry=before_retry)

        spec = _Spec(
            "coupon", COUPON_SEND, campaign.stock_id, campaign.per_user_limit, campaign.limit_period, 1,
            wx.settings.mchid, "out_request_no",
            biz=lambda row: {
                "stock_id": row.campaign,
                "out_request_no": row.biz_no,
                "appid": wx.settings.appid,
                "stock_creator_mchid": creator,
            },
            granted=granted,
            done=lambda row: Answer(200, {"result": "limit_reached"}),
            send=send,
            outcome=lambda reply: WX_OUTCOMES.get(reply.code),
        )  # fmt: skip
        return await self._grant(spec, openid, deadline)

    async def _grant(
        self, spec: _Spec, user_id: str, deadline: float, precheck: Precheck | None = None
    ) -> Answer:
        period = china_day(time.time()) if spec.period == "day" else ""
        key = ClaimKey(spec.kind, spec.method, spec.campaign, user_id, period)
        for _ in range(3):
            res = await self.store.reserve(
                key, spec.limit, new_biz_no(spec.prefix), spec.amount, time.time(), self.lease_s
            )
            if res.kind is not ReserveKind.BUSY:
                break
            if not await self._wait_for(res.row.grant_id, deadline):
                return try_later(1)
        else:
            return try_later(1)
        if res.kind is ReserveKind.DONE:
            return spec.done(res.row)
        row = res.row
        done = self._inflight[row.grant_id] = asyncio.Event()
        try:
            return await self._settle(spec, row, res.kind is ReserveKind.RESUMED, deadline, precheck)
        finally:
            del self._inflight[row.grant_id]
            done.set()

    async def _wait_for(self, grant_id: int, deadline: float) -> bool:
        """Wait for the request working on `grant_id` to finish; False when it is not ours or
        the deadline comes first."""
        event = self._inflight.get(grant_id)
        if event is None:
            return False
        try:
            async with asyncio.timeout_at(deadline):
                await event.wait()
        except TimeoutError:
            return False
        return True

    async def _settle(
        self, spec: _Spec, row: GrantRow, resumed: bool, deadline: float, precheck: Precheck | None
    ) -> Answer:
        if precheck is not None and not resumed:
            blocked = await precheck(deadline)
            if blocked is not None:
                await self.store.release(row.grant_id, time.time(), resumed=False)
                return blocked
        send = spec.send or self._via_gateway(spec.method)
        before_retry = self._new_number(spec, row) if self.bug == "new-biz-no-on-retry" else None
        result = await send(row, spec.biz(row), deadline, before_retry)
        now, reply = time.time(), result.reply
        if reply is not None and result.outcome is Outcome.OK:
            success = spec.granted(row, reply)
            if success is None:  # answered, but granted nothing
                await self.store.finish(row.grant_id, "failed", now, attempts=result.attempts, code=NO_PRIZE)
                self.metrics.grants.labels(spec.kind, "failed").inc()
                return Answer(200, {"result": "no_prize"})
            platform_id, amount, fields = success
            final = await self.store.finish(
                row.grant_id, "granted", now, attempts=result.attempts, platform_id=platform_id, amount=amount
            )
            self.metrics.grants.labels(spec.kind, "granted").inc()
            return Answer(
                200, {"result": "granted", "grant_id": final.grant_id, "biz_no": final.biz_no, **fields}
            )
        if reply is not None:  # a definite refusal: the platform did nothing
            await self.store.finish(
                row.grant_id, "failed", now, attempts=result.attempts, code=reply.failure_code
            )
            self.metrics.grants.labels(spec.kind, "failed").inc()
            outcome = None
            if result.outcome is Outcome.BUSINESS and spec.outcome is not None:
                outcome = spec.outcome(reply)
            elif result.outcome is Outcome.BUSINESS:
                outcome = self.campaigns.codes.classify(reply.sub_code)
            return Answer(200, {"result": outcome}) if outcome else platform_rejected(spec.method, reply)
        if result.attempts == 0:  # the breaker or the bulkhead refused before anything was sent
            await self.store.release(row.grant_id, now, resumed=resumed)
        else:
            # Unknown when an attempt (this time or an earlier one) may have taken effect: the
            # row keeps its biz number for the user's next claim. Failed when none can have.
            status = "unknown" if result.maybe_done or resumed else "failed"
            await self.store.finish(
                row.grant_id, status, now, attempts=result.attempts, code=str(result.outcome)
            )
            self.metrics.grants.labels(spec.kind, status).inc()
        return try_later(result.retry_after_s)

    def _via_gateway(self, method: str) -> Send:
        """Send a grant through the Alipay gateway: `method`, the body as biz_content."""

        async def send(
            row: GrantRow, biz: dict[str, Any], deadline: float, before_retry: BeforeRetry | None
        ) -> CallResult[Any]:
            return await self.platform.call(
                method, deadline=deadline, biz=biz, idempotent=True, before_retry=before_retry
            )

        return send

    def _new_number(self, spec: _Spec, row: GrantRow) -> BeforeRetry:
        """THE PLANTED BUG (`--bug new-biz-no-on-retry`): after a timeout the retry goes out under
        a NEW biz number, and the row forgets the old one. The platform cannot tell it is the
        same claim, so a slow platform that did carry out the first attempt pays twice."""

        async def renumber(biz: dict[str, Any]) -> dict[str, Any]:
            fresh = new_biz_no(spec.prefix)
            await self.store.rebind(row.grant_id, fresh, time.time())
            return {**biz, spec.biz_key: fresh}

        return renumber


def _voucher_spec(campaign: VoucherCampaign) -> _Spec:
    return _Spec(
        "voucher", VOUCHER_SEND, campaign.activity_id, campaign.per_user_limit, campaign.limit_period, 1,
        "VCH", "out_biz_no",
        biz=lambda row: {"activity_id": row.campaign, "out_biz_no": row.biz_no, "user_id": row.user_id},
        granted=lambda row, reply: (
            _text(reply, "voucher_id"), None, {"voucher_id": _text(reply, "voucher_id")}
        ),
        done=lambda row: Answer(200, {"result": "limit_reached"}),
    )  # fmt: skip


def _text(reply: Any, key: str) -> str | None:
    value = reply.fields.get(key)
    return None if value is None else str(value)
