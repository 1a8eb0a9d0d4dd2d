"""Population: shares, id format, uniqueness within and across (simulated) workers."""

from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace

import gevent
import pytest

from loadkit.platform.population import IdSource, Population, id_source, worker_index_of

ALIPAY_ID = re.compile(r"^2088\d{12}$")


def draw(pop: Population, n: int) -> list:
    return [pop.next() for _ in range(n)]


def test_shares_are_respected():
    pop = Population(0.6, 0.3, 0.1, seed=1, source=IdSource(7))
    kinds = Counter(v.kind for v in draw(pop, 20_000))
    assert abs(kinds["new"] / 20_000 - 0.6) < 0.02
    assert abs(kinds["returning"] / 20_000 - 0.3) < 0.02
    assert abs(kinds["dormant"] / 20_000 - 0.1) < 0.02


def test_ids_are_alipay_shaped_and_new_ids_unique():
    pop = Population(0.5, 0.5, 0.0, seed=2, source=IdSource(3))
    visitors = draw(pop, 5000)
    assert all(ALIPAY_ID.match(v.user_id) for v in visitors)
    new = [v.user_id for v in visitors if v.kind == "new"]
    assert len(new) == len(set(new))
    assert {v.user_id for v in visitors if v.kind == "returning"} <= set(new)


def test_returning_falls_back_to_new_until_someone_was_seen():
    pop = Population(0.0, 1.0, 0.0, seed=3, source=IdSource(0))
    first = pop.next()
    assert first.kind == "new"
    assert {pop.next().user_id for _ in range(50)} == {first.user_id}


def test_dormant_ids_never_collide_with_active_ones():
    pop = Population(0.5, 0.0, 0.5, seed=4, source=IdSource(1))
    visitors = draw(pop, 4000)
    new = {v.user_id for v in visitors if v.kind == "new"}
    dormant = {v.user_id for v in visitors if v.kind == "dormant"}
    assert new and dormant and not new & dormant


def test_workers_never_share_an_id():
    seen: dict[str, int] = {}
    for worker in range(4):
        pop = Population(0.6, 0.3, 0.1, seed=5, source=IdSource(worker))  # same seed on purpose
        for v in draw(pop, 3000):
            owner = seen.setdefault(v.user_id, worker)
            assert owner == worker, f"{v.user_id} drawn by workers {owner} and {worker}"


def test_greenlets_sharing_a_population_get_unique_new_ids():
    pop = Population(1.0, 0.0, 0.0, source=IdSource(9))
    jobs = [gevent.spawn(lambda: [pop.next().user_id for _ in range(500)]) for _ in range(20)]
    gevent.joinall(jobs, timeout=10)
    ids = [uid for job in jobs for uid in job.value]
    assert len(ids) == 10_000 == len(set(ids))


def test_populations_of_one_process_share_the_worker_counter():
    env = SimpleNamespace(runner=SimpleNamespace(worker_index=42))
    assert worker_index_of(env) == 42
    assert worker_index_of(SimpleNamespace(runner=None)) == 0
    a = Population(1.0, 0.0, 0.0).bind(env)
    b = Population(1.0, 0.0, 0.0).bind(env)
    assert a.source is b.source is id_source(42)
    ids = [a.next().user_id for _ in range(100)] + [b.next().user_id for _ in range(100)]
    assert len(set(ids)) == 200 and all(uid[4:7] == "042" for uid in ids)


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="shares"):
        Population(-1, 0.5, 0.5)
    with pytest.raises(ValueError, match="shares"):
        Population(0, 0, 0)
    with pytest.raises(ValueError, match="collide"):
        IdSource(1000)
