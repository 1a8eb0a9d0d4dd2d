"""Drills on the mock: each one a named fault layer, put at test start with its absolute window
(plan time + t0, by the mock's clock, so a drill put late still ends on time) and deleted at the
end of the test."""

from __future__ import annotations

import time
from collections.abc import Sequence

from loadkit.plan import Drill
from loadkit.rehearsal.mock_admin import MockAdmin, MockAdminError

CHECK_AHEAD_S = 10 * 86400.0  # a trial put this far ahead never takes effect


def check(mock: MockAdmin, drills: Sequence[Drill]) -> None:
    """Let the mock validate every drill's faults before any test starts (a trial layer far in
    the future, deleted at once); MockAdminError names the drill and the mock's complaint."""
    for drill in drills:
        try:
            mock.put_layer(drill.name, drill.faults, time.time() + CHECK_AHEAD_S, drill.for_s)
        except MockAdminError as exc:
            raise MockAdminError(
                f"drills: {drill.name}: the mock platform refused its faults: {exc}"
            ) from None
        mock.delete_layer(drill.name)


def schedule(mock: MockAdmin, drills: Sequence[Drill], t0: float) -> None:
    for drill in drills:
        mock.put_layer(drill.name, drill.faults, t0 + drill.at_s, drill.for_s)


def remove(mock: MockAdmin, drills: Sequence[Drill]) -> None:
    for drill in drills:
        mock.delete_layer(drill.name)
