"""Reconciliation: what the users were told against what the mock's ledger holds.

Two ways to do it. By id (`reconcile_by_id`), when the users named the grants they were told
about (`JsonUser`): the told biz numbers, the service's own records and the ledger's effects are
matched number by number, and each problem is named (phantom, orphan, paid twice, over limit).
By count (`reconcile`), for platform-direct scenarios whose users call the gateway themselves:

A success the users saw must match an effect in the ledger. Replays (idempotent repeats) are
successes without a new effect, and a call that failed on the client side (timeout) may still have
taken effect, and a request still in flight when Locust stops its users is never reported at all,
so the rule per method is: seen - replays <= effects <= seen - replays + errors_seen + in_flight,
where in_flight is at most the user pool at the end of the run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypedDict

from loadkit.measure.told import Told

FIRST = 20  # ids listed per kind of problem in summary.json
IN_REASON = 5  # ids named in a problem's sentence


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
    return {
        "ok": not problems,
        "mode": "counts",
        "methods": methods,
        "problems": problems,
        "in_flight_allowance": in_flight,
    }


class Effect(NamedTuple):
    """One line of the mock's effects journal (GET /admin/effects)."""

    biz_no: str
    method: str
    app_id: str
    user_id: str
    campaign: str
    id: str


class Record(NamedTuple):
    """One grant of the service's own records (e.g. the campaign service's /admin/grants)."""

    biz_no: str
    status: str  # granted | pending | failed | unknown
    user_id: str
    method: str
    campaign: str
    grant_id: str | None
    attempts: int


class Found(TypedDict):
    count: int
    first: list[str]  # the first ids (biz numbers; users for over_limit)


KINDS = ("phantom", "orphan", "unconfirmed", "paid_twice", "over_limit")
FAILING = ("phantom", "orphan", "paid_twice", "over_limit")  # unconfirmed is not a failure


def reconcile_by_id(
    told: Sequence[Told],
    effects: Iterable[Effect],
    records: Sequence[Record] | None,
    *,
    per_user_limit: Mapping[str, int] | None = None,
    in_flight: int = 0,
    bad_lines: int = 0,
) -> dict[str, Any]:
    """Three-way (with the service's `records`) or two-way (told against the ledger) by id.

    - phantom: a grant a user was told about (or the service recorded granted) that the ledger lacks;
    - orphan: a ledger effect no user was told about and the service does not know (without
      records: more untold effects than `in_flight` calls cut when the users stopped explain);
    - unconfirmed: an effect the service knows but no user was told about (in flight when users
      stopped, or told "try later" after a timeout that took effect): listed, not a failure;
    - paid twice: a biz number with two effects, or one service grant whose user, method and
      campaign have effects under numbers the service does not know (a retry under a new number);
    - over limit: a user with more effects per method or campaign than `per_user_limit` allows.
    """
    by_biz: dict[str, list[Effect]] = defaultdict(list)
    for effect in effects:
        by_biz[effect.biz_no].append(effect)
    told_by_biz: dict[str, Told] = {}
    for row in told:
        told_by_biz.setdefault(row[1], row)
    record_by_biz = {r.biz_no: r for r in records} if records is not None else None
    found: dict[str, list[str]] = {kind: [] for kind in KINDS}
    problems: list[str] = []

    phantom_told = [biz for biz in told_by_biz if biz not in by_biz]
    phantom_records = [r.biz_no for r in records or () if r.status == "granted" and r.biz_no not in by_biz]
    found["phantom"] = phantom_told + [b for b in phantom_records if b not in told_by_biz]
    if phantom_told:
        problems.append(
            f"phantom: {len(phantom_told)} grant(s) users were told about are not in the ledger: "
            + _ids(phantom_told, told_by_biz)
        )
    extra = [b for b in phantom_records if b not in told_by_biz]
    if extra:
        problems.append(
            f"phantom: {len(extra)} grant(s) the service recorded as granted are not in the ledger: "
            + _ids(extra)
        )

    doubles = [biz for biz, hits in by_biz.items() if len(hits) > 1]
    found["paid_twice"] += doubles
    if doubles:
        shown = "; ".join(
            f"{biz} ({len(by_biz[biz])} times, user {by_biz[biz][0].user_id})" for biz in doubles[:IN_REASON]
        )
        more = f" and {len(doubles) - IN_REASON} more" if len(doubles) > IN_REASON else ""
        problems.append(f"paid twice: {len(doubles)} biz number(s) took effect more than once: {shown}{more}")

    untold = [biz for biz in by_biz if biz not in told_by_biz]
    if record_by_biz is None:
        _two_way(untold, by_biz, in_flight, found, problems)
    else:
        _three_way(untold, by_biz, record_by_biz, records or (), found, problems)

    if per_user_limit:
        counts: Counter[tuple[str, str]] = Counter()
        numbers: dict[tuple[str, str], list[str]] = defaultdict(list)
        for biz, hits in by_biz.items():
            for effect in hits:
                for key in (effect.method, effect.campaign):
                    if key in per_user_limit:
                        counts[effect.user_id, key] += 1
                        numbers[effect.user_id, key].append(biz)
        over = [(user, key, n) for (user, key), n in sorted(counts.items()) if n > per_user_limit[key]]
        found["over_limit"] = [user for user, _key, _n in over]
        if over:
            shown = "; ".join(
                f"user {user} got {n} of {key} (limit {per_user_limit[key]}: {_ids(numbers[user, key])})"
                for user, key, n in over[:IN_REASON]
            )
            more = f" and {len(over) - IN_REASON} more" if len(over) > IN_REASON else ""
            problems.append(f"over limit: {len(over)} user(s) got more than their limit: {shown}{more}")
    doc = {
        "ok": not any(found[kind] for kind in FAILING),
        "mode": "two-way" if records is None else "three-way",
        "problems": problems,
        "told": len(told_by_biz),
        "records": None if records is None else len(records),
        "effects": sum(len(h) for h in by_biz.values()),
        **{kind: Found(count=len(ids), first=ids[:FIRST]) for kind, ids in found.items()},
        "in_flight_allowance": in_flight if records is None else None,
        "bad_lines": bad_lines,
    }
    return doc


def _two_way(
    untold: list[str],
    by_biz: Mapping[str, list[Effect]],
    in_flight: int,
    found: dict[str, list[str]],
    problems: list[str],
) -> None:
    """Without the service's records, an untold effect is unconfirmed as long as the calls cut
    when the users stopped can explain it; beyond that they are orphans."""
    found["unconfirmed"] = untold[:in_flight]
    orphans = untold[in_flight:]
    found["orphan"] = orphans
    if orphans:
        problems.append(
            f"orphan: {len(untold)} ledger effect(s) no user was told about, more than the {in_flight} "
            f"calls in flight at the end can explain: " + _ids(untold, effects=by_biz)
        )


def _three_way(
    untold: list[str],
    by_biz: Mapping[str, list[Effect]],
    record_by_biz: Mapping[str, Record],
    records: Sequence[Record],
    found: dict[str, list[str]],
    problems: list[str],
) -> None:
    grants: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    for record in records:
        if record.status != "failed":
            grants[record.user_id, record.method, record.campaign].append(record)
    failed_but_paid, unknown_to_service = [], []
    for biz in untold:
        record = record_by_biz.get(biz)
        if record is None:
            unknown_to_service.append(biz)
        elif record.status == "failed":
            failed_but_paid.append(biz)
        else:
            found["unconfirmed"].append(biz)
    if failed_but_paid:
        found["orphan"] += failed_but_paid
        problems.append(
            f"orphan: {len(failed_but_paid)} ledger effect(s) for grants the service recorded as failed "
            "(money spent, the user told it did not work): " + _ids(failed_but_paid, effects=by_biz)
        )
    linked: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    orphans = []
    for biz in unknown_to_service:
        effect = by_biz[biz][0]
        key = (effect.user_id, effect.method, effect.campaign)
        if key in grants:
            linked[key].append(biz)
        else:
            orphans.append(biz)
    if linked:
        parts = []
        for key, numbers in list(linked.items())[:IN_REASON]:
            found["paid_twice"] += numbers
            own = ", ".join(f"grant {r.grant_id or '?'} {r.biz_no} ({r.status})" for r in grants[key][:2])
            parts.append(f"user {key[0]}, {own}, also paid under {_ids(numbers)}")
        for numbers in list(linked.values())[IN_REASON:]:
            found["paid_twice"] += numbers
        more = f"; and {len(linked) - IN_REASON} more grant(s)" if len(linked) > IN_REASON else ""
        problems.append(
            f"paid twice: {len(linked)} grant(s) of the service took effect under biz numbers it does not "
            f"know (a retry under a new number?): {'; '.join(parts)}{more}"
        )
    found["orphan"] += orphans
    if orphans:
        problems.append(
            f"orphan: {len(orphans)} ledger effect(s) no user was told about and the service does not "
            "know (money spent, user unhappy): " + _ids(orphans, effects=by_biz)
        )


def _ids(
    numbers: Sequence[str],
    told: Mapping[str, Told] | None = None,
    effects: Mapping[str, list[Effect]] | None = None,
) -> str:
    """The first few biz numbers, each with its user when known."""
    shown = []
    for biz in numbers[:IN_REASON]:
        user = None
        if told is not None and biz in told:
            user = told[biz][3]
        elif effects is not None and biz in effects:
            user = effects[biz][0].user_id
        shown.append(f"{biz} (user {user})" if user else biz)
    more = len(numbers) - IN_REASON
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


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
