"""Load-generator health: every Locust process's loop lag and CPU per second, why arrivals were
late, and workers lost during the run.

The verdict must be able to tell "the generator was the limit" from "the target was", so each
process measures itself every second (`engine/probe.py`: loop lag and CPU; its pacer: late
arrivals by what it saw) and ships a `HealthDelta` with each report: workers to the master in
their `WorkerReport`, a local or master process to itself. `GeneratorHealth` adds the deltas per
process and turns them into the `Generator` figures and per-second series (`measure/attribution.py`
decides, per second, who caused each late arrival).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict

import psutil

from loadkit.measure.attribution import CAUSES, CPU_LIMIT, add_counts, attribute, is_unhealthy, no_late
from loadkit.measure.figures import Generator, GeneratorSeries, LateByCause, LateCounts, ProcessHealth
from loadkit.measure.histogram import HistogramDecodeError, LatencyHistogram

CPU_HIGH = CPU_LIMIT  # the CPU figure reports show as "high"
LOCAL, MASTER = "local", "master"


SCHEDSTAT = Path("/proc/self/schedstat")


class CpuSampler:
    """This process's CPU since the previous sample: the percent of one core it ran, and the
    percent of the time it was ready to run but waited for a core (Linux; None elsewhere).

    A generator on a shared machine can be saturated at 70% CPU: it wants the core all the time
    but gets it only part of it. Its loop lag then stays low with a few users (each loop turn has
    little to do), yet it sends far fewer arrivals than planned: ran + waited shows it."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._process.cpu_percent()  # the first call only primes the counter
        self._waited = _waited_ns()
        self._at = time.monotonic()

    def sample(self) -> tuple[float, float | None]:
        cpu = float(self._process.cpu_percent())
        waited, now = _waited_ns(), time.monotonic()
        wait = None
        if waited is not None and self._waited is not None and now > self._at:
            wait = round(max(0.0, (waited - self._waited) / 1e7 / (now - self._at)), 1)
        self._waited, self._at = waited, now
        return cpu, wait


def _waited_ns() -> int | None:
    """Nanoseconds this process's main thread (the event loop) has waited on a run queue."""
    try:
        return int(SCHEDSTAT.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None


class ProbeSecond(TypedDict):
    """What one process's probe saw in one second of plan time (`LoopProbe.take`). A second may
    come in pieces (a report ships the second under way so far); pieces add up."""

    s: int  # plan second
    lag: dict[int, int]  # the probe's wake-up lateness: sparse histogram (LatencyHistogram.sparse)
    cpu: float | None  # percent of one core over the second; None in a piece before it ends
    cpu_wait: float | None  # percent of the second it waited for a core (None: not measured)
    free_min: int | None  # the fewest users waiting for their arrival (None: this process paces none)


class HealthDelta(TypedDict):
    """A process's health since its last delta (a worker's `WorkerReport.health`)."""

    seconds: list[ProbeSecond]
    late: dict[int, LateCounts]  # plan second due -> late or dropped arrivals since the last delta
    pending: dict[int, LateCounts]  # plan second due -> arrivals due, not taken yet (a snapshot)


def check_health_delta(payload: Any) -> HealthDelta:
    """A delta as sent, checked field by field; ValueError naming what is wrong."""
    try:
        seconds: list[ProbeSecond] = [
            {
                "s": int(piece["s"]),
                "lag": LatencyHistogram.from_sparse(piece["lag"]).sparse(),
                "cpu": None if piece["cpu"] is None else float(piece["cpu"]),
                "cpu_wait": None if piece["cpu_wait"] is None else float(piece["cpu_wait"]),
                "free_min": None if piece["free_min"] is None else int(piece["free_min"]),
            }
            for piece in payload["seconds"]
        ]
        late = {int(s): _counts(c) for s, c in payload["late"].items()}
        pending = {int(s): _counts(c) for s, c in payload["pending"].items()}
    except (AttributeError, KeyError, TypeError, ValueError, HistogramDecodeError) as exc:
        raise ValueError(f"malformed health delta: {exc!r}") from exc
    return {"seconds": seconds, "late": late, "pending": pending}


def _counts(counts: Mapping[str, Any]) -> LateCounts:
    out = {cause: int(counts[cause]) for cause in CAUSES}
    if any(n < 0 for n in out.values()):
        raise ValueError(f"negative late counts {counts!r}")
    return out  # type: ignore[return-value]


class _Second:
    """One process, one second: loop lag samples, CPU, fewest free users; p99/max cached."""

    __slots__ = ("_cached", "cpu", "cpu_wait", "free_min", "lag")

    def __init__(self) -> None:
        self.lag = LatencyHistogram()
        self.cpu: float | None = None
        self.cpu_wait: float | None = None
        self.free_min: int | None = None
        self._cached: tuple[int, float | None, float | None] = (-1, None, None)

    def lag_ms(self) -> tuple[float | None, float | None]:
        """(p99, max) of the loop lag, in ms."""
        count, p99, top = self._cached
        if count != self.lag.count:
            p99, top = self.lag.percentile_ms(99.0), self.lag.max_ms
            self._cached = (self.lag.count, p99, top)
        return p99, top

    def unhealthy(self) -> bool:
        return is_unhealthy(*self.lag_ms(), self.cpu, self.cpu_wait)


class _Process:
    __slots__ = ("gate_lag", "late", "name", "paces", "pending", "run_lag", "seconds")

    def __init__(self, name: str, paces: bool) -> None:
        self.name = name
        self.paces = paces
        self.seconds: dict[int, _Second] = {}
        self.late: dict[int, LateCounts] = {}
        self.pending: dict[int, LateCounts] = {}
        self.gate_lag = LatencyHistogram()  # loop lag over the gate window's seconds
        self.run_lag = LatencyHistogram()  # ... and over the whole run (shown before the gate)

    def healthy(self, second: int) -> bool | None:
        found = self.seconds.get(second)
        return None if found is None else not found.unhealthy()


class GeneratorHealth:
    """Per process: health per second, late arrivals by cause; and the workers lost while running.

    ``gate`` is the gate window in plan seconds (`Plan.gate_window`): the loop lag over it is kept
    as the pieces come, so reading the figures costs the same at any point of a long run."""

    def __init__(self, gate: tuple[float, float] = (0.0, math.inf)) -> None:
        self.gate = gate
        self.processes: dict[str, _Process] = {}
        self._seen_workers: set[str] = set()
        self.lost_workers: set[str] = set()
        self.max_workers = 0
        self._workers_named = 0

    def add(self, node: str, delta: HealthDelta, *, paces: bool = True) -> None:
        """Add a process's delta: ``node`` is "local", "master" or a worker's client id."""
        process = self.processes.get(node)
        if process is None:
            name = node
            if node not in (LOCAL, MASTER):
                self._workers_named += 1
                name = f"worker-{self._workers_named}"
            process = self.processes[node] = _Process(name, paces)
        start, end = self.gate
        for piece in delta["seconds"]:
            second = process.seconds.get(piece["s"])
            if second is None:
                second = process.seconds[piece["s"]] = _Second()
            lag = LatencyHistogram.from_sparse(piece["lag"])
            second.lag.add(lag)
            process.run_lag.add(lag)
            if start <= piece["s"] < end:
                process.gate_lag.add(lag)
            if piece["cpu"] is not None:
                second.cpu = piece["cpu"]
            if piece["cpu_wait"] is not None:
                second.cpu_wait = piece["cpu_wait"]
            if piece["free_min"] is not None:
                low = second.free_min
                second.free_min = piece["free_min"] if low is None else min(low, piece["free_min"])
        add_counts(process.late, delta["late"].items())
        process.pending = dict(delta["pending"])

    def observe_workers(self, alive: Iterable[str], missing: Iterable[str]) -> None:
        """Call while the test runs: a worker seen before and now missing or gone is lost."""
        alive_set = set(alive)
        self._seen_workers |= alive_set
        self.max_workers = max(self.max_workers, len(alive_set))
        self.lost_workers |= set(missing) | (self._seen_workers - alive_set)

    # --- figures ---------------------------------------------------------------------------

    def summary(self, workers: int, *, window: tuple[float, float] | None = None) -> Generator:
        """The figures over ``window`` (plan seconds; default the gate window): CPU and loop lag of
        every process, the longest time one pacing process was unhealthy, and the whole run's
        late arrivals by cause. Loop lag percentiles are over the gate window, or over the run so
        far when ``window`` is given (before the gate begins)."""
        start, end = window if window is not None else self.gate
        processes = [
            self._process_figures(p, start, end, gate=window is None)
            for p in sorted(self.processes.values(), key=lambda p: (p.name != MASTER, len(p.name), p.name))
        ]
        cpu = [
            c
            for p in self.processes.values()
            for s, sec in p.seconds.items()
            if start <= s < end
            if (c := sec.cpu) is not None
        ]
        high = [
            sum(1 for s, sec in p.seconds.items() if start <= s < end and (sec.cpu or 0.0) > CPU_HIGH)
            for p in self.processes.values()
        ]
        pacing = [p for p in processes if p["paces"]]
        late, unsent = self.late_by_cause()
        return {
            "cpu_max": round(max(cpu), 1) if cpu else 0.0,
            "cpu_avg": round(sum(cpu) / len(cpu), 1) if cpu else 0.0,
            "cpu_high_s": float(max(high, default=0)),
            "workers": max(workers, self.max_workers),
            "workers_lost": len(self.lost_workers),
            "lag_p99_ms": _worst(p["lag_p99_ms"] for p in pacing),
            "lag_max_ms": _worst(p["lag_max_ms"] for p in pacing),
            "unhealthy_s": max((p["unhealthy_s"] for p in pacing), default=0.0),
            "late": late,
            "unsent": unsent,
            "processes": processes,
        }

    def _process_figures(self, process: _Process, start: float, end: float, *, gate: bool) -> ProcessHealth:
        seconds = [sec for s, sec in process.seconds.items() if start <= s < end]
        cpu = [sec.cpu for sec in seconds if sec.cpu is not None]
        wait = [sec.cpu_wait for sec in seconds if sec.cpu_wait is not None]
        free = [sec.free_min for sec in seconds if sec.free_min is not None]
        lag = process.gate_lag if gate else process.run_lag
        return {
            "name": process.name,
            "paces": process.paces,
            "lag_p99_ms": lag.percentile_ms(99.0),
            "lag_max_ms": lag.max_ms,
            "cpu_max": round(max(cpu), 1) if cpu else None,
            "cpu_avg": round(sum(cpu) / len(cpu), 1) if cpu else None,
            "cpu_wait_max": round(max(wait), 1) if wait else None,
            "unhealthy_s": float(sum(1 for sec in seconds if sec.unhealthy())),
            "free_min": min(free) if free else None,
        }

    def late_by_cause(self) -> tuple[LateByCause, LateByCause]:
        """(late and dropped, unsent) arrivals of the whole run by who caused them."""
        late, unsent = no_late(), no_late()
        for process in self.processes.values():
            attribute(process.late, process.healthy, late)
            attribute(process.pending, process.healthy, unsent)
        return late, unsent

    def timeseries(self, n: int) -> GeneratorSeries:
        """Per plan second 0..n-1: the worst loop-lag p99 of the pacing processes, how many were
        unhealthy, and the arrivals due that second that were late (or dropped, or never sent),
        by cause."""
        series: GeneratorSeries = {
            "lag_p99_ms": [None] * n,
            "unhealthy": [0] * n,
            "late_generator": [0] * n,
            "late_users": [0] * n,
            "late_target": [0] * n,
        }
        for process in self.processes.values():
            if not process.paces:
                continue
            for s, sec in process.seconds.items():
                if 0 <= s < n:
                    p99 = sec.lag_ms()[0]
                    if p99 is not None:
                        worst = series["lag_p99_ms"][s]
                        series["lag_p99_ms"][s] = p99 if worst is None else max(worst, p99)
                    series["unhealthy"][s] += sec.unhealthy()
            for counts in (process.late, process.pending):
                for s, c in counts.items():
                    if 0 <= s < n:
                        one = attribute({s: c}, process.healthy)
                        series["late_generator"][s] += one["generator"]
                        series["late_users"][s] += one["users"]
                        series["late_target"][s] += one["target"]
        return series


def _worst(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None
