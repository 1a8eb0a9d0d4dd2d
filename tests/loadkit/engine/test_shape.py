"""PlanShape: users and spawn rate per stage, None after the plan, invisible to Locust's loader."""

from __future__ import annotations

import time
import types

from locust.util.load_locustfile import is_shape_class

from loadkit.engine.shape import PlanShape, shape_for
from loadkit.plan import parse_plan

PLAN = parse_plan(
    {
        "name": "shape",
        "budgets": {"latency_ms": {"p99": 500}},
        "stages": [
            {"name": "warmup", "duration": "10s", "qps": 10, "users": 7},
            {"name": "ramp", "duration": "20s", "qps": [10, 200]},
            {"name": "hold", "duration": "30s", "qps": 200, "gate": True, "users": 400},
        ],
    }
)


def tick_at(shape: PlanShape, run_time: float):
    shape.start_time = time.perf_counter() - run_time
    return shape.tick()


def test_tick_gives_each_stage_its_pool_spawned_within_a_second() -> None:
    shape = shape_for(PLAN)
    assert isinstance(shape, PlanShape)
    assert tick_at(shape, 0.0) == (7, 7.0)
    assert tick_at(shape, 9.9) == (7, 7.0)
    ramp_users = PLAN.users_for(1)
    assert ramp_users > 7
    assert tick_at(shape, 10.0) == (ramp_users, float(ramp_users))
    assert tick_at(shape, 59.0) == (400, 400.0)


def test_tick_is_none_after_the_plan() -> None:
    shape = shape_for(PLAN)
    assert tick_at(shape, 60.0) is None
    assert tick_at(shape, 3600.0) is None


def test_locust_does_not_pick_the_class_up_from_an_import() -> None:
    assert not is_shape_class(PlanShape)
    module = types.ModuleType("locustfile")
    module.PlanShape = PlanShape
    assert [v for v in vars(module).values() if is_shape_class(v)] == []


def test_end_stops_the_shape_at_its_next_tick() -> None:
    shape = shape_for(PLAN)
    shape.reset_time()
    assert shape.tick() is not None
    shape.end()  # Ctrl-C of a headless run: Locust's runner stops the test as at the plan's end
    assert shape.tick() is None
