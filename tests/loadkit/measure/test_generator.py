"""GeneratorHealth: per-process health per second, late arrivals by cause, the window figures,
the per-second series, lost workers; and the check of a worker's health delta."""

from __future__ import annotations

import pytest

from loadkit.measure.generator import GeneratorHealth, HealthDelta, check_health_delta
from loadkit.measure.histogram import LatencyHistogram


def lag(*ms: float) -> dict[int, int]:
    hist = LatencyHistogram()
    for value in ms:
        hist.record_ms(value)
    return hist.sparse()


def piece(s: int, *ms: float, cpu: float | None = 20.0, wait: float | None = 1.0, free: int | None = 2):
    return {"s": s, "lag": lag(*ms), "cpu": cpu, "cpu_wait": wait, "free_min": free}


def delta(seconds=(), late=None, pending=None) -> HealthDelta:
    return {"seconds": list(seconds), "late": late or {}, "pending": pending or {}}


def counts(loop: int = 0, target: int = 0, users: int = 0) -> dict[str, int]:
    return {"loop": loop, "target": target, "users": users}


def test_cpu_figures_are_taken_inside_the_window_only():
    health = GeneratorHealth((10.0, 20.0))
    health.add("w1", delta(piece(s, 1.0, cpu=95.0 if s >= 15 else 20.0) for s in range(20)))
    health.add("w2", delta(piece(s, 1.0, cpu=30.0) for s in range(20)))
    inside = health.summary(2, window=(0.0, 10.0))
    assert inside["cpu_max"] == 30.0 and inside["cpu_high_s"] == 0
    gate = health.summary(2)
    assert gate["cpu_max"] == 95.0 and gate["cpu_high_s"] == 5
    assert gate["unhealthy_s"] == 5.0  # CPU above 85% makes a second unhealthy
    assert [p["name"] for p in gate["processes"]] == ["worker-1", "worker-2"]


def test_a_worker_that_disappears_while_running_is_lost():
    health = GeneratorHealth()
    health.observe_workers(alive=["a", "b"], missing=[])
    health.observe_workers(alive=["a"], missing=[])
    assert health.summary(1)["workers_lost"] == 1
    assert health.summary(1)["workers"] == 2


def test_a_second_is_unhealthy_by_loop_lag_p99_or_max_or_cpu_ran_plus_waited():
    health = GeneratorHealth((0.0, 10.0))
    health.add(
        "local",
        delta(
            [
                piece(0, *[1.0] * 98, 30.0, 30.0),  # p99 30 ms: two wake-ups far too late
                piece(1, *[1.0] * 99, 30.0),  # one 30-ms wake-up: p99 still 1 ms, max 30: healthy
                piece(2, *[1.0] * 99, 300.0),  # one 300-ms stall
                piece(3, 1.0, cpu=70.0, wait=20.0),  # 70% ran + 20% waited for a core
                piece(4, 1.0, cpu=80.0, wait=None),  # no run-queue figure: 80% alone
            ]
        ),
    )
    process = health.summary(1)["processes"][0]
    assert process["unhealthy_s"] == 3.0
    assert [health.processes["local"].healthy(s) for s in range(6)] == [False, True, False, False, True, None]
    assert process["lag_max_ms"] == pytest.approx(300.0, rel=0.01)
    assert process["cpu_wait_max"] == 20.0 and process["free_min"] == 2


def test_late_arrivals_are_attributed_by_the_health_of_the_second_they_were_due_in():
    health = GeneratorHealth((0.0, 10.0))
    health.add(
        "local",
        delta(
            [piece(0, 1.0), piece(1, 1.0, cpu=99.0)],  # second 1 unhealthy, second 2 not measured
            late={0: counts(loop=2, target=10, users=3), 1: counts(target=7, users=1), 2: counts(target=4)},
            pending={0: counts(target=5)},
        ),
    )
    late, unsent = health.late_by_cause()
    # healthy second 0: the loop's are the generator's, the rest as the pacer saw them
    # unhealthy second 1 and unmeasured second 2: all the generator's
    assert late == {"generator": 2 + 8 + 4, "users": 3, "target": 10}
    assert unsent == {"generator": 0, "users": 0, "target": 5}
    summary = health.summary(1)
    assert summary["late"] == late and summary["unsent"] == unsent


def test_deltas_add_up_and_a_second_may_come_in_pieces():
    health = GeneratorHealth((0.0, 10.0))
    health.add("w", delta([piece(3, *[1.0] * 60, cpu=None, free=4)], late={3: counts(target=1)}))
    health.add("w", delta([piece(3, *[1.0] * 38, 25.0, 25.0, cpu=50.0, free=1)], late={3: counts(target=2)}))
    second = health.processes["w"].seconds[3]
    assert second.lag.count == 100 and second.cpu == 50.0 and second.free_min == 1
    assert not health.processes["w"].healthy(3)  # p99 of the whole second: 25 ms
    assert health.late_by_cause()[0] == {"generator": 3, "users": 0, "target": 0}
    # pending arrivals are a snapshot: the latest replaces the one before
    health.add("w", delta(pending={4: counts(users=9)}))
    health.add("w", delta(pending={5: counts(users=2)}))
    assert health.late_by_cause()[1] == {"generator": 2, "users": 0, "target": 0}  # second 5 unmeasured


def test_the_master_is_shown_but_does_not_count_as_unhealthy():
    health = GeneratorHealth((0.0, 10.0))
    health.add("master", delta([piece(s, 1.0, cpu=99.0, free=None) for s in range(10)]), paces=False)
    health.add("worker-id", delta([piece(s, 2.0, cpu=40.0) for s in range(10)]))
    summary = health.summary(1)
    assert summary["unhealthy_s"] == 0.0
    master = summary["processes"][0]
    assert master["name"] == "master" and not master["paces"] and master["unhealthy_s"] == 10.0
    assert summary["lag_p99_ms"] == pytest.approx(2.0, abs=0.01)  # the worst pacing process


def test_loop_lag_over_the_gate_or_the_run_so_far():
    health = GeneratorHealth((5.0, 10.0))
    health.add("local", delta([piece(s, 100.0 if s < 5 else 2.0) for s in range(10)]))
    assert health.summary(1)["lag_max_ms"] == pytest.approx(2.0, abs=0.01)
    assert health.summary(1, window=(0.0, 10.0))["lag_max_ms"] == pytest.approx(100.0, rel=0.01)


def test_timeseries_per_second():
    health = GeneratorHealth((0.0, 4.0))
    health.add(
        "local",
        delta(
            [piece(0, 1.0), piece(1, *[40.0] * 3), piece(2, 1.0)],
            late={1: counts(target=5), 2: counts(target=3, users=1, loop=1)},
            pending={3: counts(target=2)},
        ),
    )
    health.add("master", delta([piece(1, 500.0)]), paces=False)  # not drawn: it paces nothing
    series = health.timeseries(4)
    assert series["lag_p99_ms"][:3] == [pytest.approx(1.0, abs=0.01), pytest.approx(40.0, rel=0.01), 1.0]
    assert series["lag_p99_ms"][3] is None
    assert series["unhealthy"] == [0, 1, 0, 0]
    assert series["late_generator"] == [0, 5, 1, 2]  # second 3 was not measured
    assert series["late_users"] == [0, 0, 1, 0] and series["late_target"] == [0, 0, 3, 0]


PIECE = {"s": 1, "lag": {}, "cpu": None, "cpu_wait": None, "free_min": None}


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"seconds": [], "late": {}},
        {"seconds": [{**PIECE, "lag": {"x": 1}}], "late": {}, "pending": {}},
        {"seconds": [{"s": 1, "lag": {}, "cpu": None, "free_min": None}], "late": {}, "pending": {}},
        {"seconds": [], "late": {"1": {"loop": -1, "target": 0, "users": 0}}, "pending": {}},
        {"seconds": [], "late": {"1": {"loop": 1}}, "pending": {}},
    ],
)
def test_malformed_deltas_are_refused(bad):
    with pytest.raises(ValueError, match="malformed health delta"):
        check_health_delta(bad)


def test_a_delta_as_msgpack_delivers_it_is_accepted():
    wire = {
        "seconds": [{"s": 3, "lag": {1000: 2}, "cpu": 12, "cpu_wait": None, "free_min": 1}],
        "late": {"3": {"loop": 0, "target": 1, "users": 0}},
        "pending": {},
    }
    checked = check_health_delta(wire)
    assert checked["late"] == {3: {"loop": 0, "target": 1, "users": 0}}
    assert checked["seconds"][0]["cpu"] == 12.0 and checked["seconds"][0]["lag"] == {1000: 2}
