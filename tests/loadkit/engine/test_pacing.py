"""ArrivalPacer with gevent and fake targets (no network): rates, shares, ramps, late and dropped
arrivals, poisson; install() on real Locust users run by a LocalRunner."""

from __future__ import annotations

import itertools
import statistics
import time
import types
from collections.abc import Callable

import gevent
import pytest
from locust import User, constant, task
from locust.env import Environment

from loadkit.engine import pacing
from loadkit.engine.pacing import ArrivalPacer, install
from loadkit.plan import parse_plan


def run_users(pacer: ArrivalPacer, users: int, service_s: float, duration_s: float) -> list[float]:
    """`users` greenlets take tickets and 'serve' each for service_s; returns task start times."""
    starts: list[float] = []

    def user() -> None:
        while True:
            pacer.take()
            starts.append(time.time())
            gevent.sleep(service_s)

    greenlets = [gevent.spawn(user) for _ in range(users)]
    gevent.sleep(duration_s)
    gevent.killall(greenlets, timeout=2)
    return starts


def slot_times(pacer: ArrivalPacer, monkeypatch: pytest.MonkeyPatch, limit: int = 100_000) -> list[float]:
    """The whole schedule, read with the pacer's clock frozen 10,000 s after t0: every take() is
    then immediate and its lateness gives its slot's intended time exactly.  The pacer must not
    drop (drop_after_s large)."""
    frozen = time.time()
    monkeypatch.setattr(pacing, "time", types.SimpleNamespace(time=lambda: frozen))
    t0 = frozen - 10_000
    pacer.start(t0)
    slots: list[float] = []

    def taker() -> None:
        while len(slots) < limit:
            slots.append(frozen - t0 - pacer.take())

    g = gevent.spawn(taker)
    last = -1
    deadline = time.time() + 5
    while len(slots) != last and time.time() < deadline:  # until take() blocks past the end
        last = len(slots)
        gevent.sleep(0.05)
    g.kill()
    return slots


def constant_rate(qps: float) -> Callable[[float], float]:
    return lambda t: qps


def test_constant_rate_over_two_seconds_within_two_percent() -> None:
    pacer = ArrivalPacer(constant_rate(200), end_s=2.0)
    pacer.start(time.time() + 0.05)
    starts = run_users(pacer, users=20, service_s=0.005, duration_s=2.3)
    assert abs(len(starts) - 400) <= 8
    counts = pacer.counts()
    assert counts["sent"] == len(starts)
    assert abs(counts["scheduled"] - 400) <= 1
    assert counts["late"] <= 0.02 * counts["sent"] and counts["dropped"] == 0
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert statistics.median(gaps) == pytest.approx(1 / 200, rel=0.1)  # evenly spaced, not bursts


def test_shares_split_the_rate_and_interleave() -> None:
    t0 = time.time() + 0.05
    halves = [ArrivalPacer(constant_rate(200), share=0.5, end_s=1.0) for _ in range(2)]
    halves[0].start(t0, phase=0.25)
    halves[1].start(t0, phase=0.75)
    results: list[list[float]] = [[], []]
    jobs = [gevent.spawn(lambda i=i: results[i].extend(run_users(halves[i], 5, 0.002, 1.2))) for i in (0, 1)]
    gevent.joinall(jobs, timeout=5)
    assert [len(r) for r in results] == [pytest.approx(100, abs=2)] * 2
    merged = sorted(results[0] + results[1])
    gaps = [b - a for a, b in itertools.pairwise(merged)]
    assert statistics.median(gaps) == pytest.approx(1 / 200, rel=0.2)
    pacer = ArrivalPacer(constant_rate(100))
    pacer.set_share(0.25)
    assert pacer.share == 0.25
    with pytest.raises(ValueError, match="share"):
        pacer.set_share(0)


def test_ramp_follows_the_rate_integral(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = parse_plan(
        {"name": "r", "stages": [{"duration": "2s", "qps": [50, 250]}, {"duration": "1s", "qps": 100}]}
    )
    pacer = ArrivalPacer(plan.qps_at, end_s=plan.duration_s, drop_after_s=1e9)
    slots = slot_times(pacer, monkeypatch)
    assert len(slots) == pytest.approx(plan.arrivals_between(0, 3), abs=1)  # 300 + 100
    assert sum(1 for s in slots if s < 1) == pytest.approx(plan.arrivals_between(0, 1), abs=1)  # 100
    assert sum(1 for s in slots if 1.5 <= s < 2) == pytest.approx(plan.arrivals_between(1.5, 2), abs=1)
    assert all(0 <= s < 3 for s in slots) and slots == sorted(slots)
    assert pacer.counts(now=pacer.t0 + 1.0)["scheduled"] == pytest.approx(100, abs=1)
    assert pacer.counts()["scheduled"] == pytest.approx(400, abs=1)


def test_zero_rate_stretches_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = parse_plan(
        {
            "name": "z",
            "stages": [
                {"duration": "1s", "qps": 0},
                {"duration": "1s", "qps": [0, 100]},
                {"duration": "1s", "qps": 0},
                {"duration": "0.5s", "qps": 20},
            ],
        }
    )
    slots = slot_times(ArrivalPacer(plan.qps_at, end_s=plan.duration_s, drop_after_s=1e9), monkeypatch)
    ramp = [s for s in slots if s < 3]
    assert len(ramp) == pytest.approx(50, abs=1) and min(ramp) > 1.05  # ∫ of a 0→100 ramp over 1 s
    assert [s for s in slots if 2 <= s < 3] == []
    assert len([s for s in slots if s >= 3]) == 10


def test_too_few_users_makes_arrivals_late() -> None:
    # 200/s asked, two users busy 20 ms per task can start only ~100/s
    pacer = ArrivalPacer(constant_rate(200), end_s=1.0)
    pacer.start(time.time())
    starts = run_users(pacer, users=2, service_s=0.02, duration_s=1.0)
    counts = pacer.counts()
    assert counts["sent"] == len(starts)
    assert 80 <= counts["sent"] <= 110
    assert counts["late"] >= 0.8 * counts["sent"]
    assert counts["scheduled"] == pytest.approx(200, abs=2)


def test_on_take_gets_the_start_time_of_every_journey_late_or_not() -> None:
    taken: list[float] = []
    pacer = ArrivalPacer(constant_rate(200), end_s=1.0, on_take=taken.append)
    pacer.start(time.time() + 0.05)
    starts = run_users(pacer, users=2, service_s=0.02, duration_s=1.2)  # ~100/s: most are late
    assert len(taken) == len(starts) == pacer.sent and pacer.late > 0
    assert all(abs(a - b) < 0.005 for a, b in zip(taken, starts, strict=True))


def test_arrivals_nobody_takes_in_time_are_dropped_not_sent() -> None:
    pacer = ArrivalPacer(constant_rate(200), drop_after_s=0.1, end_s=1.0)
    pacer.start(time.time())
    starts = run_users(pacer, users=1, service_s=0.05, duration_s=1.2)
    counts = pacer.counts()
    assert counts["sent"] == len(starts) <= 25
    assert counts["dropped"] >= 150
    assert counts["sent"] + counts["dropped"] == pytest.approx(counts["scheduled"], abs=2)


def test_poisson_mean_rate_and_exponential_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    slots = slot_times(
        ArrivalPacer(constant_rate(500), arrivals="poisson", end_s=8.0, seed=1, drop_after_s=1e9), monkeypatch
    )
    assert len(slots) == pytest.approx(4000, rel=0.05)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    cv = statistics.pstdev(gaps) / statistics.mean(gaps)
    assert cv == pytest.approx(1.0, abs=0.1)  # exponential gaps; constant arrivals have cv 0
    constant_slots = slot_times(ArrivalPacer(constant_rate(500), end_s=1.0, drop_after_s=1e9), monkeypatch)
    constant_gaps = [b - a for a, b in itertools.pairwise(constant_slots)]
    assert statistics.pstdev(constant_gaps) < 1e-9


def test_lateness_is_per_greenlet() -> None:
    pacer = ArrivalPacer(constant_rate(10))
    pacer.start(time.time() - 1.0)  # ten slots already due: the first take is ~1 s late
    seen: dict[str, float] = {}

    def paced() -> None:
        seen["returned"] = pacer.take()
        seen["current"] = pacer.lateness_of_current()

    gevent.spawn(paced).join(timeout=2)
    assert seen["returned"] == seen["current"] == pytest.approx(0.95, abs=0.05)
    assert gevent.spawn(pacer.lateness_of_current).get(timeout=1) == 0.0  # unpaced greenlet
    assert pacer.counts()["late"] == 1


def test_take_waits_for_start_and_blocks_after_the_end() -> None:
    pacer = ArrivalPacer(constant_rate(100), end_s=0.05)
    waiting = gevent.spawn(pacer.take)
    gevent.sleep(0.1)
    assert not waiting.ready()  # not started yet
    pacer.start(time.time())
    assert waiting.get(timeout=1) >= 0.0
    takers = [gevent.spawn(pacer.take) for _ in range(10)]
    gevent.sleep(0.3)
    assert sum(g.ready() for g in takers) == 4  # slots at 5, 15, 25, 35, 45 ms; first already taken
    gevent.killall(takers, timeout=1)
    assert pacer.counts()["sent"] == 5


@pytest.mark.parametrize(
    "kwargs",
    [{"arrivals": "bursty"}, {"share": 2}, {"share": 0}, {"drop_after_s": 0}, {"end_s": -1}],
)
def test_bad_arguments_are_clear_errors(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ArrivalPacer(constant_rate(1), **kwargs)


# --- install() on Locust users ---------------------------------------------------------------


def make_classes() -> tuple[type[User], type[User], type[User], list[str]]:
    events: list[str] = []

    class Base(User):
        wait_time = constant(10)

        def on_start(self) -> None:
            events.append("base on_start")

        @task
        def work(self) -> None:
            events.append("task")
            gevent.sleep(0.005)

    class Child(Base):
        def on_start(self) -> None:
            super().on_start()
            events.append("child on_start")

    class Unpaced(Base):
        loadkit_paced = False

    return Base, Child, Unpaced, events


def test_install_paces_every_class_except_opted_out() -> None:
    Base, Child, Unpaced, events = make_classes()
    pacer = ArrivalPacer(constant_rate(1000))
    install([Base, Child, Unpaced], pacer)
    install([Base, Child], pacer)  # twice is harmless
    env = Environment(user_classes=[Child])
    unpaced = Unpaced(env)
    assert unpaced.wait_time() == 10  # its inherited constant(10), not the pacer
    unpaced.on_start()
    assert events == ["base on_start"] and pacer.sent == 0  # no ticket taken
    events.clear()
    pacer.start(time.time() - 0.01)
    user = Child(env)
    user._taskset_instance = None
    taken_before = pacer.sent

    # the wrapped on_start runs the user's own (with its super() chain) then waits for one ticket
    class FakeTaskSet:
        def wait(self) -> None:
            events.append("wait")
            user.wait_time()

    user._taskset_instance = FakeTaskSet()
    user.on_start()
    assert events == ["base on_start", "child on_start", "wait"]
    assert pacer.sent == taken_before + 1
    assert user.wait_time() == 0.0 and pacer.sent == taken_before + 2


def test_local_runner_starts_tasks_at_the_paced_rate_and_stops_cleanly() -> None:
    Base, _, _, events = make_classes()
    env = Environment(user_classes=[Base], host="http://127.0.0.1:9")
    pacer = ArrivalPacer(constant_rate(100))
    install(env.user_classes, pacer)
    runner = env.create_local_runner()
    pacer.start(time.time() + 0.5)
    runner.start(10, spawn_rate=100)
    gevent.sleep(0.5 + 2.0)
    tasks = events.count("task")
    runner.stop()
    assert tasks == pytest.approx(200, abs=6)  # 100/s for 2 s, though the class said constant(10)
    assert events.count("base on_start") == 10
    assert runner.user_count == 0
    assert not runner.exceptions and not env.runner.stats.errors
    runner.quit()


def test_expired_slots_are_dropped_in_bulk_and_counted_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = time.time()
    monkeypatch.setattr(pacing, "time", types.SimpleNamespace(time=lambda: frozen))
    pacer = ArrivalPacer(constant_rate(1000), drop_after_s=5.0)
    pacer.start(frozen - 100.0)  # 100 s of slots due, nobody took any
    started = time.perf_counter()
    assert pacer.take() == pytest.approx(4.9995, abs=1e-6)  # the first slot younger than 5 s
    assert time.perf_counter() - started < 0.05  # not walked one slot at a time
    assert pacer.counts() == {
        "scheduled": 100_000,
        "sent": 1,
        "on_time": 0,
        "late": 1,
        "dropped": 95_000,
        "unsent": 4_999,  # due within the last 5 s, not yet taken: they add up to what was scheduled
    }
    assert pacer.take() == pytest.approx(4.9985, abs=1e-6)


# --- why an arrival was late ----------------------------------------------------------------------


def journeys(pacer: ArrivalPacer, users: int, duration_s: float, journey) -> None:
    """`users` greenlets take tickets and run `journey()` after each, for duration_s."""

    def user() -> None:
        while True:
            pacer.take()
            journey()

    greenlets = [gevent.spawn(user) for _ in range(users)]
    gevent.sleep(duration_s)
    gevent.killall(greenlets, timeout=2)


def busy(seconds: float) -> None:
    """Hold the event loop, as a saturated generator does (time.sleep may be gevent's, patched)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def totals(causes: dict) -> dict[str, int]:
    return {key: sum(c[key] for c in causes.values()) for key in ("loop", "target", "users")}


def test_a_user_that_waited_and_woke_late_is_the_loops_fault() -> None:
    pacer = ArrivalPacer(constant_rate(200), end_s=1.0)
    pacer.start(time.time())

    def blocker() -> None:
        gevent.sleep(0.3)
        busy(0.1)  # the whole loop stalls: every waiting user wakes late

    gevent.spawn(blocker)
    journeys(pacer, users=20, duration_s=0.8, journey=lambda: gevent.sleep(0.001))
    causes = pacer.take_causes()
    assert totals(causes)["loop"] >= 10 and totals(causes)["target"] == totals(causes)["users"] == 0
    assert set(causes) == {0}  # counted under the second the slots were due in
    assert pacer.take_causes() == {}  # handed over once
    assert pacer.late >= 10


def test_no_free_user_while_they_wait_on_the_target_is_the_targets() -> None:
    pacer = ArrivalPacer(constant_rate(200), end_s=1.0)
    pacer.start(time.time())

    def request() -> None:  # 50 ms "on the wire": 2 users can start ~40 of the 200 arrivals/s
        gevent.sleep(0.05)
        pacer.request_done(50.0)

    journeys(pacer, users=2, duration_s=0.8, journey=request)
    late = totals(pacer.take_causes())
    assert late["target"] >= 25 and late["users"] <= 2 and late["loop"] <= 2


def test_no_free_user_while_they_think_is_the_user_pools() -> None:
    pacer = ArrivalPacer(constant_rate(200), end_s=1.0)
    pacer.start(time.time())

    def think_then_request() -> None:  # 1 ms waiting on the target, 49 ms thinking
        gevent.sleep(0.049)
        pacer.request_done(1.0)

    journeys(pacer, users=2, duration_s=0.8, journey=think_then_request)
    late = totals(pacer.take_causes())
    assert late["users"] >= 25 and late["target"] <= 2


def test_the_backlog_a_stalled_target_leaves_stays_the_targets() -> None:
    pacer = ArrivalPacer(constant_rate(200), end_s=1.5)
    pacer.start(time.time())
    stalled = {"until": time.time() + 0.5}

    def request() -> None:  # the target holds everyone for 0.5 s, then answers in 1 ms
        wait = max(0.001, stalled["until"] - time.time())
        gevent.sleep(wait)
        pacer.request_done(wait * 1000.0)

    journeys(pacer, users=3, duration_s=1.2, journey=request)
    late = totals(pacer.take_causes())
    # after the stall the users catch up on ~100 slots with 1-ms journeys of their own: the stall,
    # not their short journeys, made those slots late
    assert late["target"] >= 80 and late["users"] <= 3 and late["loop"] <= 3


def test_free_users_are_counted_while_they_wait() -> None:
    pacer = ArrivalPacer(constant_rate(10), end_s=10.0)
    pacer.start(time.time() + 0.5)
    takers = [gevent.spawn(pacer.take) for _ in range(4)]
    gevent.sleep(0.1)
    assert pacer.waiting == 4
    gevent.killall(takers, timeout=1)
    assert pacer.waiting == 0


def test_request_done_counts_the_wait_and_returns_the_lateness() -> None:
    pacer = ArrivalPacer(constant_rate(10))
    pacer.start(time.time() - 1.0)
    seen: dict[str, float] = {}

    def paced() -> None:
        pacer.take()
        seen["lateness"] = pacer.request_done(12.5)

    gevent.spawn(paced).join(timeout=2)
    assert seen["lateness"] == pytest.approx(0.95, abs=0.05)
    assert gevent.spawn(pacer.request_done, 5.0).get(timeout=1) == 0.0  # an unpaced greenlet


def test_dropped_and_unsent_arrivals_are_counted_by_the_second_they_were_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen = time.time()
    monkeypatch.setattr(pacing, "time", types.SimpleNamespace(time=lambda: frozen))
    pacer = ArrivalPacer(constant_rate(1000), drop_after_s=5.0)
    pacer.start(frozen - 100.0)
    pacer.take()
    causes = pacer.take_causes()
    dropped = {s: c["users"] for s, c in causes.items()}  # nobody had taken a ticket: the pool
    assert sum(dropped.values()) == 95_000 + 1  # the 95,000 dropped and the one taken late
    assert dropped[0] == 1000 and dropped[94] == 1000 and set(dropped) == set(range(96))
    pending = pacer.pending()
    assert sum(c["users"] for c in pending.values()) == pacer.counts()["unsent"] == 4_999
    assert sorted(pending) == [95, 96, 97, 98, 99]


@pytest.mark.parametrize(
    ("request_ms", "cause"),
    [(20.0, "loop"), (1000.0, "target")],
    ids=["answers as slow as the loop: the loop", "answers far slower than the loop: the target"],
)
def test_no_free_user_while_the_loop_runs_late(request_ms: float, cause: str) -> None:
    """The loop 20 ms late explains 20-ms answers (the generator read them late), not 1-s ones."""
    pacer = ArrivalPacer(constant_rate(100), loop_lag=lambda: 0.020)
    pacer.start(time.time())

    def user() -> None:
        pacer.take()  # on time: this user's next late ticket starts a new judgement
        gevent.sleep(0.3)  # busy while the slots come due
        pacer.request_done(request_ms)
        pacer.take()

    gevent.spawn(user).join(timeout=2)
    late = totals(pacer.take_causes())
    assert late[cause] == 1 and sum(late.values()) == 1


def test_a_user_working_off_a_backlog_keeps_its_cause() -> None:
    pacer = ArrivalPacer(constant_rate(100))
    pacer.start(time.time())
    taken: list[float] = []

    def user() -> None:
        pacer.take()
        busy(0.2)  # the loop stalls: this user's next ticket is late, with no one else to blame
        pacer.request_done(1.0)
        for _ in range(5):  # it catches up in 1-ms journeys: the backlog is still the loop's
            taken.append(pacer.take())
            pacer.request_done(1.0)

    gevent.spawn(user).join(timeout=2)
    late = totals(pacer.take_causes())
    assert len(taken) == 5 and all(t > 0.01 for t in taken)
    assert late == {"loop": 0, "target": 0, "users": 5}  # with no probe: the pool (not the target)
