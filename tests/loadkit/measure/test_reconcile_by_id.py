"""Three-way reconciliation by id: each kind of problem found and named, unconfirmed allowed."""

from __future__ import annotations

from loadkit.measure.reconcile import Effect, Record, reconcile_by_id

POINTS = "alipay.user.alipaypoint.send"


def effect(biz: str, user: str = "U1", campaign: str = "JFB") -> Effect:
    return Effect(biz, POINTS, "APP", user, campaign, f"id-{biz}")


def record(biz: str, status: str = "granted", user: str = "U1", grant: str = "1") -> Record:
    return Record(biz, status, user, POINTS, "JFB", grant, 1)


def told(biz: str, user: str = "U1") -> tuple[str, str, str | None, str | None]:
    return ("points.claim", biz, "1", user)


def kinds(doc):
    return {k: doc[k]["count"] for k in ("phantom", "orphan", "unconfirmed", "paid_twice", "over_limit")}


def test_clean_books():
    doc = reconcile_by_id([told("A")], [effect("A")], [record("A")], per_user_limit={POINTS: 1})
    assert doc["ok"] and doc["mode"] == "three-way" and doc["problems"] == []
    assert (doc["told"], doc["records"], doc["effects"]) == (1, 1, 1)
    assert set(kinds(doc).values()) == {0}


def test_phantom_told_but_not_in_the_ledger():
    doc = reconcile_by_id([told("A"), told("B", "U2")], [effect("A")], [record("A"), record("B", user="U2")])
    assert not doc["ok"] and doc["phantom"] == {"count": 1, "first": ["B"]}
    assert "phantom" in doc["problems"][0] and "B (user U2)" in doc["problems"][0]


def test_orphan_neither_told_nor_known():
    doc = reconcile_by_id([], [effect("Z", user="U9")], [])
    assert not doc["ok"] and doc["orphan"]["first"] == ["Z"]
    assert "Z (user U9)" in doc["problems"][0] and "does not know" in doc["problems"][0]


def test_effect_of_a_grant_recorded_failed_is_an_orphan():
    doc = reconcile_by_id([], [effect("F")], [record("F", status="failed")])
    assert not doc["ok"] and doc["orphan"]["first"] == ["F"] and "recorded as failed" in doc["problems"][0]


def test_unconfirmed_is_listed_not_failed():
    doc = reconcile_by_id([], [effect("P")], [record("P", status="unknown")])
    assert doc["ok"] and doc["unconfirmed"]["first"] == ["P"] and doc["problems"] == []


def test_same_biz_number_twice_in_the_ledger():
    doc = reconcile_by_id([told("D")], [effect("D"), effect("D")], [record("D")])
    assert not doc["ok"] and doc["paid_twice"]["first"] == ["D"]
    assert "D (2 times, user U1)" in doc["problems"][0]


def test_a_grant_paid_under_numbers_the_service_forgot():
    """The planted bug: a retry under a new number; the row keeps only the last one."""
    effects = [effect("OLD1", "U5"), effect("OLD2", "U5"), effect("NEW", "U5")]
    doc = reconcile_by_id([], effects, [record("NEW", status="unknown", user="U5", grant="17")],
                          per_user_limit={POINTS: 1})  # fmt: skip
    assert not doc["ok"]
    assert doc["paid_twice"]["first"] == ["OLD1", "OLD2"] and doc["unconfirmed"]["first"] == ["NEW"]
    assert doc["over_limit"] == {"count": 1, "first": ["U5"]}
    text = " ".join(doc["problems"])
    assert "grant 17 NEW" in text and "OLD1" in text and "OLD2" in text
    assert "user U5 got 3 of alipay.user.alipaypoint.send (limit 1" in text


def test_over_limit_by_campaign():
    effects = [effect("A", campaign="FLASH"), effect("B", campaign="FLASH")]
    doc = reconcile_by_id(
        [told("A"), told("B")], effects, [record("A"), record("B")], per_user_limit={"FLASH": 1}
    )
    assert not doc["ok"] and doc["over_limit"]["first"] == ["U1"]
    assert reconcile_by_id([told("A"), told("B")], effects, None, per_user_limit={"FLASH": 2})["ok"]


def test_two_way_allows_calls_in_flight():
    effects = [effect("A"), effect("X1"), effect("X2"), effect("X3")]
    doc = reconcile_by_id([told("A")], effects, None, in_flight=3)
    assert doc["ok"] and doc["mode"] == "two-way" and doc["unconfirmed"]["count"] == 3
    doc = reconcile_by_id([told("A")], effects, None, in_flight=1)
    assert (
        not doc["ok"]
        and doc["orphan"]["count"] == 2
        and "more than the 1 calls in flight" in doc["problems"][0]
    )


def test_reasons_name_only_the_first_few_and_lists_are_capped():
    effects = [effect(f"O{i:03d}", user=f"U{i}") for i in range(50)]
    doc = reconcile_by_id([], effects, [])
    assert doc["orphan"]["count"] == 50 and len(doc["orphan"]["first"]) == 20
    assert "and 45 more" in doc["problems"][0]
