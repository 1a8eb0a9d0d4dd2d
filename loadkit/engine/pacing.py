"""Open-model arrivals: tasks start at the plan's rate, whoever is free takes the next ticket.

There is no dispatcher greenlet.  The pacer keeps the intended time of the next arrival slot; each
``take()`` claims that slot and computes the one after it, so free users queue up on successive
slots and sleep until theirs.  When no user was free at a slot's time, the next ``take()`` gets it
late and the lateness is remembered for the calling greenlet: the request listener adds it to the
response time (wrk2's coordinated-omission correction).

A late arrival is counted by its cause, under the second of plan time its slot was due in (the
verdict later weighs it against the generator's health in that second, `measure/attribution.py`):

- ``loop``: a user was waiting for the slot and woke late, or no user was free while the event
  loop itself was running late (``loop_lag``, the probe's) by about as much as the users' requests
  took (a loop 20 ms late explains 20-ms answers, not 1-s ones): the event loop was slow;
- ``target``: no user was free at the slot's time, and the user that took it had spent most of
  its last journey waiting for the target's answers;
- ``users``: no user was free, but the user that took it had spent most of its journey elsewhere
  (think time, its own work): the user pool, not the target, was too small.

A user whose own last ticket was late is working off a backlog: its next late ticket keeps that
cause (the arrivals a user catches up on after a target's 1-s stall are the stall's, however short
its catching-up journeys are). Only a user coming from an on-time ticket starts a new judgement.

Times are seconds on a shared epoch clock (``time.time()``) so that workers started by one master
pace the same schedule; plan time is ``time.time() - t0``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import gevent.event

from loadkit.measure.figures import Arrivals, LateCounts

# The schedule integrates the rate with the midpoint rule over steps of at most 20 ms, halved
# (down to 10 µs) where midpoint and trapezoid disagree by more than 0.001 arrival: exact on
# linear ramps, and a stage edge shifts the schedule by at most ~0.001 arrival.
_STEP_S = 0.02
_MIN_STEP_S = 1e-5
_TOLERANCE = 0.001
# How finely a stretch of zero rate is searched for the instant the rate becomes positive.
_ZERO_SCAN_S = 0.05
_ZERO_BISECT_S = 1e-4
# Without an end, give up searching for a positive rate after this long (then block forever).
_ZERO_HORIZON_S = 7 * 24 * 3600.0
_BLOCK_S = 3600.0
# A late slot nobody was free for is the target's when the user that took it had spent at least
# this share of its last journey waiting for answers; else the user pool's (think time, task work).
WAITING_SHARE_TARGET = 0.5
# ... unless the loop itself runs late by at least a quarter of what the user's requests took on
# average: then the loop, delaying every answer, explains the wait.
LOOP_EXPLAINS = 4.0
_LOOP, _TARGET, _USERS = 0, 1, 2  # indices of a second's counts in _causes
_ON_TIME = -1  # a ticket's cause when it was on time
_CAUSES = ("loop", "target", "users")


_TICKET = "loadkit_ticket"  # the attribute of a user's greenlet that holds its _Ticket


class _Ticket:
    """What the pacer remembers about one user greenlet: its last ticket's lateness, when that
    journey started (plan time) and the milliseconds it has spent waiting for answers since (added
    by the request listener through ``request_done``). One object per user, kept on its greenlet
    (an attribute lookup, where a weak dictionary made a weak reference per arrival and request)
    and reused for every ticket; ``run`` tells a ticket of an earlier test (`start`) from a current one.
    """

    __slots__ = ("cause", "lateness", "requests", "run", "started", "waited_ms")

    def __init__(self, run: object) -> None:
        self.run = run
        self.lateness = 0.0
        self.cause = _ON_TIME  # why that ticket was late
        self.started = 0.0
        self.waited_ms = 0.0
        self.requests = 0


class ArrivalPacer:
    """Hands out arrival tickets at ``rate_at(t) × share`` per second of plan time.

    ``rate_at(t)`` is the plan-wide arrival rate at ``t`` seconds from t0 (``Plan.qps_at``); this
    process paces its ``share`` of it (the master tells each of N workers 1/N).  ``arrivals`` is
    "constant" (evenly spaced) or "poisson" (exponential gaps, time-rescaled so ramps hold).  A slot
    taken more than ``late_after_s`` after its intended time counts as late; one nobody took within
    ``drop_after_s`` is skipped and counted as dropped.  No arrivals at or after ``end_s``.
    ``on_take``, if given, is called with the epoch time each taken ticket's journey starts (the
    recorder windows the arrival rate held by stage from it).
    """

    def __init__(
        self,
        rate_at: Callable[[float], float],
        *,
        share: float = 1.0,
        arrivals: str = "constant",
        late_after_s: float = 0.010,
        drop_after_s: float = 5.0,
        end_s: float | None = None,
        seed: int | None = None,
        on_take: Callable[[float], None] | None = None,
        loop_lag: Callable[[], float] | None = None,
    ) -> None:
        if arrivals not in ("constant", "poisson"):
            raise ValueError(f"arrivals must be 'constant' or 'poisson', got {arrivals!r}")
        if not late_after_s >= 0 or not drop_after_s > 0:
            raise ValueError("late_after_s must be >= 0 and drop_after_s > 0")
        if end_s is not None and not end_s >= 0:
            raise ValueError(f"end_s must be >= 0 or None, got {end_s!r}")
        self._rate_at = rate_at
        self._share = self._check_share(share)
        self._poisson = arrivals == "poisson"
        self.late_after_s = float(late_after_s)
        self.drop_after_s = float(drop_after_s)
        self.end_s = None if end_s is None else float(end_s)
        self._random = random.Random(seed)
        self._on_take = on_take
        self._loop_lag = loop_lag or (lambda: 0.0)
        self._started = gevent.event.Event()
        self._t0 = 0.0
        self._next: float | None = None  # plan time of the next unclaimed slot; None = no more
        self._run = object()  # tickets of an earlier start() are not this run's
        self.sent = 0
        self.late = 0
        self.dropped = 0
        self.waiting = 0  # users asleep until their claimed slot: the free users right now
        # slot second -> [loop, target, users]: late and dropped arrivals by cause since take_causes()
        self._causes: dict[int, list[int]] = {}
        self._busy_cause = _USERS  # the cause of the last slot nobody was free for
        # running integral of rate×share for counts()["scheduled"]
        self._integral_t = 0.0
        self._integral = 0.0
        self._phase = 0.5

    @staticmethod
    def _check_share(share: float) -> float:
        if not (isinstance(share, int | float) and 0 < share <= 1):
            raise ValueError(f"share must be in (0, 1], got {share!r}")
        return float(share)

    @property
    def t0(self) -> float | None:
        """Epoch seconds of plan time 0, None before :meth:`start`."""
        return self._t0 if self._started.is_set() else None

    @property
    def share(self) -> float:
        return self._share

    def set_share(self, share: float) -> None:
        """Pace this fraction of the plan's rate from now on (1/N on each of N workers)."""
        self._share = self._check_share(share)

    def start(self, t0: float, *, phase: float = 0.5) -> None:
        """Start (or restart) the schedule at epoch ``t0``; wakes users waiting for a ticket.

        The first slot lands ``phase`` of a gap after t0 (constant arrivals): worker i of N passes
        (i + 0.5) / N so that the workers' evenly spaced slots interleave instead of coinciding.
        """
        if not 0 <= phase <= 1:
            raise ValueError(f"phase must be in [0, 1], got {phase!r}")
        self._t0 = float(t0)
        self._integral_t = 0.0
        self._integral = 0.0
        self.sent = self.late = self.dropped = 0
        self._run = object()
        self._causes = {}
        self._busy_cause = _USERS
        self._phase = float(phase)
        self._next = self._advance(0.0, None if self._poisson else self._phase)
        self._started.set()

    def take(self) -> float:
        """Block the calling greenlet until its arrival's intended time; return its lateness (s ≥ 0).

        Called from a user's ``wait_time``, so Locust can kill the user while it waits.  After the
        last arrival this blocks until the greenlet is killed (the shape stops the run).
        """
        self._started.wait()
        current = gevent.getcurrent()
        ticket = getattr(current, _TICKET, None)
        if ticket is not None and ticket.run is not self._run:
            ticket = None
        while True:
            slot = self._next
            if slot is None:
                setattr(current, _TICKET, None)
                self.waiting += 1  # free, with nothing left to do
                try:
                    while True:
                        gevent.sleep(_BLOCK_S)
                finally:
                    self.waiting -= 1
            now = time.time() - self._t0
            if now - slot > self.drop_after_s:
                self._drop_until(slot, now - self.drop_after_s, self._cause_of_busy(ticket, now))
                continue
            self._next = self._advance(slot)
            cause = _ON_TIME
            if slot > now:
                self.waiting += 1
                try:
                    gevent.sleep(slot - now)
                finally:
                    self.waiting -= 1
                lateness = time.time() - self._t0 - slot
                if lateness > self.late_after_s:
                    cause = _LOOP
                    self._count_late(slot, cause)
                elif lateness < 0.0:
                    lateness = 0.0
            else:
                lateness = now - slot
                if lateness > self.late_after_s:
                    cause = self._cause_of_busy(ticket, now)
                    self._count_late(slot, cause)
            self.sent += 1
            if self._on_take is not None:
                self._on_take(self._t0 + slot + lateness)
            if ticket is None:
                ticket = _Ticket(self._run)
                setattr(current, _TICKET, ticket)
            ticket.lateness = lateness
            ticket.cause = cause
            ticket.started = slot + lateness
            ticket.waited_ms = 0.0
            ticket.requests = 0
            return lateness

    def _count_late(self, slot: float, cause: int) -> None:
        self.late += 1
        second = int(slot)
        counts = self._causes.get(second)
        if counts is None:
            counts = self._causes[second] = [0, 0, 0]
        counts[cause] += 1

    def _cause_of_busy(self, ticket: _Ticket | None, now: float) -> int:
        """Why no user was free for a slot that the user with ``ticket`` came for at plan time
        ``now``: the backlog it is working off, if its own last ticket was late; else the loop, if
        it is running late right now by enough to explain the user's waits; else that user's last
        journey: mostly spent waiting for answers (the target) or not (the user pool). A user's
        first ticket has no journey before it: the pool was not ready."""
        if ticket is not None and ticket.cause != _ON_TIME:
            cause = ticket.cause
        else:
            lag = self._loop_lag()
            waited_s = ticket.waited_ms / 1000.0 if ticket is not None else 0.0
            mean_s = waited_s / ticket.requests if ticket is not None and ticket.requests else 0.0
            if lag > self.late_after_s and mean_s <= LOOP_EXPLAINS * lag:
                cause = _LOOP
            elif ticket is None:
                cause = _USERS
            elif waited_s > 0.0 and waited_s >= WAITING_SHARE_TARGET * (now - ticket.started):
                cause = _TARGET
            else:
                cause = _USERS
        self._busy_cause = cause
        return cause

    def _drop_until(self, slot: float, cutoff: float, cause: int) -> None:
        """Skip, in one go, the slot at ``slot`` and every later one before ``cutoff``.

        Overloaded, one take() may find thousands of expired slots; they are counted from the rate
        integral instead of being walked one by one (exact for constant arrivals; for poisson the
        expected count, and the memoryless schedule restarts at the cutoff).  They are counted by
        ``cause`` under the seconds they were due in.
        """
        if self.end_s is not None:
            cutoff = min(cutoff, self.end_s)
        area = self._area(slot, cutoff)
        whole = math.floor(area)
        self.dropped += 1 + whole
        for second, n in _split_by_second(slot, cutoff, 1 + whole, self._area).items():
            counts = self._causes.get(second)
            if counts is None:
                counts = self._causes[second] = [0, 0, 0]
            counts[cause] += n
        self._next = self._advance(cutoff, None if self._poisson else 1.0 - (area - whole))

    def lateness_of_current(self) -> float:
        """Lateness (s) of the ticket the current greenlet last took; 0.0 for unpaced greenlets."""
        ticket = getattr(gevent.getcurrent(), _TICKET, None)
        return ticket.lateness if ticket is not None and ticket.run is self._run else 0.0

    def request_done(self, response_ms: float) -> float:
        """A request of the current greenlet ended after ``response_ms``: count that time as spent
        waiting for the target, and return the lateness of its ticket (0.0 for unpaced greenlets).
        The request listener calls this once per request (one lookup serves both)."""
        ticket = getattr(gevent.getcurrent(), _TICKET, None)
        if ticket is None or ticket.run is not self._run:
            return 0.0
        ticket.waited_ms += response_ms
        ticket.requests += 1
        return ticket.lateness

    def take_causes(self) -> dict[int, LateCounts]:
        """Late and dropped arrivals by cause since the last call, by the plan second they were due
        in; counting starts again from zero."""
        causes, self._causes = self._causes, {}
        return {second: dict(zip(_CAUSES, c, strict=True)) for second, c in causes.items()}  # type: ignore[misc]

    def pending(self, now: float | None = None) -> dict[int, LateCounts]:
        """Arrivals due but not taken by any user nor dropped yet (``counts()["unsent"]``), by the
        plan second they were due in, counted under the cause of the last slot nobody was free for."""
        unsent = self.counts(now)["unsent"]
        if not unsent or self._next is None:
            return {}
        t = (time.time() if now is None else now) - self._t0
        if self.end_s is not None:
            t = min(t, self.end_s)
        cause = _CAUSES[self._busy_cause]
        out: dict[int, LateCounts] = {}
        for second, n in _split_by_second(self._next, max(t, self._next), unsent, self._area).items():
            counts: LateCounts = {"loop": 0, "target": 0, "users": 0}
            counts[cause] = n  # type: ignore[literal-required]
            out[second] = counts
        return out

    def counts(self, now: float | None = None) -> Arrivals:
        """This process's arrivals: scheduled (due by now per the rate integral), sent (on time or
        late), dropped, and unsent (due, but not yet taken by a user nor dropped)."""
        scheduled = 0
        if self._started.is_set():
            t = (time.time() if now is None else now) - self._t0
            if self.end_s is not None:
                t = min(t, self.end_s)
            self._integrate_to(t)
            # constant slots sit at (k + phase) gaps, so k arrivals are due once the integral passes
            # k - 1 + phase; for poisson this is the expected count, rounded the same way
            scheduled = max(0, math.floor(self._integral + 1.0 - self._phase + 1e-9))
        return {
            "scheduled": scheduled,
            "sent": self.sent,
            "on_time": self.sent - self.late,
            "late": self.late,
            "dropped": self.dropped,
            "unsent": max(0, scheduled - self.sent - self.dropped),
        }

    def _rate(self, t: float) -> float:
        r = self._rate_at(t)
        return r * self._share if r > 0 else 0.0

    def _integrate_to(self, t: float) -> None:
        if t > self._integral_t:
            self._integral += self._area(self._integral_t, t)
            self._integral_t = t

    def _area(self, a: float, b: float) -> float:
        """Arrivals (rate × share) planned in [a, b], midpoint rule over steps of at most 20 ms."""
        total = 0.0
        while a < b:
            step = min(_STEP_S, b - a)
            total += self._rate(a + step / 2) * step
            a += step
        return total

    def _advance(self, t: float, need: float | None = None) -> float | None:
        """Plan time of the slot after ``t``: where the rate integral from ``t`` reaches ``need``
        arrivals (default: one for constant arrivals, an Exp(1) draw for poisson).  None when that
        is at or past ``end_s``."""
        if need is None:
            need = self._random.expovariate(1.0) if self._poisson else 1.0
        end = self.end_s
        while True:
            if end is not None and t >= end:
                return None
            r = self._rate(t)
            if r <= 0.0:
                found = self._skip_zero(t)
                if found is None:
                    return None
                t = found
                continue
            step = min(need / r, _STEP_S)
            while True:  # halve the step until the rate is linear enough over it (stage edges)
                mid = self._rate(t + step / 2)
                trapezoid = (r + self._rate(t + step)) / 2
                if abs(mid - trapezoid) * step <= _TOLERANCE or step <= _MIN_STEP_S:
                    break
                step /= 2
            area = mid * step
            if area >= need:
                slot = t + need / mid
                return None if end is not None and slot >= end else slot
            need -= area
            t += step

    def _skip_zero(self, t: float) -> float | None:
        """First plan time after ``t`` with a positive rate (to ~0.1 ms), None if none before the end."""
        limit = self.end_s if self.end_s is not None else t + _ZERO_HORIZON_S
        lo = t
        hi = t + _ZERO_SCAN_S
        while self._rate(hi) <= 0.0:
            if hi >= limit:
                return None
            lo, hi = hi, min(hi + _ZERO_SCAN_S, limit)
        while hi - lo > _ZERO_BISECT_S:
            mid = (lo + hi) / 2
            if self._rate(mid) > 0.0:
                hi = mid
            else:
                lo = mid
        return hi


def _split_by_second(a: float, b: float, total: int, area: Callable[[float, float], float]) -> dict[int, int]:
    """``total`` arrivals planned over plan times [a, b], split by the whole second they fall in
    (in proportion to the rate integral ``area``; rounded so that they add up to ``total``)."""
    first, last = int(a), int(b)
    if first == last or total <= 0:
        return {first: total} if total > 0 else {}
    weights = {s: area(max(a, s), min(b, s + 1.0)) for s in range(first, last + 1)}
    whole = sum(weights.values())
    out: dict[int, int] = {}
    done = 0.0
    given = 0
    for second, weight in weights.items():
        done += weight
        upto = round(total * done / whole) if whole > 0 else total
        if upto > given:
            out[second] = upto - given
            given = upto
    if given < total:
        out[last] = out.get(last, 0) + total - given
    return out


def install(user_classes: Iterable[type], pacer: ArrivalPacer) -> None:
    """Make every user class paced by ``pacer`` (unless it sets ``loadkit_paced = False``).

    Each task iteration starts from a ticket: ``wait_time`` takes one and returns 0 (Locust calls it
    inside ``User.wait()`` with the user in WAITING state, so a stop kills the user cleanly while it
    waits).  Locust runs the first task right after ``on_start`` without calling ``wait_time``, so
    ``on_start`` is wrapped to end with ``self.wait()``, i.e. one more ticket taken the same way.
    Only the given classes are changed; installing twice is harmless (the newest pacer wins).  An
    opted-out subclass of a paced class gets its parent's original wait_time and on_start back.
    A nested TaskSet that defines its own ``wait_time`` keeps it (its tasks are not paced).
    """
    classes = list(user_classes)
    for cls in classes:
        if getattr(cls, "loadkit_paced", True) is not False:
            cls.wait_time = _paced_wait_time(pacer, _original(cls, "wait_time"))
            cls.on_start = _paced_on_start(_original(cls, "on_start"))
    for cls in classes:
        if getattr(cls, "loadkit_paced", True) is False:
            for attr in ("wait_time", "on_start"):
                original = _original(cls, attr)
                if _inherited(cls, attr) is not original:
                    setattr(cls, attr, original)


def _inherited(cls: type, attr: str) -> Any:
    """The raw class attribute (no method binding) that ``cls.attr`` resolves to."""
    for klass in cls.__mro__:
        if attr in klass.__dict__:
            return klass.__dict__[attr]
    raise TypeError(f"{cls.__name__} has no {attr}: not a Locust User class")


def _original(cls: type, attr: str) -> Any:
    """``cls.attr`` as the user wrote it: our wrapper (on it or a parent) replaced by what it wraps."""
    found = _inherited(cls, attr)
    return getattr(found, "loadkit_original", found)


def _paced_wait_time(pacer: ArrivalPacer, original: Any) -> Callable[[Any], float]:
    def wait_time(user: Any) -> float:
        pacer.take()
        return 0.0

    wait_time.loadkit_pacer = pacer  # type: ignore[attr-defined]
    wait_time.loadkit_original = original  # type: ignore[attr-defined]
    return wait_time


def _paced_on_start(original: Callable[[Any], None]) -> Callable[[Any], None]:
    def on_start(user: Any) -> None:
        original(user)
        # Only the wrapper of the user's own class waits: a subclass calling super().on_start()
        # reaches a parent's wrapper, which must not take a second ticket.
        if type(user).on_start is on_start:
            user.wait()

    on_start.loadkit_original = original  # type: ignore[attr-defined]
    return on_start
