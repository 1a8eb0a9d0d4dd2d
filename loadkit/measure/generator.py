"""Load-generator health: CPU of every Locust process and workers lost during the run.

The verdict must be able to say "the generator, not the target, may have been the limit", so each
process samples its own CPU once a second (Locust's own monitor samples only every 10 s) and
workers ship their samples to the master with their stats reports.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import psutil

from loadkit.measure.figures import Generator

CPU_HIGH = 85.0


class CpuSampler:
    """Per-process CPU samples (epoch second, percent of one core)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._process.cpu_percent()  # the first call only primes the counter
        self._pending: list[tuple[float, float]] = []

    def sample(self) -> None:
        self._pending.append((time.time(), self._process.cpu_percent()))

    def take(self) -> list[tuple[float, float]]:
        out, self._pending = self._pending, []
        return out


class GeneratorHealth:
    """Master-side view: CPU samples per node and the workers that went missing while running."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self._seen_workers: set[str] = set()
        self.lost_workers: set[str] = set()
        self.max_workers = 0

    def add_samples(self, node: str, samples: Iterable[Iterable[float]]) -> None:
        self.samples.setdefault(node, []).extend((float(t), float(c)) for t, c in samples)

    def observe_workers(self, alive: Iterable[str], missing: Iterable[str]) -> None:
        """Call while the test runs: a worker seen before and now missing or gone is lost."""
        alive_set = set(alive)
        self._seen_workers |= alive_set
        self.max_workers = max(self.max_workers, len(alive_set))
        self.lost_workers |= set(missing) | (self._seen_workers - alive_set)

    def summary(self, start: float, end: float, workers: int) -> Generator:
        """CPU figures inside [start, end] (the gate window); cpu_high_s is the longest time any one
        process spent above CPU_HIGH, counted in one-second samples."""
        in_window = {
            node: [c for t, c in samples if start <= t <= end] for node, samples in self.samples.items()
        }
        values = [c for cs in in_window.values() for c in cs]
        high = max((sum(1 for c in cs if c > CPU_HIGH) for cs in in_window.values()), default=0)
        return {
            "cpu_max": round(max(values), 1) if values else 0.0,
            "cpu_avg": round(sum(values) / len(values), 1) if values else 0.0,
            "cpu_high_s": float(high),
            "workers": max(workers, self.max_workers),
            "workers_lost": len(self.lost_workers),
        }
