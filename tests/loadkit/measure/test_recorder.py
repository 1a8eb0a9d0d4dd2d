"""Recorder: stage classification, gate figures, arrivals held, worker deltas merged == one process,
live figures and the gate marker."""

from __future__ import annotations

import json
import random
from typing import Any

import msgpack
import pytest

from loadkit.measure.figures import iso
from loadkit.measure.recorder import MAX_ERROR_KINDS, OTHER_ERRORS, DeltaError, Recorder
from loadkit.plan import Plan, parse_plan

T0 = 1_700_000_000.0


def plan(*stages: dict[str, Any]) -> Plan:
    default = (
        {"name": "warmup", "duration": "10s", "qps": 10},
        {"name": "ramp", "duration": "10s", "qps": [10, 30]},
        {"name": "hold", "duration": "20s", "qps": 40, "gate": True},
    )
    return parse_plan({"name": "test", "stages": list(stages or default)})


def started(p: Plan | None = None) -> Recorder:
    rec = Recorder(p or plan())
    rec.start(T0)
    return rec


def test_requests_are_classified_by_stage_and_only_gate_stages_are_judged() -> None:
    rec = Recorder(plan())
    rec.record("a", t=T0 + 1, response_ms=5, ok=True)  # before start(): beyond
    rec.start(T0)
    rec.record("a", t=T0 - 1, response_ms=5, ok=True)  # before t0: beyond
    rec.record("a", t=T0 + 5, response_ms=5, ok=True)  # warmup
    rec.record("a", t=T0 + 15, response_ms=5, ok=False, error="boom")  # ramp
    for k in range(8):
        rec.record("a", t=T0 + 20 + k, response_ms=10, ok=True)  # hold
    rec.record("b", t=T0 + 39.9, response_ms=10, ok=False, error="boom")  # hold
    rec.record("a", t=T0 + 40, response_ms=5, ok=True)  # after the end: beyond
    res = rec.figures()
    assert res["window"] == {"start": iso(T0 + 20), "end": iso(T0 + 40), "seconds": 20, "stages": ["hold"]}
    assert res["requests"] == {"count": 9, "successes": 8, "errors": 1, "expected_outcomes": 0}
    assert res["qps"]["held"] == pytest.approx(8 / 20)
    assert res["qps"]["target"] == pytest.approx(40)
    assert res["error_rate"] == pytest.approx(1 / 9, abs=1e-6)
    assert res["endpoints"]["a"]["requests"] == 8 and res["endpoints"]["b"]["errors"] == 1
    assert rec.seen() == {
        "a": {"successes": 12, "errors": 1, "outcomes": 0},
        "b": {"successes": 0, "errors": 1, "outcomes": 0},
    }
    assert rec.whole_run() == {"requests": 14, "errors": 2}
    assert rec.beyond == 3
    assert res["errors"] == [
        {"name": "a", "error": "boom", "occurrences": 1},
        {"name": "b", "error": "boom", "occurrences": 1},
    ]


def test_results_figures_on_synthetic_data() -> None:
    rec = started()
    # hold stage: 20 s, per second 30 "buy" (10 of them a sold_out outcome) and 1 failing "query"
    for second in range(20, 40):
        for k in range(30):
            late = 0.5 if k == 0 else 0.0  # one late ticket a second: corrected latency shows it
            outcome = "sold_out" if k % 3 == 0 else None
            rec.record(
                "buy", t=T0 + second + k / 30, response_ms=20, lateness_s=late, ok=True, outcome=outcome
            )
        rec.record("query", t=T0 + second + 0.5, response_ms=100, ok=False, error="HTTPError: 503")
    res = rec.figures()
    assert res["requests"] == {"count": 620, "successes": 600, "errors": 20, "expected_outcomes": 200}
    assert res["outcomes"] == {"sold_out": 200}
    assert res["qps"] == {"target": pytest.approx(40), "held": pytest.approx(30), "arrivals_held": 0.0}
    assert res["error_rate"] == pytest.approx(20 / 620, abs=1e-6)
    buy = res["endpoints"]["buy"]
    assert buy["qps_held"] == pytest.approx(30) and buy["outcomes"] == {"sold_out": 200}
    assert buy["latency_ms_service"]["p99"] == pytest.approx(20, rel=0.001)
    assert buy["latency_ms"]["p50"] == pytest.approx(20, rel=0.001)
    assert buy["latency_ms"]["p99"] == pytest.approx(520, rel=0.001)  # 20 of 600 (3.3%) are +500 ms
    assert res["latency_ms"]["max"] == pytest.approx(520, rel=0.001)
    assert res["endpoints"]["query"]["error_rate"] == 1.0
    assert res["errors"] == [{"name": "query", "error": "HTTPError: 503", "occurrences": 20}]
    ts = res["timeseries"]
    assert ts["interval_s"] == 1 and ts["t"] == list(range(40))
    assert ts["qps"][:20] == [0] * 20 and ts["qps"][20:] == [30] * 20
    assert ts["errors"][20:] == [1] * 20
    assert ts["target_qps"][5] == pytest.approx(10) and ts["target_qps"][15] == pytest.approx(21, rel=0.01)
    assert ts["target_qps"][30] == pytest.approx(40)
    assert ts["p50"][:20] == [None] * 20
    assert ts["p50"][20] == pytest.approx(20, rel=0.001) and ts["p99"][25] == pytest.approx(520, rel=0.001)
    assert ts["p95"][20:25] == [ts["p95"][20]] * 5  # one 5-s window, repeated per second
    json.dumps(res)


def _random_requests(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ok = rng.random() > 0.1
        out.append(
            {
                "name": rng.choice(["login", "send", "query"]),
                "t": T0 + rng.uniform(-2, 42),
                "response_ms": rng.lognormvariate(3, 1),
                "lateness_s": rng.choice([0.0, 0.0, 0.0, rng.uniform(0, 2)]),
                "ok": ok,
                "outcome": rng.choice([None, None, "sold_out", "limit"]) if ok else None,
                "error": None if ok else rng.choice(["timeout", "503", "reset"]),
            }
        )
    return out


def test_two_workers_merged_equal_one_process() -> None:
    requests = _random_requests(6000, seed=42)
    direct = started()
    workers = [started(), started()]
    master = started()
    for i, req in enumerate(requests):
        name = req.pop("name")
        direct.record(name, **req)
        workers[i % 2].record(name, **req)
        if i % 3 == 0:  # a journey of three requests started here
            direct.record_arrival(req["t"])
            workers[i % 2].record_arrival(req["t"])
        if i % 1000 == 999:  # report_to_master every so often; the payload goes through msgpack
            for worker in workers:
                master.merge(msgpack.unpackb(msgpack.packb(worker.take_delta()), strict_map_key=False))
    for worker in workers:
        master.merge(msgpack.unpackb(msgpack.packb(worker.take_delta()), strict_map_key=False))
    assert master.figures() == direct.figures()
    assert master.figures()["qps"]["arrivals_held"] > 0
    assert master.live(T0 + 30) == direct.live(T0 + 30)
    # a worker's figures are all in the deltas it shipped
    assert workers[0].figures()["requests"]["count"] == 0


def test_delta_is_msgpack_and_json_friendly_and_empties_the_recorder() -> None:
    rec = started()
    rec.record("a", t=T0 + 25, response_ms=12.5, lateness_s=0.1, ok=True, outcome="sold_out")
    rec.record_arrival(T0 + 24.9)
    delta = rec.take_delta()
    # Locust's channel unpacks with strict_map_key=False; JSON turns the int keys into strings,
    # which merge() reads the same
    assert msgpack.unpackb(msgpack.packb(delta), strict_map_key=False) == delta
    via_msgpack, via_json = started(), started()
    via_msgpack.merge(delta)
    via_json.merge(json.loads(json.dumps(delta)))
    assert via_json.figures() == via_msgpack.figures() and via_json.seen() == via_msgpack.seen()
    assert delta["arrivals"] == {2: 1}
    assert delta["cells"][0]["name"] == "a" and delta["cells"][0]["outcomes"] == {"sold_out": 1}
    empty = rec.take_delta()
    assert empty["cells"] == [] and empty["seen"] == {} and empty["windows"] == {} and empty["arrivals"] == {}


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"v": 99},
        {"v": 2, "cells": [], "windows": []},  # positional lists: an older worker
        {"v": 3, "cells": [{"stage": 0, "name": "a", "count": 1}]},
        {"v": 3, "cells": [], "windows": {0: "garbage"}},
        {"v": 3, "cells": [], "windows": {}, "arrivals": [[0]]},
    ],
)
def test_malformed_delta_is_a_clear_error(bad: dict) -> None:
    with pytest.raises(DeltaError):
        started().merge(bad)


def test_distinct_error_messages_are_capped() -> None:
    rec = started()
    for k in range(MAX_ERROR_KINDS + 50):
        rec.record("a", t=T0 + 25, response_ms=1, ok=False, error=f"error {k}")
    errors = rec.figures()["errors"]
    assert len(errors) == MAX_ERROR_KINDS + 1
    assert {"name": "a", "error": OTHER_ERRORS, "occurrences": 50} in errors
    assert sum(e["occurrences"] for e in errors) == MAX_ERROR_KINDS + 50


def test_live_uses_the_run_so_far_before_the_gate_and_the_gate_after() -> None:
    rec = started()
    for second in range(0, 30):
        for _ in range(10):
            rec.record("a", t=T0 + second + 0.5, response_ms=5, ok=True)
    early = rec.live(T0 + 12.0)
    assert early["window"]["seconds"] == 12.0 and early["window"]["stages"] == ["warmup", "ramp"]
    assert early["requests"]["count"] == 200  # warmup and ramp (recorded hold requests not in the window)
    assert early["qps_now"] == pytest.approx(10)
    gate = rec.live(T0 + 30.0)
    assert gate["window"]["seconds"] == 10.0 and gate["window"]["stages"] == ["hold"]
    assert gate["requests"]["count"] == 100 and gate["qps"]["held"] == pytest.approx(10)
    assert gate["qps"]["target"] == pytest.approx(40)
    assert len(gate["timeseries"]["t"]) == 30
    lagged = rec.live(T0 + 33.0, lag_s=3.0)
    assert lagged["qps_now"] == pytest.approx(10)
    assert rec.live(T0 + 33.0)["qps_now"] == pytest.approx(4)  # seconds 30..32 saw nothing
    fresh = Recorder(plan()).live(T0)
    assert fresh["requests"]["count"] == 0 and fresh["latency_ms"]["p99"] is None


def test_plan_without_gate_marks_is_judged_on_what_the_plan_says() -> None:
    rec = started(plan({"name": "a", "duration": "5s", "qps": 5}, {"name": "b", "duration": "10s", "qps": 5}))
    rec.record("x", t=T0 + 1, response_ms=5, ok=True)
    rec.record("x", t=T0 + 6, response_ms=5, ok=True)
    res = rec.figures()
    assert res["window"]["seconds"] == 10 and res["window"]["stages"] == ["b"]
    assert res["requests"]["count"] == 1


def test_results_until_cuts_the_gate_window_of_a_run_that_ended_early() -> None:
    rec = started()
    for second in range(20, 25):
        for _ in range(40):
            rec.record("a", t=T0 + second + 0.5, response_ms=5, ok=True)
    full = rec.figures()
    assert full["window"]["seconds"] == 20 and full["qps"]["held"] == pytest.approx(10)
    cut = rec.figures(until=T0 + 25)
    assert cut["window"] == {"start": iso(T0 + 20), "end": iso(T0 + 25), "seconds": 5.0, "stages": ["hold"]}
    assert cut["qps"] == {"target": pytest.approx(40), "held": pytest.approx(40), "arrivals_held": 0.0}
    # ended before the gate began: no window at all (not one starting after the run ended)
    assert rec.figures(until=T0 + 15)["window"] == {"start": None, "end": None, "seconds": 0, "stages": []}


def _journeys(rec: Recorder, seconds: range) -> None:
    """10 journeys/s in warmup and ramp, 40/s in hold; each journey makes three requests."""
    for second in seconds:
        rate = 10 if second < 20 else 40
        for k in range(rate):
            t = T0 + second + k / rate
            rec.record_arrival(t)
            for step in range(3):
                rec.record("step", t=t + 0.001 * step, response_ms=1, ok=True)


def test_arrivals_held_counts_the_journeys_started_in_the_gate_window() -> None:
    rec = Recorder(plan())
    rec.record_arrival(T0 + 25)  # before start(): not counted
    rec.start(T0)
    rec.record_arrival(T0 - 0.5)  # before t0
    rec.record_arrival(T0 + 40)  # after the end
    _journeys(rec, range(30))
    early = rec.live(T0 + 10)  # before the gate: over the run so far
    assert early["qps"]["arrivals_held"] == pytest.approx(10) and early["qps"]["held"] == pytest.approx(30)
    cut = rec.figures(until=T0 + 30)  # a run stopped 10 s into the hold
    assert cut["qps"]["arrivals_held"] == pytest.approx(40)
    _journeys(rec, range(30, 40))
    res = rec.figures()
    assert res["qps"] == {"target": pytest.approx(40), "held": pytest.approx(120), "arrivals_held": 40.0}
    # per second too, for the report's chart: journeys started, beside requests and the plan
    series = res["timeseries"]
    assert series["arrivals"] == [10] * 20 + [40] * 20
    assert series["qps"] == [30] * 20 + [120] * 20


def test_live_says_whether_the_gate_has_started_and_when_it_will() -> None:
    rec = started()  # warmup 10 s, ramp 10 s, then the hold gate
    assert rec.live(T0 - 0.5)["gate"] == {"started": False, "starts_in_s": 20.5}
    assert rec.live(T0 + 12.34)["gate"] == {"started": False, "starts_in_s": 7.7}
    assert rec.live(T0 + 20)["gate"] == {"started": True, "starts_in_s": 0.0}
    assert rec.live(T0 + 99)["gate"] == {"started": True, "starts_in_s": 0.0}  # after the end
    assert Recorder(plan()).live(T0)["gate"] == {"started": False, "starts_in_s": None}
    unmarked = started(
        plan({"name": "a", "duration": "5s", "qps": 5}, {"name": "b", "duration": "10s", "qps": 5})
    )
    assert unmarked.live(T0 + 1)["gate"] == {"started": False, "starts_in_s": 4.0}  # judged on the last
    first = started(plan({"name": "hold", "duration": "5s", "qps": 5, "gate": True}))
    assert first.live(T0)["gate"] == {"started": True, "starts_in_s": 0.0}
