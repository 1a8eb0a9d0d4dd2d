"""The worker report: what a worker's session sends survives msgpack and check_report(), and
anything else is refused with a reason."""

from __future__ import annotations

import time

import gevent
import pytest
from locust.rpc.protocol import Message

from loadkit.engine.messages import check_report
from loadkit.engine.session import RunSession
from loadkit.measure.recorder import DeltaError
from loadkit.plan import parse_plan

PLAN = parse_plan({"name": "w", "stages": [{"name": "hold", "duration": "10s", "qps": 100, "gate": True}]})


def worker_report() -> dict:
    session = RunSession(PLAN)
    pacer = session.new_pacer()
    session.begin(time.time() - 1.0)  # 100 slots already due: late, no user was free
    gevent.spawn(pacer.take).join(timeout=2)
    gevent.sleep(0.05)
    return {
        "t0": session.t0,
        "recorder": session.recorder.take_delta(),
        "arrivals": pacer.counts(),
        "health": session.health_delta(),
        "told": [["claim", "B1", "7", "2088000000000001"]],
    }


def over_the_wire(payload: dict) -> dict:
    """As the master receives it: msgpack through Locust's own message type."""
    return Message.unserialize(Message("stats", {"loadkit": payload}, "worker").serialize()).data["loadkit"]


def test_a_workers_report_survives_the_wire_and_the_check():
    sent = worker_report()
    received = check_report(over_the_wire(sent))
    health = received["health"]
    assert health["seconds"] and health["seconds"][-1]["s"] == 1  # the probe's second under way
    assert health["late"] == {0: {"loop": 0, "target": 0, "users": 1}}  # its first ticket: no journey yet
    assert sum(c["users"] for c in health["pending"].values()) == received["arrivals"]["unsent"]
    assert received["told"] == [("claim", "B1", "7", "2088000000000001")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"health": None}, "malformed"),
        ({"health": {"seconds": [{"s": 1}], "late": {}, "pending": {}}}, "malformed"),
        ({"cpu": [], "health": ...}, "without health"),  # the report of an older worker
        ({"t0": "soon"}, "malformed"),
        ({"told": [["claim"]]}, "malformed"),
        ({"told": "x"}, "malformed"),
        ({"told": ...}, "without told"),
    ],
)
def test_a_malformed_report_is_refused(change, message):
    report = over_the_wire(worker_report())
    for key, value in change.items():
        if value is ...:
            del report[key]
        else:
            report[key] = value
    with pytest.raises(DeltaError, match=message):
        check_report(report)
