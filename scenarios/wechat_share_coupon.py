"""WeChat share coupon: a new-user coupon spread by sharing; each share brings friends who claim.

Event: a WeChat mini-program gives new users a cash coupon (a WeChat Pay 代金券 stock) and asks them
to share the mini-program card: a visitor logs in (wx.login, then the merchant's `POST /api/wx/login`,
which calls `jscode2session`), claims the coupon (`POST /api/wx/coupons/claim`, which calls WeChat
Pay v3 `POST /v3/marketing/favor/users/{openid}/coupons`, signed both ways) and shares; friends
who open the card log in and claim theirs. Both the sharer and the friends claim.

Traffic: an open stream of sharers at the plan's rate, each a new user who logs in, claims and
shares. A share brings 0-3 friends (1.3 on average), who open the card a moment later; each
further step (log in, claim) loses ~30% of them, with think times between steps. One friend in
five already holds the coupon (an earlier sharer or friend) and meets the per-user limit. The
phone's part of wx.login is the mock's client simulator (`POST /sim/auth_code`, request
"wx.code"); every other call goes to the campaign service under test.

Gated: latency and error rate over the hold stage, per endpoint for `wx.login` and
`wx.coupon.claim`; `limit_reached` and `sold_out` are expected outcomes. With the mock: the ledger
audit (no coupon beyond the stock or the per-user limit) and the three-way reconciliation by
out_request_no of what users were told, the service's records and the mock's effects.

Your own service: point the plan's `service:` at it (or drop `service:` and give `host:`), keep the
request names so the budgets apply, set CAMPAIGN / OUTCOMES to what your API takes and answers,
and replace `phone_code()` with what your test phones do for wx.login (the real platform has no
/sim/).
"""

from __future__ import annotations

import logging
import random

from locust import task
from locust.exception import StopUser

from loadkit import JsonUser
from loadkit.platform.funnel import proceed, think
from loadkit.platform.population import IdSource, id_source, worker_index_of

log = logging.getLogger(__name__)

CAMPAIGN = {"campaign": "share-coupon"}  # the campaign service's WeChat stock (its default)
OUTCOMES = {"limit_reached": "limit_reached", "sold_out": "sold_out"}
FRIENDS = (0, 1, 2, 3)
FRIEND_WEIGHTS = (0.25, 0.35, 0.25, 0.15)
RETURNING_FRIEND = 0.2  # friends who already hold the coupon
THINK_S = (0.2, 0.6)  # between two steps of one person
OPEN_S = (0.3, 1.0)  # from the share to a friend opening the card
REMEMBER = 10_000  # coupon holders a returning friend is drawn from (per process)

_holders: list[str] = []  # the simulator's user ids of people who hold the coupon (this process)


def remember(user_id: str, rng: random.Random) -> None:
    """Keep a bounded, uniform sample of coupon holders (reservoir-like: no growth in a soak)."""
    if len(_holders) < REMEMBER:
        _holders.append(user_id)
    else:
        _holders[rng.randrange(REMEMBER)] = user_id


class ShareCouponVisitor(JsonUser):
    mock_url = ""
    ids: IdSource
    rng: random.Random

    def on_start(self) -> None:
        self.mock_url = (getattr(self.environment.parsed_options, "mock_url", None) or "").rstrip("/")
        if not self.mock_url:
            log.error("wechat_share_coupon: no mock URL (run it with --with-mock): the phones need /sim/")
            raise StopUser()
        self.ids = id_source(worker_index_of(self.environment))
        self.rng = random.Random()

    @task
    def share(self) -> None:
        """One sharer's journey: log in, claim, share; then the friends the share brings."""
        sharer = self.ids.new_id()
        session = self.login(sharer)
        if session is None:
            return
        think(*THINK_S)
        if not self.claim(sharer, session):
            return
        for _ in range(self.rng.choices(FRIENDS, FRIEND_WEIGHTS)[0]):
            think(*OPEN_S)
            self.friend()

    def friend(self) -> None:
        """A friend opens the shared card (step 0), logs in (step 1) and claims (step 2)."""
        returning = bool(_holders) and self.rng.random() < RETURNING_FRIEND
        friend = self.rng.choice(_holders) if returning else self.ids.new_id()
        if not proceed(1, rng=self.rng):
            return
        session = self.login(friend)
        if session is None or not proceed(2, rng=self.rng):
            return
        think(*THINK_S)
        self.claim(friend, session)

    def phone_code(self, user_id: str) -> str | None:
        """What the phone's wx.login gives the mini-program: here, the mock's client simulator."""
        answer = self.api(
            "POST",
            f"{self.mock_url}/sim/auth_code",
            {"user_id": user_id},
            name="wx.code",
            require=("auth_code",),
            told=None,
        )
        return None if answer is None else str(answer["auth_code"])

    def login(self, user_id: str) -> str | None:
        """A session at the service; the user's openid becomes who grants are told to."""
        code = self.phone_code(user_id)
        if code is None:
            return None
        answer = self.api(
            "POST", "/api/wx/login", {"code": code}, name="wx.login", require=("session", "openid"), told=None
        )
        if answer is None:
            return None
        self.user_id = str(answer["openid"])
        return str(answer["session"])

    def claim(self, user_id: str, session: str) -> bool:
        """Claim the coupon; True when the user holds it afterwards (granted or already had it)."""
        answer = self.api(
            "POST",
            "/api/wx/coupons/claim",
            CAMPAIGN,
            name="wx.coupon.claim",
            expect=OUTCOMES,
            require=("grant_id", "coupon_id"),
            headers={"Authorization": f"Bearer {session}"},
        )
        if answer is None or answer.get("result") not in ("granted", "limit_reached"):
            return False
        if answer.get("result") == "granted":
            remember(user_id, self.rng)
        return True
