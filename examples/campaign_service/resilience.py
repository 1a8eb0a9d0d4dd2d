"""What keeps a platform in trouble from taking the service down with it: a circuit breaker, a
bulkhead (a cap on platform calls in flight) and jittered exponential backoff.

All three are plain, synchronous objects driven by `platform.PlatformClient` on the event loop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import IntEnum

__all__ = ["Breaker", "BreakerState", "Bulkhead", "backoff_s"]


class BreakerState(IntEnum):
    """The values of the `campaign_breaker_state` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Breaker:
    """Opens after `failures` consecutive failed platform calls (timeouts, throttling, 20000s,
    broken connections) and then refuses every call for `cooldown_s`, so a platform in trouble
    gets no traffic it cannot take and users get "try later" at once instead of after the full
    deadline. After the cool-down one probe call is let through (half-open): its success closes
    the breaker, its failure opens it for another cool-down.

    Every call that `allow()` let through must be followed by exactly one `record(...)`.
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_on_change",
        "_opened_at",
        "_probing",
        "cooldown_s",
        "state",
        "threshold",
    )

    def __init__(
        self,
        failures: int,
        cooldown_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.state = BreakerState.CLOSED
        self._clock = clock
        self._on_change = on_change
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    def allow(self) -> float | None:
        """None when a call may go now, else the seconds until the breaker may let one through."""
        if self.state is BreakerState.CLOSED:
            return None
        if self.state is BreakerState.OPEN:
            left = self._opened_at + self.cooldown_s - self._clock()
            if left > 0:
                return left
            self._set(BreakerState.HALF_OPEN)
        if self._probing:
            return self.cooldown_s  # one probe at a time; its outcome decides
        self._probing = True
        return None

    def record(self, *, failed: bool | None) -> None:
        """The outcome of a call `allow()` let through: True failed, False succeeded, None neither
        (the call was cancelled before an answer)."""
        probing, self._probing = self._probing, False
        if failed is None:
            return
        if not failed:
            self._failures = 0
            if self.state is not BreakerState.CLOSED:
                self._set(BreakerState.CLOSED)
            return
        self._failures += 1
        if (probing and self.state is BreakerState.HALF_OPEN) or (
            self.state is BreakerState.CLOSED and self._failures >= self.threshold
        ):
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(state)


class Bulkhead:
    """A cap on platform calls in flight. When it is full the caller answers "try later" at once
    rather than queueing: a queue in front of a slow platform only turns its latency into the
    service's latency for every user, and holds memory and sockets while it does."""

    __slots__ = ("in_use", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def try_acquire(self) -> bool:
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use -= 1


def backoff_s(retry: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """The pause before retry number `retry` (1, 2, ...): "equal jitter", between half and all of
    min(cap, base * 2^(retry-1)). The random half spreads the retries of many users out instead of
    sending them together; the fixed half gives a throttled or struggling platform a real pause."""
    ceiling = min(cap_s, base_s * (2 ** (retry - 1)))
    return ceiling / 2 + (rng or random).uniform(0.0, ceiling / 2)
