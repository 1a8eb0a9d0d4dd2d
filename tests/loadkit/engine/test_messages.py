"""Worker reports: checked on receipt, told rows included; a malformed one is refused whole."""

from __future__ import annotations

import pytest

from loadkit.engine.messages import check_report
from loadkit.measure.recorder import DeltaError


def report(**changes):
    doc = {
        "t0": 1.0,
        "recorder": {},
        "arrivals": {"scheduled": 3, "sent": 3, "on_time": 3},
        "cpu": [[1.0, 20.0]],
        "told": [["claim", "B1", "7", "2088000000000001"]],
    }
    doc.update(changes)
    return doc


def test_a_report_with_told_rows():
    checked = check_report(report())
    assert checked["told"] == [("claim", "B1", "7", "2088000000000001")]
    assert checked["arrivals"]["late"] == 0 and checked["cpu"] == [(1.0, 20.0)]


@pytest.mark.parametrize("change", [{"told": [["claim"]]}, {"told": "x"}, {"cpu": [["a", 1]]}])
def test_malformed_reports_are_refused(change):
    with pytest.raises(DeltaError):
        check_report(report(**change))


def test_a_report_without_told_is_refused():
    doc = report()
    del doc["told"]
    with pytest.raises(DeltaError, match="told"):
        check_report(doc)
