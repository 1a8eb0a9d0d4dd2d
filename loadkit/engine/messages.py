"""The wire formats between a master and its workers (msgpack through Locust's own channel).

- master -> workers, custom message `loadkit:start`: `StartMessage`, once per test.
- workers -> master, inside Locust's `report_to_master` data under the key "loadkit":
  `WorkerReport`, every report interval (3 s) and once more at the end.
- worker -> master, custom message `loadkit:hello`: `HelloMessage`, once, right after it
  connects: the run it belongs to. A master of another run answers `loadkit:refused`
  (`RefusedMessage`) and Locust's own `quit`.
"""

from __future__ import annotations

from typing import Any, TypedDict

from loadkit.measure.figures import Arrivals
from loadkit.measure.generator import HealthDelta, check_health_delta
from loadkit.measure.recorder import DeltaError, RecorderDelta
from loadkit.measure.told import Told, ToldError, check_told

START_MESSAGE = "loadkit:start"
HELLO_MESSAGE = "loadkit:hello"
REFUSED_MESSAGE = "loadkit:refused"


class StartMessage(TypedDict):
    t0: float  # epoch seconds of plan time 0, shared by every worker
    workers: int  # how many workers share the rate: each paces 1/workers of it
    plan: dict[str, Any]  # the plan keys a worker needs to pace (it may have no plan file)


class WorkerReport(TypedDict):
    t0: float  # the test the figures belong to (a late report of an earlier test is ignored)
    recorder: RecorderDelta
    arrivals: Arrivals  # cumulative counts of this worker's pacer
    health: HealthDelta  # loop lag, CPU and late arrivals by cause since the last report
    told: list[Told]  # grants users were told about since the last report (JsonUser; else empty)


class HelloMessage(TypedDict):
    run_id: str | None  # the run this worker belongs to (--run-id, LOADKIT_RUN_ID); None: not given


class RefusedMessage(TypedDict):
    reason: str  # why the master refused this worker (a sentence for the worker's log)


def check_report(payload: Any) -> WorkerReport:
    """The report as sent, or DeltaError naming what is missing (the recorder delta itself is
    checked field by field when it is merged)."""
    if not isinstance(payload, dict):
        raise DeltaError(f"a worker report must be a mapping, got {type(payload).__name__}")
    missing = [key for key in WorkerReport.__annotations__ if key not in payload]
    if missing:
        raise DeltaError(f"a worker report without {', '.join(missing)}")
    try:
        float(payload["t0"])
        health = check_health_delta(payload["health"])
        arrivals = {key: int(payload["arrivals"].get(key, 0)) for key in Arrivals.__annotations__}
        told = check_told(payload["told"])
    except ToldError as exc:
        raise DeltaError(f"malformed worker report: {exc}") from exc
    except (AttributeError, TypeError, ValueError) as exc:
        raise DeltaError(f"malformed worker report: {exc!r}") from exc
    return {**payload, "health": health, "arrivals": arrivals, "told": told}  # type: ignore[typeddict-item]
