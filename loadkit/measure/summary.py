"""summary.json (schema 1): the one document every report, the CI gate and the history read.

Built from the measured figures plus the verdict, in the key order of docs/architecture.md, and
made strictly JSON-safe (NaN and infinities become null) so every consumer can parse it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

from loadkit.measure.verdict import EXIT_CODES, judge
from loadkit.plan import PERCENTILE_KEYS, Plan

SCHEMA = 1
_EMPTY_LATENCY = dict.fromkeys(PERCENTILE_KEYS)
_OWN_KEYS = ("schema", "tool", "verdict", "exit_code", "reasons", "plan", "started_at", "finished_at")
_DEFAULTS: dict[str, Any] = {
    "latency_ms": _EMPTY_LATENCY,
    "latency_ms_service": _EMPTY_LATENCY,
    "error_rate": None,
    "requests": {"count": 0, "successes": 0, "errors": 0, "expected_outcomes": 0},
    "outcomes": {},
    "arrivals": {"scheduled": 0, "sent": 0, "late": 0, "dropped": 0},
    "endpoints": {},
    "generator": {},
    "errors": [],
    "abort": None,
    "audit": None,
    "reconciliation": None,
    "timeseries": {
        "interval_s": 1,
        "t": [],
        "qps": [],
        "errors": [],
        "target_qps": [],
        "p50": [],
        "p95": [],
        "p99": [],
    },
}


def build_summary(
    plan: Plan,
    results: Mapping[str, Any],
    *,
    started_at: str | float,
    finished_at: str | float,
    window: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The full summary document. `results` holds the measured figures (summary.json keys); a
    `host` key there names the host actually targeted (it may differ from the plan's). Keys of
    `results` or `extra` outside the schema are kept after the schema's own, for diagnostics."""
    verdict, checks, reasons = judge(plan, results)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "tool": "loadkit",
        "verdict": verdict,
        "exit_code": EXIT_CODES[verdict],
        "reasons": reasons,
        "plan": {
            "name": plan.name,
            "file": str(plan.source) if plan.source is not None else None,
            "host": results.get("host") or plan.host,
            "raw": dict(plan.raw),
        },
        "started_at": _iso(started_at),
        "finished_at": _iso(finished_at),
        "window": _window(plan, results.get("window"), window),
        "qps": _qps(plan, results.get("qps")),
    }
    for key, default in _DEFAULTS.items():
        doc[key] = results.get(key, default)
        if key == "arrivals":
            doc["checks"] = [c.as_dict() for c in checks]
    for key, value in [*results.items(), *(extra or {}).items()]:
        if key not in doc and key not in _OWN_KEYS and key != "host":
            doc[key] = value
    return json_safe(doc)


def _window(plan: Plan, measured: Mapping[str, Any] | None, given: Mapping[str, Any]) -> dict[str, Any]:
    """start/end from the caller, seconds/stages from the measurement, else from the plan."""
    out: dict[str, Any] = {"start": None, "end": None, "seconds": None, "stages": None}
    out.update(measured or {})
    out.update(given)
    for key in ("start", "end"):
        if out[key] is not None:
            out[key] = _iso(out[key])
    if out["seconds"] is None:
        out["seconds"] = plan.gate_seconds()
    if out["stages"] is None:
        out["stages"] = [plan.stages[i].name for i in plan.gate_stages()]
    return out


def _qps(plan: Plan, measured: Mapping[str, Any] | None) -> dict[str, Any]:
    """The target defaults to the plan's mean rate over its gate stages; figures not measured are
    null, so every summary has the same keys."""
    measured = dict(measured or {})
    if measured.get("target") is None:
        gates = plan.gate_stages()
        start = plan.stage_start(gates[0])
        end = plan.stage_start(gates[-1]) + plan.stages[gates[-1]].duration_s
        measured["target"] = round(plan.arrivals_between(start, end) / plan.gate_seconds(), 3)
    own = {key: measured.pop(key, None) for key in ("target", "held", "arrivals_held")}
    return {**own, **measured}


def _iso(value: str | float | datetime) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    return str(value)


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
