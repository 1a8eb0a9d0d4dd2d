"""The audit: every invariant of the ledger checked after a run, with the totals loadkit reconciles.

Bookkeeping during a run is O(1) per call; this walks the whole state (O(n)) once, when asked
(GET /admin/audit). Invariants: vouchers issued <= stock, per-user counts <= limits, cash paid <=
budget, points sent <= budget, coupons issued <= max_coupons, one effect per idempotency key.
"""

from __future__ import annotations

from typing import Any

from mock_platform.model import LedgerState

__all__ = ["audit"]


def audit(ledger: LedgerState) -> dict[str, Any]:
    """Check every invariant; `violations` has one sentence per broken one."""
    bad: list[str] = []
    vouchers: dict[str, dict[str, int]] = {}
    for a in ledger.activities.values():
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
    for c in ledger.campaigns.values():
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
            bad.append(f"cash campaign {c.crowd_no}: {len(over)} user(s) over send_freqency, e.g. {over[0]}")
    points: dict[str, dict[str, int]] = {}
    for b in ledger.budgets.values():
        points[b.budget_code] = {"budget": b.total, "sent": b.sent}
        if b.sent > b.total:
            bad.append(f"point budget {b.budget_code}: sent {b.sent} > budget {b.total}")
    wechat: dict[str, dict[str, int]] = {}
    for s in ledger.wx_stocks.values():
        wechat[s.stock_id] = {"stock": s.max_coupons, "issued": s.issued}
        if s.issued > s.max_coupons:
            bad.append(f"wechat stock {s.stock_id}: issued {s.issued} > max_coupons {s.max_coupons}")
        over = [u for u, n in s.per_user.items() if n > s.max_per_user]
        if over:
            bad.append(f"wechat stock {s.stock_id}: {len(over)} user(s) over max_coupons_per_user")
    for (scope, key), record in ledger.idempotency.records():
        if record.effects != 1:
            bad.append(f"idempotency key {key!r} in {scope}: {record.effects} effects instead of 1")
    return {
        "ok": not bad,
        "violations": bad,
        "totals": {
            "methods": {m: s.as_dict() for m, s in sorted(ledger.stats.items())},
            "vouchers": vouchers,
            "cash": cash,
            "points": points,
            "wechat_coupons": wechat,
            "idempotency": {
                "entries": len(ledger.idempotency),
                "max_entries": ledger.idempotency.max_entries,
                "evicted": ledger.idempotency.evicted,
            },
        },
    }
