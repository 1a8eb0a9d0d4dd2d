"""Bounded replay store for idempotency keys (out_biz_no, partner_biz_no, out_request_no).

Entries expire after a TTL and the oldest is evicted beyond a cap, so a long soak stays bounded;
every operation is O(1) amortized (an OrderedDict in insertion order, purged from the front).

Only successful effects are remembered: a business failure (sold out, limit reached) is not, so a
retry after more stock arrives may succeed, as it would on the platform.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class ExpiringMap(Generic[V]):
    """A dict whose entries expire at a given time and whose size is capped (oldest evicted).

    Purging assumes entries are put with roughly increasing expiry (one TTL per map), which is what
    lets it stop at the first live entry.
    """

    __slots__ = ("_data", "_soonest", "evicted", "max_entries")

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        # At most the expiry of the oldest entry: a put looks at the front only once it is due.
        self._soonest = math.inf
        self.evicted = 0

    def get(self, key: Hashable, now: float) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._data[key]
            return None
        return entry[1]

    def pop(self, key: Hashable, now: float) -> V | None:
        entry = self._data.pop(key, None)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def put(self, key: Hashable, value: V, expires_at: float, now: float) -> None:
        data = self._data
        if not data:
            self._soonest = expires_at
        elif key in data:
            data.move_to_end(key)
        data[key] = (expires_at, value)
        if len(data) > self.max_entries or now >= self._soonest:
            self._purge(now)

    def _purge(self, now: float) -> None:
        """Drop expired entries and the oldest beyond the cap, from the front."""
        data = self._data
        while data:
            oldest = next(iter(data.values()))[0]
            if len(data) <= self.max_entries and oldest > now:
                self._soonest = oldest
                return
            data.popitem(last=False)
            self.evicted += 1
        self._soonest = math.inf

    def items(self) -> Iterator[tuple[Hashable, V]]:
        for key, (_, value) in self._data.items():
            yield key, value

    def clear(self) -> None:
        self._data.clear()
        self._soonest = math.inf
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._data)


class IdempotencyConflict(Exception):
    """The key was used before with different business parameters."""


@dataclass(slots=True)
class Record:
    fingerprint: Hashable
    result: dict[str, Any]
    effects: int = 1


class IdempotencyStore:
    """Results of successful effects keyed by (scope, key), with the parameters' fingerprint.

    `effects` counts how many ledger changes were recorded under a key: always 1 unless a bug (or
    `Ledger.debug_force_issue`) applied an effect twice, which the audit reports.
    """

    __slots__ = ("_map", "ttl_s")

    def __init__(self, ttl_s: float = 86400.0, max_entries: int = 1_000_000) -> None:
        if ttl_s <= 0:
            raise ValueError("idempotency ttl_s must be positive")
        self.ttl_s = ttl_s
        self._map: ExpiringMap[Record] = ExpiringMap(max_entries)

    def lookup(self, scope: Hashable, key: str, fingerprint: Hashable, now: float) -> dict[str, Any] | None:
        """The first result for this key, or None; raises IdempotencyConflict on other parameters."""
        record = self._map.get((scope, key), now)
        if record is None:
            return None
        if record.fingerprint != fingerprint:
            raise IdempotencyConflict(key)
        return record.result

    def remember(
        self, scope: Hashable, key: str, fingerprint: Hashable, result: dict[str, Any], now: float
    ) -> None:
        """Record an effect; a second effect on a live key is counted, never overwrites the first."""
        record = self._map.get((scope, key), now)
        if record is not None:
            record.effects += 1
            return
        self._map.put((scope, key), Record(fingerprint, result), now + self.ttl_s, now)

    def records(self) -> Iterator[tuple[Hashable, Record]]:
        return self._map.items()

    @property
    def evicted(self) -> int:
        return self._map.evicted

    @property
    def max_entries(self) -> int:
        return self._map.max_entries

    def clear(self) -> None:
        self._map.clear()

    def __len__(self) -> int:
        return len(self._map)
