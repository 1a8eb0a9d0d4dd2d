"""loadkit: event-readiness load testing for mini-program marketing campaigns, on Locust.

Public names are loaded lazily: importing `loadkit` (as the CLI does) must not import Locust,
which monkey-patches the process with gevent. Locust-side names (`PlatformUser`, ...) import it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Plan": "loadkit.plan",
    "PlanError": "loadkit.plan",
    "load_plan": "loadkit.plan",
    "parse_plan": "loadkit.plan",
    "parse_duration": "loadkit.plan.durations",
    "judge": "loadkit.measure.verdict",
    "Check": "loadkit.measure.verdict",
    "build_summary": "loadkit.measure.summary",
    "LatencyHistogram": "loadkit.measure.histogram",
    "Recorder": "loadkit.measure.recorder",
    "ArrivalPacer": "loadkit.engine.pacing",
    "PlanShape": "loadkit.engine.shape",
    "PlatformClient": "loadkit.platform.client",
    "REQUEST_NAMES": "loadkit.platform.client",
    "PlatformUser": "loadkit.platform.user",
    "JsonUser": "loadkit.platform.json_user",
    "Population": "loadkit.platform.population",
    "Funnel": "loadkit.platform.funnel",
    "MockAdmin": "loadkit.rehearsal.mock_admin",
    "plan_clock": "loadkit.engine.clock",
    "PlanClock": "loadkit.engine.clock",
    "load_summary": "loadkit.measure.summary",
    "Summary": "loadkit.measure.summary",
    "LoadkitPlugin": "loadkit.engine.plugin",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loadkit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
