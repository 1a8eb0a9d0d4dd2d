"""GET /api/jifenbao/budget: `alipay.user.alipaypoint.budgetlib.query`, cached.

A channel sends hundreds of visitors a second and each looks at the budget; without a cache each
look would be a platform call. The answer is kept `CAMPAIGN_BUDGET_CACHE_S` (1 s), and while it is
being fetched every other request waits for that one call (single flight) instead of making its
own. Failures are not cached.
"""

from __future__ import annotations

import asyncio

from campaign_service.answers import Answer, platform_rejected, try_later
from campaign_service.calls import Outcome
from campaign_service.campaigns import PointsCampaign
from campaign_service.gateway import PlatformClient

__all__ = ["BUDGET_QUERY", "BudgetCache"]

BUDGET_QUERY = "alipay.user.alipaypoint.budgetlib.query"


class BudgetCache:
    def __init__(self, platform: PlatformClient, campaign: PointsCampaign, ttl_s: float) -> None:
        self.platform = platform
        self.campaign = campaign
        self.ttl_s = ttl_s
        self._answer: Answer | None = None
        self._expires = 0.0
        self._fetch: asyncio.Task[Answer] | None = None

    async def get(self, deadline: float) -> Answer:
        loop = asyncio.get_running_loop()
        if self._answer is not None and loop.time() < self._expires:
            return self._answer
        if self._fetch is None:
            self._fetch = loop.create_task(self._query(deadline))
            self._fetch.add_done_callback(self._fetched)
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(self._fetch)
        except TimeoutError:
            return try_later(1)

    def _fetched(self, task: asyncio.Task[Answer]) -> None:
        self._fetch = None
        if not task.cancelled() and task.exception() is None and task.result().status == 200:
            self._answer = task.result()
            self._expires = asyncio.get_running_loop().time() + self.ttl_s

    async def _query(self, deadline: float) -> Answer:
        code = self.campaign.budget_code
        result = await self.platform.call(
            BUDGET_QUERY, deadline=deadline, biz={"budget_code": code}, idempotent=True
        )
        reply = result.reply
        if reply is None:
            return try_later(result.retry_after_s)
        if result.outcome is not Outcome.OK:
            return platform_rejected(BUDGET_QUERY, reply)
        remain = reply.fields.get("remain_amount")
        if isinstance(remain, str) and remain.isdigit():
            remain = int(remain)
        if isinstance(remain, bool) or not isinstance(remain, int):
            return Answer(
                502, {"error": "platform_rejected", "message": f"{BUDGET_QUERY} gave no remain_amount"}
            )
        return Answer(200, {"budget_code": code, "remain_points": remain})
