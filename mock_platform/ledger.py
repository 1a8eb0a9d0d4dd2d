"""The Ledger facade: the state (model.py) with seeding (seeding.py) and the audit (audit.py) as
methods, so handlers and routes hold one object. One per process; see model.py for the rules
every check-and-update follows.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mock_platform.audit import audit
from mock_platform.model import LedgerConfig, LedgerState
from mock_platform.seeding import Seed, apply_seed, parse_seed

__all__ = ["Ledger", "LedgerConfig"]


class Ledger(LedgerState):
    """All money and stock state of the mock, plus the audit that proves it honest."""

    def seed(self, data: Mapping[str, Any] | Seed, now: float | None = None) -> dict[str, int]:
        """Add or replace apps, users, activities, campaigns, budgets and WeChat apps/stocks from a
        seed document (parsed here, public keys taken as text) or parsed records. Everything is
        validated before anything changes; a bad entry raises ValueError naming it."""
        records = data if isinstance(data, Seed) else parse_seed(data, now, verify_keys=False)
        return apply_seed(self, records)

    def audit(self) -> dict[str, Any]:
        """Check every invariant; `violations` has one sentence per broken one."""
        return audit(self)

    def debug_force_issue(
        self, activity_id: str, user_id: str, out_biz_no: str | None = None, now: float | None = None
    ) -> str:
        """TEST ONLY: issue a voucher bypassing stock and per-user checks (and, with an out_biz_no
        already used, record a second effect under it) so a test can prove the audit catches it;
        it is journaled like any grant, so the effects export shows it too."""
        activity = self.activities.get(activity_id)
        if activity is None:
            raise ValueError(f"activity_id: no activity {activity_id!r}")
        activity.issued += 1
        activity.per_user[user_id] = activity.per_user.get(user_id, 0) + 1
        voucher_id = self.new_id("VCH")
        method = "alipay.marketing.activity.voucher.send"
        now = time.time() if now is None else now
        if out_biz_no is not None:
            self.idempotency.remember(
                (method, activity_id), out_biz_no, ("forced",), {"voucher_id": voucher_id}, now
            )
        self.effects.append(method, "", out_biz_no or "", user_id, activity_id, 1, "voucher", voucher_id, now)
        return voucher_id
