"""Bounded replay store for idempotency keys (out_biz_no, partner_biz_no, out_request_no).

Entries expire after a TTL and the oldest is evicted beyond a cap, so a long soak stays bounded;
every operation is O(1) amortized (an OrderedDict in insertion order, purged from the front).

The bound is the memory: each entry is one flat tuple, ~0.7 KB allocated with its key and result
(bench/idempotency_memory.py), ~0.9 KB of RSS with the table around it (bench/mock_soak.py), so
the default cap of 100,000 entries stays under 90 MB. The
default window, 5 minutes, is what a retry needs (a client's or a drill's, after a timeout); a
key seen again after it, or after eviction, takes effect again, as a new request would.

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

DEFAULT_TTL_S = 300.0
DEFAULT_MAX_ENTRIES = 100_000


class ExpiringMap(Generic[V]):
    """A dict whose entries expire at a given time and whose size is capped (oldest evicted).

    Each entry is a tuple whose first item is its expiry: `(expires_at, value)` through `put` and
    `get`, or any flat tuple through `put_entry` and `entry` (one object per entry, not two).
    Purging assumes entries are put with roughly increasing expiry (one TTL per map), which is what
    lets it stop at the first live entry.
    """

    __slots__ = ("_data", "_soonest", "evicted", "max_entries")

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, tuple[Any, ...]] = OrderedDict()
        # At most the expiry of the oldest entry: a put looks at the front only once it is due.
        self._soonest = math.inf
        self.evicted = 0

    def entry(self, key: Hashable, now: float) -> tuple[Any, ...] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._data[key]
            return None
        return entry

    def get(self, key: Hashable, now: float) -> V | None:
        entry = self.entry(key, now)
        return None if entry is None else entry[1]

    def pop(self, key: Hashable, now: float) -> V | None:
        entry = self._data.pop(key, None)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def put(self, key: Hashable, value: V, expires_at: float, now: float) -> None:
        self.put_entry(key, (expires_at, value), now)

    def put_entry(self, key: Hashable, entry: tuple[Any, ...], now: float) -> None:
        data = self._data
        if not data:
            self._soonest = entry[0]
        elif key in data:
            data.move_to_end(key)
        data[key] = entry
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

    def entries(self) -> Iterator[tuple[Hashable, tuple[Any, ...]]]:
        return iter(self._data.items())

    def items(self) -> Iterator[tuple[Hashable, V]]:
        for key, entry in self._data.items():
            yield key, entry[1]

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
    """What the audit reads of one key: the parameters' fingerprint, the result, its effects."""

    fingerprint: Hashable
    result: dict[str, Any]
    effects: int = 1


class IdempotencyStore:
    """Results of successful effects keyed by (scope, key), with the parameters' fingerprint.

    An entry is one tuple `(expires_at, fingerprint, result)`, its scope shared with every other
    entry of the scope; a replay returns the first result's dict itself. `effects` counts how many
    ledger changes were recorded under a key: always 1 unless a bug (or `Ledger.debug_force_issue`)
    applied an effect twice, which the audit reports; those rare extra counts are kept apart.
    """

    __slots__ = ("_extra_effects", "_map", "_scopes", "ttl_s")

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if ttl_s <= 0:
            raise ValueError("idempotency ttl_s must be positive")
        self.ttl_s = ttl_s
        self._map: ExpiringMap[Any] = ExpiringMap(max_entries)
        self._scopes: dict[Hashable, Hashable] = {}  # one object per scope, not one per entry
        self._extra_effects: dict[tuple[Hashable, str], int] = {}

    def lookup(self, scope: Hashable, key: str, fingerprint: Hashable, now: float) -> dict[str, Any] | None:
        """The first result for this key, or None; raises IdempotencyConflict on other parameters."""
        entry = self._map.entry((scope, key), now)
        if entry is None:
            return None
        if entry[1] != fingerprint:
            raise IdempotencyConflict(key)
        return entry[2]

    def remember(
        self, scope: Hashable, key: str, fingerprint: Hashable, result: dict[str, Any], now: float
    ) -> None:
        """Record an effect; a second effect on a live key is counted, never overwrites the first."""
        scope = self._scopes.setdefault(scope, scope)
        full_key = (scope, key)
        if self._map.entry(full_key, now) is not None:
            self._extra_effects[full_key] = self._extra_effects.get(full_key, 0) + 1
            return
        if self._extra_effects:
            self._extra_effects.pop(full_key, None)  # a key that expired and came back: a new record
        self._map.put_entry(full_key, (now + self.ttl_s, fingerprint, result), now)

    def records(self) -> Iterator[tuple[Hashable, Record]]:
        extra = self._extra_effects
        for full_key, (_, fingerprint, result) in self._map.entries():
            yield full_key, Record(fingerprint, result, 1 + extra.get(full_key, 0))  # type: ignore[arg-type]

    @property
    def evicted(self) -> int:
        return self._map.evicted

    @property
    def max_entries(self) -> int:
        return self._map.max_entries

    def clear(self) -> None:
        self._map.clear()
        self._scopes.clear()
        self._extra_effects.clear()

    def __len__(self) -> int:
        return len(self._map)
