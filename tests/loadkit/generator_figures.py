"""A complete `Generator` section (summary.json `generator`) for tests that build evidence by hand."""

from __future__ import annotations

import copy
from typing import Any

HEALTHY: dict[str, Any] = {
    "cpu_max": 70.0,
    "cpu_avg": 55.0,
    "cpu_high_s": 0.0,
    "workers": 1,
    "workers_lost": 0,
    "lag_p99_ms": 3.0,
    "lag_max_ms": 12.0,
    "unhealthy_s": 0.0,
    "late": {"generator": 0, "users": 0, "target": 0},
    "unsent": {"generator": 0, "users": 0, "target": 0},
    "processes": [
        {
            "name": "local",
            "paces": True,
            "lag_p99_ms": 3.0,
            "lag_max_ms": 12.0,
            "cpu_max": 70.0,
            "cpu_avg": 55.0,
            "cpu_wait_max": 4.0,
            "unhealthy_s": 0.0,
            "free_min": 3,
        }
    ],
}


def generator(**over: Any) -> dict[str, Any]:
    """The healthy generator, with top-level keys replaced."""
    return {**copy.deepcopy(HEALTHY), **over}
