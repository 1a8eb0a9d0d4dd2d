"""Jifenbao channel: visitors log in, check the points budget and receive Jifenbao points.

Event: Alipay's Jifenbao (集分宝) points channel sends visitors to the merchant's mini-program,
where each visit ends in a points grant (`alipay.user.alipaypoint.send`, 100 points = 1 yuan). The
channel asks the merchant to hold at least 200 QPS of points sends before it goes live.

Traffic: an open stream of visits at the plan's rate. Most visitors come back daily to collect
points: returning visitors (65%) reuse their session; new visitors (30%) log in (auth code, then
`alipay.system.oauth.token`); dormant ones (5%) log in with an id never seen in the run. Each
visit queries the budget (`points.budget`), pauses like a person, then receives points with a
unique partner_biz_no (`points.send`).

Gated: `points.send` held at >= 200 QPS over the hold stage, latency budgets per endpoint, error
rate; with the mock, the ledger audit and the reconciliation of sends seen vs points issued.

Your own service: point the plan's `host` (or `--host`) at the service that fronts these calls, and
set BUDGET_CODE / LOADKIT_APP_ID to what it expects; the request names stay the same, so the plan's
budgets still apply. Drop `mock:` from the plan when the target is not the mock.
"""

from __future__ import annotations

from locust import task

from loadkit.platform.client import new_biz_no
from loadkit.platform.funnel import think
from loadkit.platform.user import PlatformUser

BUDGET_CODE = "JFB-CHANNEL"
POINTS_PER_VISIT = 100  # 1 yuan
# A budget running dry during the event is a real failure, not a normal outcome: nothing expected.
EXPECTED: dict[str, str] = {}
THINK_S = (0.2, 0.8)  # between seeing the budget and tapping "receive"


def visit(user: PlatformUser) -> None:
    """One channel visit: log in (or reuse the session), look at the budget, receive points."""
    session = user.login(user.population.next())
    if session is None:
        return
    if user.platform.call("alipay.user.alipaypoint.budgetlib.query", {"budget_code": BUDGET_CODE}) is None:
        return
    think(*THINK_S)
    user.platform.call(
        "alipay.user.alipaypoint.send",
        {
            "budget_code": BUDGET_CODE,
            "partner_biz_no": new_biz_no("JFB"),
            "point_amount": POINTS_PER_VISIT,
            "user_id": session.user_id,
            "memo": "Jifenbao channel visit",
        },
        expected=EXPECTED,
    )


class JifenbaoVisitor(PlatformUser):
    population_shares = (0.30, 0.65, 0.05)

    @task
    def channel_visit(self) -> None:
        visit(self)
