"""The generator watching itself: a 10-ms timer on the event loop that records how late it fires.

A gevent process is one thread: every user, the pacer and loadkit's own bookkeeping share one
event loop. When the loop has more ready work than it can run, every sleeping greenlet wakes late,
and so does every arrival whose user sleeps until its slot. CPU sampled once a second misses it
(the loop can be saturated well below 100% of a core while other processes hold the core), so
the probe measures the lateness itself: ~100 wake-ups a second into an HDR histogram per second
of plan time, with the process's CPU over that second and the fewest free users the pacer had
(users waiting for their next arrival). A stall across seconds counts in each second it covered.

`take()` hands over what was measured since the last call as `ProbeSecond` pieces (the second
under way too, so a report is never a second behind); `GeneratorHealth` adds them up.

The probe is a libev timer watcher whose callback runs in the hub, not a greenlet that sleeps: the
same lateness (the callback waits for the same loop turn a sleeping greenlet would), at a quarter
of the CPU (no greenlet switch, no new timer object per wake-up; BENCHMARKS.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import gevent

from loadkit.measure.generator import CpuSampler, ProbeSecond
from loadkit.measure.histogram import LatencyHistogram

PROBE_INTERVAL_S = 0.01
_CPU_MIN_S = 0.5  # seconds closed together after a stall share one CPU sample
_RECENT_S = 0.1  # lag_now() remembers the worst wake-up this long


class LoopProbe:
    """Loop lag, CPU and free users per second of plan time, for this process."""

    def __init__(
        self, *, free_users: Callable[[], int | None] | None = None, interval_s: float = PROBE_INTERVAL_S
    ) -> None:
        self.interval_s = float(interval_s)
        self._free_users = free_users or (lambda: None)
        self._cpu = CpuSampler()
        self._cpu_value: tuple[float, float | None] = (0.0, None)
        self._cpu_at = time.time()
        self._origin = 0.0
        self._open: int | None = None  # the plan second under way
        self._lag = LatencyHistogram()
        self._free_min: int | None = None
        self._done: list[ProbeSecond] = []
        self._loop = gevent.get_hub().loop
        self._timer: object | None = None  # the libev timer watcher while running
        self._due = 0.0
        self._recent = 0.0  # the worst lateness of the last ~0.1 s (lag_now)
        self._recent_at = 0.0

    def start(self, origin: float) -> None:
        """Measure with plan time 0 at epoch ``origin`` (seconds before it are negative),
        forgetting what was measured before; the timer starts on the first call."""
        self._origin = float(origin)
        self._open = None
        self._lag = LatencyHistogram()
        self._free_min = None
        self._done = []
        if self._timer is None:
            self._cpu.sample()
            self._cpu_at = time.time()
            # ref=False: the probe never keeps a process alive that has nothing else to do
            timer = self._loop.timer(self.interval_s, self.interval_s, ref=False)
            self._timer = timer
            self._due = time.time() + self.interval_s
            timer.start(self._tick)

    def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()  # type: ignore[attr-defined]

    def lag_now(self) -> float:
        """How late the loop is running now (s): how overdue the probe's next wake-up already is,
        or the worst of its wake-ups in the last ~0.1 s. The pacer asks when no user was free
        for an arrival: a loop running late, not the target, then kept the users busy."""
        overdue = time.time() - self._due if self._timer is not None else 0.0
        return max(overdue, self._recent)

    def take(self) -> list[ProbeSecond]:
        """The seconds measured since the last call; the second under way as a piece without CPU
        (its CPU comes with the piece that closes it)."""
        out, self._done = self._done, []
        if self._open is not None and (self._lag.count or self._free_min is not None):
            lag, free = self._lag.sparse(), self._free_min
            out.append({"s": self._open, "lag": lag, "cpu": None, "cpu_wait": None, "free_min": free})
            self._lag = LatencyHistogram()
            self._free_min = None
        return out

    def _tick(self) -> None:
        self.record(self._due, time.time())
        timer = self._timer
        if timer is not None:
            self._loop.update_now()  # re-armed from now, not from the loop turn's cached time
            self._due = time.time() + self.interval_s
            timer.again(self._tick)  # type: ignore[attr-defined]

    def record(self, due: float, woke: float) -> None:
        """One wake-up due at epoch ``due`` that came at ``woke``."""
        origin = self._origin
        second = math.floor(due - origin)
        if second != self._open:
            self._close(second)
        late = woke - due
        self._lag.record_ms(late * 1000.0)
        if woke - self._recent_at > _RECENT_S:
            self._recent, self._recent_at = late, woke
        elif late > self._recent:
            self._recent = late
        free = self._free_users()
        if free is not None and (self._free_min is None or free < self._free_min):
            self._free_min = free
        # a stall into later seconds: a wake-up due at the start of each was as late as this one
        for later in range(second + 1, math.floor(woke - origin) + 1):
            self._close(later)
            self._lag.record_ms((woke - origin - later) * 1000.0)

    def _close(self, following: int) -> None:
        if self._open is not None:
            now = time.time()
            if now - self._cpu_at >= _CPU_MIN_S:
                self._cpu_value = self._cpu.sample()
                self._cpu_at = now
            cpu, wait = self._cpu_value
            lag, free = self._lag.sparse(), self._free_min
            self._done.append({"s": self._open, "lag": lag, "cpu": cpu, "cpu_wait": wait, "free_min": free})
            self._lag = LatencyHistogram()
            self._free_min = None
        self._open = following
