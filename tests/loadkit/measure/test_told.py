"""The told log: cheap appends, a worker's share taken once, rows from the wire checked."""

from __future__ import annotations

import pytest

from loadkit.measure.told import ToldError, ToldLog, check_told


def test_take_hands_over_each_row_once():
    log = ToldLog()
    log.add("claim", "B1", "1", "U1")
    log.add("claim", "B2", None, None)
    assert log.take() == [("claim", "B1", "1", "U1"), ("claim", "B2", None, None)]
    assert log.take() == [] and len(log) == 0
    log.extend([("claim", "B3", None, "U3")])
    assert len(log) == 1


def test_rows_from_the_wire():
    assert check_told([["claim", "B1", None, "U1"]]) == [("claim", "B1", None, "U1")]
    for bad in ({}, [["claim", "B1", None]], [["claim", 5, None, None]], [["claim", "B", 3, None]], ["x"]):
        with pytest.raises(ToldError):
            check_told(bad)
