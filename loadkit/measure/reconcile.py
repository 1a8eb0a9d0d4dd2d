"""Reconciliation: what the users were told against what the mock's ledger holds.

A success the users saw must match an effect in the ledger. Replays (idempotent repeats) are
successes without a new effect, and a call that failed on the client side (timeout) may still have
taken effect, and a request still in flight when Locust stops its users is never reported at all,
so the rule per method is: seen - replays <= effects <= seen - replays + errors_seen + in_flight,
where in_flight is at most the user pool at the end of the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def reconcile(
    seen: Mapping[str, Mapping[str, int]],
    audit: Mapping[str, Any],
    request_names: Mapping[str, str],
    in_flight: int = 0,
) -> dict[str, Any]:
    """`seen`: request name -> {successes, errors} over the whole run (expected outcomes excluded).

    `request_names`: request name -> platform method. Methods the ledger tracks but no request
    name maps to are left out (the users did not call them through a named request).
    """
    ledger = (audit.get("totals") or {}).get("methods") or {}
    per_method: dict[str, dict[str, int]] = {}
    for name, counts in seen.items():
        method = request_names.get(name)
        if method is None or method not in ledger:
            continue
        agg = per_method.setdefault(method, {"seen_successes": 0, "seen_errors": 0})
        agg["seen_successes"] += int(counts.get("successes", 0))
        agg["seen_errors"] += int(counts.get("errors", 0))
    methods: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for method, agg in sorted(per_method.items()):
        led = ledger[method]
        effects = int(led.get("effects", 0))
        replays = int(led.get("replays", 0))
        low = agg["seen_successes"] - replays
        high = low + agg["seen_errors"] + in_flight
        ok = low <= effects <= high
        methods[method] = {**agg, "effects": effects, "replays": replays, "ok": ok}
        if not ok:
            problems.append(
                f"{method}: users saw {agg['seen_successes']} successes ({replays} replays, "
                f"{agg['seen_errors']} errors) but the ledger holds {effects} effects"
            )
    return {"ok": not problems, "methods": methods, "problems": problems, "in_flight_allowance": in_flight}


def check_expectations(audit: Mapping[str, Any], expect: Mapping[str, Any]) -> list[str]:
    """The plan's `mock.expect`: audit totals the run must end with (a flash sale must sell out its
    stock exactly). Returns a sentence per mismatch."""
    problems = []
    for path, wanted in expect.items():
        node: Any = audit.get("totals") or {}
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node != wanted:
            problems.append(f"the plan expects {path} = {wanted}, the ledger has {node}")
    return problems
