"""What users were told travels from the request event into the session (local or worker), and
from the workers' reports into the master's log."""

from __future__ import annotations

from types import SimpleNamespace

from loadkit.engine.roles import MasterRole, WorkerRole, _Pacing
from loadkit.engine.session import RunSession
from loadkit.measure.told import TOLD_KEY
from loadkit.plan import parse_plan

PLAN = parse_plan({"name": "t", "stages": [{"name": "hold", "duration": "10s", "qps": 1, "gate": True}]})


def pacing_role() -> _Pacing:
    role = _Pacing.__new__(_Pacing)
    role.session = RunSession(PLAN)
    role.session.begin(1_000.0)
    return role


def test_request_event_records_told_rows_of_successes_only():
    role = pacing_role()
    role.on_request("claim", 12.0, None, {TOLD_KEY: ("B1", "7", "U1")})
    role.on_request("claim", 12.0, RuntimeError("HTTP 503"), {TOLD_KEY: ("B2", None, "U2")})
    role.on_request("login", 12.0, None, {})
    role.on_request("other", 12.0, None, None)
    assert role.session.told.rows == [("claim", "B1", "7", "U1")]


def test_worker_ships_new_rows_and_master_merges_them():
    worker = WorkerRole.__new__(WorkerRole)
    worker.session = pacing_role().session
    worker.session.told.add("claim", "B1", "7", "U1")
    data: dict = {}
    worker.on_report_to_master(data)
    assert data["loadkit"]["told"] == [("claim", "B1", "7", "U1")]
    assert worker.session.told.rows == []  # shipped once
    master = SimpleNamespace(session=RunSession(PLAN), worker_arrivals={}, members={"w1"}, reported_at={})
    master.session.begin(worker.session.t0)
    wire = {**data["loadkit"], "told": [list(r) for r in data["loadkit"]["told"]]}  # msgpack: lists
    MasterRole.on_worker_report(master, "w1", {"loadkit": wire})
    MasterRole.on_worker_report(master, "w1", {"loadkit": {**wire, "told": [["bad"]]}})  # refused
    assert master.session.told.rows == [("claim", "B1", "7", "U1")]
