"""Who arrives: new, returning and dormant users, with ids no two workers ever share.

Alipay user ids are "2088" + 12 digits. We lay the 12 digits out as `WWW K SSSSSSSS`: a 3-digit
worker index (Locust's `runner.worker_index`), a kind digit (1 = active, 9 = dormant: a range no
user of this run was ever drawn from before), and an 8-digit serial. New users take the next serial
of the worker, so ids are unique per worker and disjoint between workers without coordination.
Returning users are drawn again from this population's new users. Every draw is O(1) with no yield
inside it, so greenlets can share one population.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

MAX_WORKERS = 1000
SERIALS = 10**8
ACTIVE, DORMANT = 1, 9
REMEMBER = 100_000  # returning users are drawn from at most this many past new users (reservoir)


@dataclass(frozen=True, slots=True)
class Visitor:
    user_id: str
    kind: str  # "new" | "returning" | "dormant"


def user_id(worker: int, kind: int, serial: int) -> str:
    return f"2088{worker:03d}{kind}{serial:08d}"


class IdSource:
    """The serial counters of one worker process, shared by every population in it."""

    def __init__(self, worker_index: int) -> None:
        if not 0 <= worker_index < MAX_WORKERS:
            raise ValueError(
                f"worker index {worker_index} outside 0..{MAX_WORKERS - 1}: user ids would collide"
            )
        self.worker = worker_index
        self._next = itertools.count()

    def new_id(self) -> str:
        serial = next(self._next)
        if serial >= SERIALS:
            raise RuntimeError(f"worker {self.worker} ran out of user ids ({SERIALS} new users)")
        return user_id(self.worker, ACTIVE, serial)

    def dormant_id(self, rng: random.Random) -> str:
        return user_id(self.worker, DORMANT, rng.randrange(SERIALS))


_sources: dict[int, IdSource] = {}


def id_source(worker_index: int) -> IdSource:
    """The process-wide source for this worker index (one counter per process, whatever the class)."""
    source = _sources.get(worker_index)
    if source is None:
        source = _sources[worker_index] = IdSource(worker_index)
    return source


def worker_index_of(environment: Any) -> int:
    """Locust's worker index: set by the master on workers (before any user spawns), 0 locally."""
    index = getattr(getattr(environment, "runner", None), "worker_index", 0)
    return max(0, int(index))


class Population:
    """Hands out visitors in the given shares; `returning` falls back to new until someone was seen."""

    def __init__(
        self,
        new: float = 0.6,
        returning: float = 0.3,
        dormant: float = 0.1,
        *,
        seed: int | None = None,
        source: IdSource | None = None,
    ) -> None:
        shares = (new, returning, dormant)
        if any(s < 0 for s in shares) or sum(shares) <= 0:
            raise ValueError(f"population shares must be >= 0 with a positive sum, got {shares}")
        total = sum(shares)
        self.new_share, self.returning_share = new / total, returning / total
        self.rng = random.Random(seed)
        self.source = source or id_source(0)
        self._seen: list[str] = []
        self._seen_count = 0

    def bind(self, environment: Any) -> Population:
        """Use the id source of this process's worker (call once the runner exists)."""
        self.source = id_source(worker_index_of(environment))
        return self

    def next(self) -> Visitor:
        roll = self.rng.random()
        if roll < self.new_share:
            return self._new()
        if roll < self.new_share + self.returning_share:
            if not self._seen:
                return self._new()
            return Visitor(self._seen[self.rng.randrange(len(self._seen))], "returning")
        return Visitor(self.source.dormant_id(self.rng), "dormant")

    def _new(self) -> Visitor:
        uid = self.source.new_id()
        self._seen_count += 1
        if len(self._seen) < REMEMBER:
            self._seen.append(uid)
        else:  # reservoir sampling keeps a uniform sample of everyone seen in bounded memory
            slot = self.rng.randrange(self._seen_count)
            if slot < REMEMBER:
                self._seen[slot] = uid
        return Visitor(uid, "new")
