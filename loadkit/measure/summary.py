"""summary.json: the one document every report, the CI gate, the history and `compare` read.

Built in one place (`build_summary`) from typed evidence plus the verdict, written in one place
(`dumps`), read back in one place (`load_summary`, which also upgrades older documents). The
document has exactly the keys of `Summary` in that order (docs/summary.schema.json, checked by a
test) and is strictly JSON-safe: NaN and infinities become null, so every consumer can parse it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path, PurePath
from typing import Any, TypedDict, cast

import orjson

from loadkit.measure.compare import Row, Tolerance, compare, judged_gate, plan_differences
from loadkit.measure.figures import (
    EMPTY_ARRIVALS,
    EMPTY_GENERATOR,
    EMPTY_LATENCY,
    EMPTY_TIMESERIES,
    Arrivals,
    BaselineRun,
    Ending,
    Endpoint,
    ErrorKind,
    Evidence,
    Generator,
    Latency,
    Qps,
    Requests,
    Timeseries,
    WholeRun,
    Window,
    iso,
)
from loadkit.measure.verdict import EXIT_CODES, judge
from loadkit.plan import Plan

# 3: `service` and `drills` (the three-tier rehearsal), `baseline`, the generator's health (loop
# lag, time unhealthy, late arrivals by cause, per process and per second in `timeseries`), each
# check's `effect`. 2: `ending`; arrivals add up (on_time, unsent); no stray keys. 1: the first.
SCHEMA = 3


class PlanInfo(TypedDict):
    name: str
    file: str | None
    host: str | None
    raw: dict[str, Any]


class CheckDoc(TypedDict):
    name: str
    ok: bool
    observed: Any
    limit: Any
    unit: str
    kind: str  # budget | integrity | health
    reason: str | None
    effect: str  # pass | fail | inconclusive: what the check does to the verdict


class BaselineSection(TypedDict):
    """`--baseline`: the run compared with, and each key figure beside its own (compare.py)."""

    run: BaselineRun
    max_regression: float
    tolerance: dict[str, float]
    plan_differences: list[str]  # empty when both runs ran the same plan
    figures: list[Row]


class Summary(TypedDict):
    schema: int
    tool: str
    verdict: str
    exit_code: int
    reasons: list[str]
    ending: Ending | None
    plan: PlanInfo
    started_at: str
    finished_at: str
    window: Window
    qps: Qps
    latency_ms: Latency
    latency_ms_service: Latency
    error_rate: float | None
    requests: Requests
    outcomes: dict[str, int]
    arrivals: Arrivals
    whole_run: WholeRun
    checks: list[CheckDoc]
    endpoints: dict[str, Endpoint]
    generator: Generator
    errors: list[ErrorKind]
    abort: dict[str, Any] | None
    audit: dict[str, Any] | None
    reconciliation: dict[str, Any] | None
    service: dict[str, Any] | None  # the system under test (rehearsal.service.ServiceDoc)
    drills: list[dict[str, Any]]  # one per drill (measure.drills.DrillDoc)
    baseline: BaselineSection | None
    timeseries: Timeseries


KEYS = tuple(Summary.__annotations__)
_EMPTY_REQUESTS: Requests = {"count": 0, "successes": 0, "errors": 0, "expected_outcomes": 0}


def build_summary(
    plan: Plan,
    evidence: Evidence,
    *,
    started_at: float,
    finished_at: float,
    host: str | None = None,
) -> Summary:
    """The summary of one run: `evidence` judged against `plan`. `host` is the host actually
    targeted (it may differ from the plan's). A run that ended before its gate window began has
    no rates to show (None), but its planned rate is still the plan's."""
    verdict, checks, reasons = judge(plan, evidence)
    window = evidence.get("window") or _plan_window(plan)
    qps = dict(evidence.get("qps") or {})
    if not window.get("seconds"):
        qps = {"target": None, "held": None, "arrivals_held": None}
    if qps.get("target") is None:
        qps["target"] = round(plan.gate_target_qps(), 3)
    doc: Summary = {
        "schema": SCHEMA,
        "tool": "loadkit",
        "verdict": verdict,
        "exit_code": EXIT_CODES[verdict],
        "reasons": reasons,
        "ending": evidence.get("ending"),
        "plan": {
            "name": plan.name,
            "file": str(plan.source) if plan.source is not None else None,
            "host": host or plan.host,
            "raw": dict(plan.raw),
        },
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "window": window,
        "qps": {
            "target": qps.get("target"),
            "held": qps.get("held"),
            "arrivals_held": qps.get("arrivals_held"),
        },
        "latency_ms": evidence.get("latency_ms") or EMPTY_LATENCY,
        "latency_ms_service": evidence.get("latency_ms_service") or EMPTY_LATENCY,
        "error_rate": evidence.get("error_rate"),
        "requests": evidence.get("requests") or _EMPTY_REQUESTS,
        "outcomes": evidence.get("outcomes") or {},
        "arrivals": evidence.get("arrivals") or EMPTY_ARRIVALS,
        "whole_run": evidence.get("whole_run") or {"requests": 0, "errors": 0},
        "checks": [cast(CheckDoc, c.as_dict()) for c in checks],
        "endpoints": evidence.get("endpoints") or {},
        "generator": {**EMPTY_GENERATOR, **(evidence.get("generator") or {})},
        "errors": evidence.get("errors") or [],
        "abort": evidence.get("abort"),
        "audit": evidence.get("audit"),
        "reconciliation": evidence.get("reconciliation"),
        "service": evidence.get("service"),
        "drills": evidence.get("drills") or [],
        "baseline": _baseline_section(plan, evidence),
        "timeseries": {**EMPTY_TIMESERIES, **(evidence.get("timeseries") or {})},
    }
    return cast(Summary, json_safe(doc))


def _baseline_section(plan: Plan, evidence: Evidence) -> BaselineSection | None:
    """The same comparison the verdict's baseline checks make (compare.py), kept for the reports."""
    baseline = evidence.get("baseline")
    if not baseline:
        return None
    tolerance = Tolerance(relative=float(baseline["max_regression"]))
    gate = judged_gate(plan, evidence)
    current = {**evidence, "plan": {"name": plan.name, "raw": dict(plan.raw)}}
    return {
        "run": baseline["run"],
        "max_regression": tolerance.relative,
        "tolerance": tolerance.as_dict(),
        "plan_differences": plan_differences(current, baseline["summary"]),
        "figures": compare(evidence, baseline["summary"], tolerance, current_gate=gate),
    }


def _plan_window(plan: Plan) -> Window:
    return {
        "start": None,
        "end": None,
        "seconds": plan.gate_seconds(),
        "stages": [plan.stages[i].name for i in plan.gate_stages()],
    }


def dumps(summary: Mapping[str, Any]) -> bytes:
    """summary.json's bytes (indented, one trailing newline)."""
    return orjson.dumps(json_safe(summary), option=orjson.OPT_INDENT_2) + b"\n"


def load_summary(doc: Any) -> Summary:
    """A summary read from disk, of this schema or an older one, with every key present.

    Schema 2 lacked `service`, `drills` and `baseline` (null, empty), the generator's health (loop
    lag, causes, processes: unknown, so null or empty) and the checks' `effect` (derived from `ok`
    and `kind`, as the verdict then did). Schema 1 also lacked `ending`, `arrivals.on_time`/`unsent`
    and `qps.arrivals_held`, and could carry stray diagnostic keys (`seen`, `beyond`, `run`), which
    are dropped. Raises ValueError when `doc` is not a loadkit summary at all."""
    if not isinstance(doc, Mapping) or doc.get("tool") != "loadkit" or "verdict" not in doc:
        raise ValueError("not a loadkit summary (no tool: loadkit / verdict)")
    out: dict[str, Any] = {key: doc.get(key) for key in KEYS}
    out["schema"] = SCHEMA
    out["reasons"] = list(doc.get("reasons") or [])
    out["checks"] = [_upgrade_check(c) for c in doc.get("checks") or [] if isinstance(c, Mapping)]
    for key, empty in (
        ("latency_ms", EMPTY_LATENCY),
        ("latency_ms_service", EMPTY_LATENCY),
        ("requests", _EMPTY_REQUESTS),
        ("timeseries", EMPTY_TIMESERIES),
    ):
        out[key] = {**empty, **(doc.get(key) or {})}
    out["whole_run"] = {"requests": 0, "errors": 0, **(doc.get("whole_run") or {})}
    if "whole_run" not in doc and isinstance(doc.get("run"), Mapping):  # schema 1 kept it as `run`
        out["whole_run"] = {k: int(doc["run"].get(k) or 0) for k in ("requests", "errors")}
    for key in ("outcomes", "endpoints"):
        out[key] = dict(doc.get(key) or {})
    out["generator"] = {**EMPTY_GENERATOR, **(doc.get("generator") or {})}
    out["errors"] = list(doc.get("errors") or [])
    out["drills"] = list(doc.get("drills") or [])
    qps = doc.get("qps") or {}
    out["qps"] = {k: qps.get(k) for k in ("target", "held", "arrivals_held")}
    arrivals = {**EMPTY_ARRIVALS, **(doc.get("arrivals") or {})}
    if "on_time" not in (doc.get("arrivals") or {}):
        arrivals["on_time"] = max(0, arrivals["sent"] - arrivals["late"])
        arrivals["unsent"] = max(0, arrivals["scheduled"] - arrivals["sent"] - arrivals["dropped"])
    out["arrivals"] = arrivals
    window = doc.get("window") or {}
    out["window"] = {k: window.get(k) for k in ("start", "end", "seconds", "stages")}
    plan = doc.get("plan") or {}
    out["plan"] = {k: plan.get(k) for k in ("name", "file", "host", "raw")}
    return cast(Summary, out)


def _upgrade_check(check: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(check)
    if "effect" not in out:
        out["effect"] = "pass" if out.get("ok") else "inconclusive" if out.get("kind") == "health" else "fail"
    return out


# --- the live snapshot: what a run knows so far, for when its generator dies ------------------------

LIVE_NAME = ".live.json"


class Snapshot(TypedDict):
    """What the judging process knows while a test runs, written to the report directory every
    5 seconds (`write_snapshot`) and removed once the run's reports are written. If Locust dies
    (kill -9, out of memory), `loadkit run` builds the summary from the last one."""

    t0: float  # epoch seconds of plan time 0
    started_at: float  # epoch seconds the test started
    written_at: float  # epoch seconds of this snapshot: the figures are cut here
    host: str | None
    evidence: Evidence  # figures, arrivals, generator, whole run, abort (no ending, no audit)


def write_snapshot(run_dir: Path, snapshot: Snapshot) -> None:
    """Atomically (a reader sees the previous snapshot or this one, never half of one)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f"{LIVE_NAME}.{os.getpid()}.tmp"
    tmp.write_bytes(orjson.dumps(snapshot))  # orjson writes NaN as null and tuples as arrays
    os.replace(tmp, run_dir / LIVE_NAME)


def read_snapshot(run_dir: Path) -> Snapshot | None:
    """The last snapshot in `run_dir`, or None when there is none (or it is unreadable)."""
    try:
        data = orjson.loads((run_dir / LIVE_NAME).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not all(key in data for key in Snapshot.__annotations__):
        return None
    return cast(Snapshot, data)


def json_safe(value: Any) -> Any:
    """A copy that any strict JSON encoder accepts: NaN/inf -> None, tuples -> lists, paths and
    dates -> strings, mapping keys -> strings, anything else unknown -> its str()."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    return str(value)
