"""What the requests of a run did, per plan stage and endpoint, in a form workers can ship.

One `Recorder` per process.  `record()` is called from Locust's request listener (the stats hot
path, 2-3 µs): it classifies the request into the plan stage its end time falls in and bumps
counters and sparse HDR histograms.  `record_arrival()` is called by the pacer for each journey
started, so the arrival rate held is windowed by stage like the requests.  A worker calls
`take_delta()` in `report_to_master`; the master `merge()`s the deltas, so its figures equal what
one process recording everything would have (percentiles come from merged histograms, never from
averaged percentiles).  A recorder is either a delta source (worker) or an accumulator (local
runner, master): `take_delta()` empties it.

A plan's drills (platform trouble on its timeline) are judged apart: a request that ends inside a
drill's window or its recovery allowance is kept in the cell of its stage's "drill" twin (index
`stage + len(stages)`), so the budgets of the gate judge only the time outside the drills, while
the per-second counts and 5-s windows (`timeseries`, `window()`) still see everything.

Plan time is `t - t0` with `t0` set by `start()`.  Requests before `start()`, before t0 or after the
plan's end go to the "beyond" count: they are counted in `seen` (per endpoint, for reconciliation;
expected business outcomes are not counted there as successes, since they take no effect
with the target's ledger) but in no stage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypedDict

from loadkit.measure.figures import (
    EMPTY_GENERATOR_SERIES,
    NO_GATE,
    Figures,
    Gate,
    LiveFigures,
    Seen,
    Timeseries,
    WholeRun,
    iso,
)
from loadkit.measure.histogram import LatencyHistogram, bucket_ms

if TYPE_CHECKING:
    from loadkit.plan import Plan

WINDOW_S = 5  # latency percentiles of the time series are computed per 5-second window
MAX_ERROR_KINDS = 200  # distinct (name, error) pairs kept; the rest are folded into one per name
OTHER_ERRORS = "(other errors: too many distinct messages)"
MAX_ERROR_CHARS = 300
DELTA_VERSION = 3  # 3: named fields (2: positional lists)
_PERCENTILES = [50.0, 95.0, 99.0]  # of the time series


class CellDelta(TypedDict):
    """One (stage, request name): counters and encoded histograms (hdrh V2 base64)."""

    stage: int
    name: str
    count: int
    successes: int
    errors: int
    outcomes: dict[str, int]
    corrected: str
    service: str


class SecondCounts(TypedDict):
    successes: int
    errors: int


class ErrorDelta(TypedDict):
    name: str
    error: str
    occurrences: int


class WindowFigures(TypedDict):
    """A span of plan time, every request that ended in it (the drill's figures)."""

    requests: int
    errors: int
    error_rate: float
    p99_ms: float | None  # corrected, over the 5-s windows the span touches
    p99_ms_service: float | None
    max_ms_service: float | None


class RecorderDelta(TypedDict):
    """What a worker recorded since its last report (`Recorder.take_delta`)."""

    v: int
    cells: list[CellDelta]
    arrivals: dict[int, int]  # stage index -> journeys started
    arrival_seconds: dict[int, int]  # plan second -> journeys started
    seen: dict[str, Seen]
    beyond: int
    seconds: dict[int, SecondCounts]  # plan second -> requests ended
    windows: dict[int, str]  # 5-s window -> encoded corrected-latency histogram
    windows_service: dict[int, str]  # 5-s window -> encoded service-latency histogram
    errors: list[ErrorDelta]


class DeltaError(ValueError):
    """A worker's delta does not have the shape `take_delta()` produces."""


class _Cell:
    """Counters and histograms of one (stage, endpoint), or of one stage over all endpoints."""

    __slots__ = ("corrected", "count", "errors", "outcomes", "service", "successes")

    def __init__(self) -> None:
        self.count = 0
        self.successes = 0
        self.errors = 0
        self.outcomes: dict[str, int] = {}
        self.corrected = LatencyHistogram()
        self.service = LatencyHistogram()

    def add_one(self, ok: bool, outcome: str | None, corrected: int, service: int) -> None:
        """One request; ``corrected`` and ``service`` are `bucket_ms` keys."""
        self.count += 1
        if ok:
            self.successes += 1
            if outcome:
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        else:
            self.errors += 1
        self.corrected.record_bucket(corrected)
        self.service.record_bucket(service)

    def add(self, other: _Cell) -> None:
        self.count += other.count
        self.successes += other.successes
        self.errors += other.errors
        for outcome, n in other.outcomes.items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n
        self.corrected.add(other.corrected)
        self.service.add(other.service)

    def copy(self) -> _Cell:
        out = _Cell()
        out.add(self)
        return out


class Recorder:
    """Per stage × endpoint counts, outcomes, corrected and service latency; time series; errors."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._bounds: list[tuple[float, float]] = []
        for index, stage in enumerate(plan.stages):
            start = float(plan.stage_start(index))
            self._bounds.append((start, start + float(stage.duration_s)))
        self._drill_spans = _drill_spans(plan)
        self._twin = len(plan.stages)  # a stage's drill twin: stage index + this
        self._t0: float | None = None
        self._targets: list[float] = []
        # cached bounds of the stage the last request fell in: most requests hit the same one
        self._cur_lo = self._cur_hi = 0.0
        self._cur_index = -1
        self._reset_figures()

    def _reset_figures(self) -> None:
        self._cells: dict[tuple[int, str], _Cell] = {}
        self._totals: dict[int, _Cell] = {}  # per stage, all endpoints
        self._arrivals: dict[int, int] = {}  # per stage, journeys started (arrival tickets taken)
        self._arrival_seconds: dict[int, int] = {}  # second of plan time -> journeys started
        self._seen: dict[str, list[int]] = {}  # name -> [successes, errors, outcomes], whole run
        self._beyond = 0
        self._seconds: dict[int, list[int]] = {}  # second of plan time -> [successes, errors]
        self._windows: dict[int, LatencyHistogram] = {}  # 5-s window -> corrected latency
        self._windows_service: dict[int, LatencyHistogram] = {}  # 5-s window -> service latency
        self._errors: dict[tuple[str, str], int] = {}
        self._window_cache: dict[int, tuple[int, dict[float, float | None]]] = {}

    @property
    def t0(self) -> float | None:
        return self._t0

    def start(self, t0: float) -> None:
        """Set plan time 0 (epoch seconds, the pacer's t0); requests are classified from now on."""
        self._t0 = float(t0)
        self._cur_lo = self._cur_hi = 0.0
        self._cur_index = -1

    # --- hot path --------------------------------------------------------------------------

    def record(
        self,
        name: str,
        *,
        t: float,
        response_ms: float,
        lateness_s: float = 0.0,
        ok: bool,
        outcome: str | None = None,
        error: str | None = None,
    ) -> None:
        """Count one finished request.

        ``t`` is the epoch time it ended, ``response_ms`` its response time, ``lateness_s`` the
        lateness of the arrival ticket of the task that sent it (``ArrivalPacer.lateness_of_current``).
        ``ok`` False is an error (``error`` is its message); ``ok`` with an ``outcome`` is an
        expected business outcome, a success counted apart.
        """
        seen = self._seen.get(name)
        if seen is None:
            seen = self._seen[name] = [0, 0, 0]
        if ok:
            if outcome:  # an expected business outcome (sold out) changed nothing in the ledger
                seen[2] += 1
            else:
                seen[0] += 1
        else:
            seen[1] += 1
            self._count_error(name, error, 1)
        t0 = self._t0
        if t0 is None:
            self._beyond += 1
            return
        rel = t - t0
        if self._cur_lo <= rel < self._cur_hi:
            index = self._cur_index
        else:
            index = self._locate(rel)
            if index < 0:
                self._beyond += 1
                return
        cell = self._cells.get((index, name))
        if cell is None:
            cell = self._cells[index, name] = _Cell()
        total = self._totals.get(index)
        if total is None:
            total = self._totals[index] = _Cell()
        corrected = bucket_ms(response_ms + lateness_s * 1000.0)
        service = bucket_ms(response_ms)
        cell.add_one(ok, outcome, corrected, service)
        total.add_one(ok, outcome, corrected, service)  # kept here so live() needs no merging
        second = int(rel)
        per_second = self._seconds.get(second)
        if per_second is None:
            per_second = self._seconds[second] = [0, 0]
        per_second[0 if ok else 1] += 1
        window = self._windows.get(second // WINDOW_S)
        if window is None:
            window = self._windows[second // WINDOW_S] = LatencyHistogram()
            self._windows_service[second // WINDOW_S] = LatencyHistogram()
        window.record_bucket(corrected)
        self._windows_service[second // WINDOW_S].record_bucket(service)

    def record_arrival(self, t: float) -> None:
        """Count one journey started at epoch ``t`` (an arrival ticket taken), in the stage it
        started in; journeys started outside the plan's stages are not counted."""
        if self._t0 is None:
            return
        rel = t - self._t0
        if self._cur_lo <= rel < self._cur_hi:
            index = self._cur_index
        else:
            index = self._locate(rel)
            if index < 0:
                return
        self._arrivals[index] = self._arrivals.get(index, 0) + 1
        second = int(rel)
        self._arrival_seconds[second] = self._arrival_seconds.get(second, 0) + 1

    def _locate(self, rel: float) -> int:
        """The cell index at plan time `rel` (its stage, or the stage's drill twin), caching the
        bounds of the span around `rel` that has that index."""
        found = self.plan.stage_at(rel) if rel >= 0 else None
        if found is None:
            return -1
        index = int(found[0])
        lo, hi = self._bounds[index]
        for a, b in self._drill_spans:  # sorted, disjoint
            if b <= lo or a >= hi:
                continue
            if a <= rel < b:
                lo, hi, index = max(lo, a), min(hi, b), index + self._twin
                break
            if b <= rel:
                lo = max(lo, b)
            else:
                hi = min(hi, a)
                break
        self._cur_lo, self._cur_hi = lo, hi
        self._cur_index = index
        return index

    def _count_error(self, name: str, error: str | None, n: int) -> None:
        message = (error or "error")[:MAX_ERROR_CHARS]
        key = (name, message)
        if key not in self._errors and len(self._errors) >= MAX_ERROR_KINDS:
            key = (name, OTHER_ERRORS)
        self._errors[key] = self._errors.get(key, 0) + n

    # --- worker -> master ------------------------------------------------------------------

    def take_delta(self) -> RecorderDelta:
        """Everything recorded since the last call (msgpack-friendly: int and str keys, lists,
        numbers, encoded histograms); the recorder starts again from zero."""
        delta: RecorderDelta = {
            "v": DELTA_VERSION,
            "cells": [
                {
                    "stage": index,
                    "name": name,
                    "count": cell.count,
                    "successes": cell.successes,
                    "errors": cell.errors,
                    "outcomes": dict(cell.outcomes),
                    "corrected": cell.corrected.encode(),
                    "service": cell.service.encode(),
                }
                for (index, name), cell in self._cells.items()
            ],
            "arrivals": dict(self._arrivals),
            "arrival_seconds": dict(self._arrival_seconds),
            "seen": {
                name: {"successes": s, "errors": e, "outcomes": o} for name, (s, e, o) in self._seen.items()
            },
            "beyond": self._beyond,
            "seconds": {second: {"successes": s, "errors": e} for second, (s, e) in self._seconds.items()},
            "windows": {w: hist.encode() for w, hist in self._windows.items()},
            "windows_service": {w: hist.encode() for w, hist in self._windows_service.items()},
            "errors": [{"name": n, "error": e, "occurrences": c} for (n, e), c in self._errors.items()],
        }
        self._reset_figures()
        return delta

    def merge(self, delta: RecorderDelta) -> None:
        """Add a worker's `take_delta()` into this recorder; raises DeltaError if it is malformed
        (nothing is added then)."""
        try:
            if delta.get("v") != DELTA_VERSION:
                raise DeltaError(f"unknown loadkit delta version {delta.get('v')!r}")
            cells = [
                (
                    int(c["stage"]),
                    str(c["name"]),
                    int(c["count"]),
                    int(c["successes"]),
                    int(c["errors"]),
                    {str(k): int(n) for k, n in c["outcomes"].items()},
                    LatencyHistogram.decode(c["corrected"]),
                    LatencyHistogram.decode(c["service"]),
                )
                for c in delta["cells"]
            ]
            windows = [(int(w), LatencyHistogram.decode(h)) for w, h in delta["windows"].items()]
            windows_service = [
                (int(w), LatencyHistogram.decode(h)) for w, h in delta["windows_service"].items()
            ]
            arrivals = [(int(index), int(n)) for index, n in delta["arrivals"].items()]
            arrival_seconds = [(int(second), int(n)) for second, n in delta["arrival_seconds"].items()]
            seen = {
                str(name): (int(c["successes"]), int(c["errors"]), int(c.get("outcomes", 0)))
                for name, c in delta["seen"].items()
            }
            seconds = [
                (int(sec), int(c["successes"]), int(c["errors"])) for sec, c in delta["seconds"].items()
            ]
            errors = [(str(e["name"]), str(e["error"]), int(e["occurrences"])) for e in delta["errors"]]
            beyond = int(delta["beyond"])
        except DeltaError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise DeltaError(f"malformed loadkit delta: {exc!r}") from exc
        for index, name, count, successes, errors_n, outcomes, corrected, service in cells:
            incoming = _Cell()
            incoming.count, incoming.successes, incoming.errors = count, successes, errors_n
            incoming.outcomes = outcomes
            incoming.corrected, incoming.service = corrected, service
            cell = self._cells.get((index, name))
            if cell is None:
                cell = self._cells[index, name] = _Cell()
            cell.add(incoming)
            total = self._totals.get(index)
            if total is None:
                total = self._totals[index] = _Cell()
            total.add(incoming)
        for index, n in arrivals:
            self._arrivals[index] = self._arrivals.get(index, 0) + n
        for second, n in arrival_seconds:
            self._arrival_seconds[second] = self._arrival_seconds.get(second, 0) + n
        for w, hist in windows:
            window = self._windows.get(w)
            if window is None:
                window = self._windows[w] = LatencyHistogram()
            window.add(hist)
        for w, hist in windows_service:
            window = self._windows_service.get(w)
            if window is None:
                window = self._windows_service[w] = LatencyHistogram()
            window.add(hist)
        for name, counts in seen.items():
            mine = self._seen.setdefault(name, [0, 0, 0])
            for i, n in enumerate(counts):
                mine[i] += n
        for second, s, e in seconds:
            mine = self._seconds.setdefault(second, [0, 0])
            mine[0] += s
            mine[1] += e
        for name, error, n in errors:
            self._count_error(name, error, n)
        self._beyond += beyond

    # --- figures ---------------------------------------------------------------------------

    def figures(self, *, until: float | None = None) -> Figures:
        """The figures over the plan's gate stages.

        ``until`` (epoch seconds) cuts the window at a run that ended early (stopped, aborted,
        interrupted): rates are then over the gate seconds that ran (none, and no window start or
        end, if it ended before the gate began). ``errors`` cover the whole run; the time series
        runs from plan second 0 to the last second with a request."""
        gates = self._gates()
        if until is None or self._t0 is None:
            weights = self._elapsed(gates, math.inf)
        else:
            weights = self._elapsed(gates, until - self._t0)
        last = max(self._seconds, default=-1) + 1
        figures = self._figures(weights, self._timeseries(min(last, math.ceil(self.plan.duration_s))))
        if self._t0 is not None:
            start, end = self.plan.gate_window()
            if until is not None:
                end = min(end, until - self._t0)
            if end > start:  # a run that ended before its gate began has no window to show
                figures["window"]["start"] = iso(self._t0 + start)
                figures["window"]["end"] = iso(self._t0 + end)
        return figures

    def seen(self) -> dict[str, Seen]:
        """Per request name over the whole run (successes without expected outcomes, errors)."""
        return {
            name: {"successes": s, "errors": e, "outcomes": o}
            for name, (s, e, o) in sorted(self._seen.items())
        }

    def whole_run(self) -> WholeRun:
        """Every request the run sent and saw end, warm-up and beyond the stages included."""
        counts = self._seen.values()
        return {
            "requests": sum(s + e + o for s, e, o in counts),
            "errors": sum(e for _s, e, _o in counts),
        }

    @property
    def beyond(self) -> int:
        """Requests that ended outside the plan's stages (before t0 or after the end)."""
        return self._beyond

    def live(self, now: float, *, lag_s: float = 0.0) -> LiveFigures:
        """The same figures so far: over the elapsed part of the gate stages once the first has
        begun, else over the run so far; plus ``qps_now``, successes per second over the last
        5 complete seconds, and ``gate``: whether the gate window has begun and in how many
        seconds it will (figures before it are not judged: warm-up rarely meets the budgets).
        ``lag_s`` shifts the ``qps_now`` window back (a master gets worker figures up to one
        report interval, 3 s, late)."""
        if self._t0 is None:
            return {**self._figures({}, self._timeseries(0)), "qps_now": 0.0, "gate": NO_GATE}
        rel = min(now - self._t0, self.plan.duration_s)
        gates = self._gates()
        gate_start = self._bounds[gates[0]][0]  # drill spans are left out of the weights only
        gate_begun = gate_start <= rel
        weights = self._elapsed(gates if gate_begun else range(len(self._bounds)), rel)
        figures = self._figures(weights, self._timeseries(max(0, math.ceil(rel))))
        end = math.floor(now - self._t0 - lag_s)
        recent = sum(self._seconds.get(s, (0, 0))[0] for s in range(end - WINDOW_S, end))
        gate: Gate = {"started": gate_begun, "starts_in_s": round(max(0.0, gate_start - rel), 1)}
        return {**figures, "qps_now": round(recent / WINDOW_S, 3), "gate": gate}

    def _elapsed(self, stages: Iterable[int], rel: float) -> dict[int, tuple[float, float]]:
        """{stage: (seconds judged, planned arrivals in them)} up to plan time ``rel``, for the
        stages that have begun; the drills' spans are not judged with the budgets."""
        weights = {}
        for i in stages:
            lo, hi = self._bounds[i]
            spans = _without(lo, min(hi, rel), self._drill_spans)
            seconds = sum(b - a for a, b in spans)
            if seconds > 0:
                weights[i] = (seconds, sum(self.plan.arrivals_between(a, b) for a, b in spans))
        return weights

    def _gates(self) -> list[int]:
        return list(self.plan.gate_stages()) or list(range(len(self._bounds)))

    def _figures(self, weights: dict[int, tuple[float, float]], timeseries: Timeseries) -> Figures:
        """Aggregate and per-endpoint figures over the stages in ``weights``
        ({index: (seconds, planned arrivals)})."""
        seconds = sum(w[0] for w in weights.values())
        planned = sum(w[1] for w in weights.values())
        # cells are used as they are when one stage is judged (the usual case), copied and added
        # only when several are
        per_name: dict[str, _Cell] = {}
        copied: set[str] = set()
        for (index, name), cell in self._cells.items():
            if index in weights:
                acc = per_name.get(name)
                if acc is None:
                    per_name[name] = cell
                    continue
                if name not in copied:
                    acc = per_name[name] = acc.copy()
                    copied.add(name)
                acc.add(cell)
        arrivals = sum(self._arrivals.get(i, 0) for i in weights)
        totals = [self._totals[i] for i in sorted(weights) if i in self._totals]
        total = totals[0] if len(totals) == 1 else _Cell()
        if len(totals) > 1:
            for cell in totals:
                total.add(cell)
        stages = self.plan.stages
        return {
            "window": {
                "start": None,
                "end": None,
                "seconds": round(seconds, 3),
                "stages": [stages[i].name for i in sorted(weights)],
            },
            "qps": {
                "target": round(planned / seconds, 3) if seconds else 0.0,
                "held": round(total.successes / seconds, 3) if seconds else 0.0,
                "arrivals_held": round(arrivals / seconds, 3) if seconds else 0.0,
            },
            "latency_ms": total.corrected.summary_ms(),
            "latency_ms_service": total.service.summary_ms(),
            "error_rate": _rate(total.errors, total.count),
            "requests": {
                "count": total.count,
                "successes": total.successes,
                "errors": total.errors,
                "expected_outcomes": sum(total.outcomes.values()),
            },
            "outcomes": dict(sorted(total.outcomes.items())),
            "endpoints": {
                name: {
                    "requests": cell.count,
                    "successes": cell.successes,
                    "errors": cell.errors,
                    "error_rate": _rate(cell.errors, cell.count),
                    "qps_held": round(cell.successes / seconds, 3) if seconds else 0.0,
                    "latency_ms": cell.corrected.summary_ms(),
                    "latency_ms_service": cell.service.summary_ms(),
                    "outcomes": dict(sorted(cell.outcomes.items())),
                }
                for name, cell in sorted(per_name.items())
            },
            "errors": [
                {"name": name, "error": error, "occurrences": n}
                for (name, error), n in sorted(self._errors.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "timeseries": timeseries,
        }

    def _timeseries(self, n: int) -> Timeseries:
        """Per second of plan time 0..n-1: successes (qps), errors, journeys started (arrivals),
        planned arrivals (target_qps), and corrected p50/p95/p99 of the 5-s window the second
        falls in (repeated for each of its seconds; None when the window has no request)."""
        duration = self.plan.duration_s
        counts = [self._seconds.get(s, (0, 0)) for s in range(n)]
        if len(self._targets) < n:  # planned arrivals per second depend on the plan only: computed once
            self._targets.extend(
                round(self.plan.arrivals_between(s, min(s + 1.0, duration)), 3) if s < duration else 0.0
                for s in range(len(self._targets), n)
            )
        per_second = [self._window_percentiles(w) for w in range((n + WINDOW_S - 1) // WINDOW_S)]
        per_second = [per_second[s // WINDOW_S] for s in range(n)]
        return {
            "interval_s": 1,
            "t": list(range(n)),
            "qps": [c[0] for c in counts],
            "errors": [c[1] for c in counts],
            "arrivals": [self._arrival_seconds.get(s, 0) for s in range(n)],
            "target_qps": self._targets[:n],
            "p50": [w[50.0] for w in per_second],
            "p95": [w[95.0] for w in per_second],
            "p99": [w[99.0] for w in per_second],
            # the generator's per-second health comes from GeneratorHealth (RunSession.evidence)
            **{key: [] for key in EMPTY_GENERATOR_SERIES},  # type: ignore[typeddict-item]
        }

    def window(self, start_s: float, end_s: float) -> WindowFigures:
        """Every request that ended in plan time [start_s, end_s): counts by the second, latency
        from the 5-s windows the span touches (a drill's figures)."""
        lo, hi = math.floor(start_s), math.ceil(end_s)
        ok = errors = 0
        for second in range(lo, hi):
            counts = self._seconds.get(second)
            if counts is not None:
                ok += counts[0]
                errors += counts[1]
        corrected, service = LatencyHistogram(), LatencyHistogram()
        for w in range(lo // WINDOW_S, (hi - 1) // WINDOW_S + 1):
            if w in self._windows:
                corrected.add(self._windows[w])
            if w in self._windows_service:
                service.add(self._windows_service[w])
        p99 = corrected.percentiles_ms([99.0])[99.0] if corrected.count else None
        summary = service.summary_ms() if service.count else None
        return {
            "requests": ok + errors,
            "errors": errors,
            "error_rate": _rate(errors, ok + errors),
            "p99_ms": p99,
            "p99_ms_service": summary["p99"] if summary else None,
            "max_ms_service": summary["max"] if summary else None,
        }

    def _window_percentiles(self, w: int) -> dict[float, float | None]:
        hist = self._windows.get(w)
        if hist is None:
            return dict.fromkeys(_PERCENTILES)
        cached = self._window_cache.get(w)
        if cached is not None and cached[0] == hist.count:
            return cached[1]
        values = hist.percentiles_ms(_PERCENTILES)
        self._window_cache[w] = (hist.count, values)
        return values


def _drill_spans(plan: Plan) -> list[tuple[float, float]]:
    """The plan-time spans judged apart: each drill's window plus its recovery allowance, merged."""
    spans = sorted((d.at_s, min(plan.duration_s, d.at_s + d.for_s + plan.recovery_s(d))) for d in plan.drills)
    merged: list[tuple[float, float]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _without(lo: float, hi: float, spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """[lo, hi) less the (sorted, disjoint) spans."""
    out, start = [], lo
    for a, b in spans:
        if b <= start or a >= hi:
            continue
        if a > start:
            out.append((start, a))
        start = max(start, b)
    if start < hi:
        out.append((start, hi))
    return out


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0
