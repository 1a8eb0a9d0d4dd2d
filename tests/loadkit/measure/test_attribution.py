"""The per-second rule: when is the generator unhealthy, and who caused each late arrival."""

from __future__ import annotations

import pytest

from loadkit.measure.attribution import CPU_LIMIT, LAG_MAX_LIMIT_MS, LAG_P99_LIMIT_MS, attribute, is_unhealthy


@pytest.mark.parametrize(
    ("p99", "top", "cpu", "wait", "unhealthy"),
    [
        (2.0, 10.0, 30.0, 2.0, False),
        (LAG_P99_LIMIT_MS, 30.0, 30.0, 0.0, False),  # at the limit is still healthy
        (LAG_P99_LIMIT_MS + 0.1, 30.0, 30.0, 0.0, True),
        (2.0, LAG_MAX_LIMIT_MS + 1, 30.0, 0.0, True),
        (2.0, 10.0, CPU_LIMIT + 1, None, True),
        (2.0, 10.0, 60.0, 30.0, True),  # ran 60%, waited 30% for a core: it wanted 90%
        (None, None, None, None, False),  # nothing measured: not judged here
    ],
)
def test_unhealthy_second(p99, top, cpu, wait, unhealthy):
    assert is_unhealthy(p99, top, cpu, wait) is unhealthy


def test_attribute_by_the_health_of_each_second():
    late = {
        0: {"loop": 1, "target": 5, "users": 2},  # healthy
        1: {"loop": 0, "target": 9, "users": 0},  # unhealthy
        2: {"loop": 0, "target": 4, "users": 0},  # not measured
    }
    health = {0: True, 1: False}
    assert attribute(late, health.get) == {"generator": 1 + 9 + 4, "users": 2, "target": 5}
    into = {"generator": 1, "users": 1, "target": 1}
    assert attribute({0: late[0]}, health.get, into) is into
    assert into == {"generator": 2, "users": 3, "target": 6}
