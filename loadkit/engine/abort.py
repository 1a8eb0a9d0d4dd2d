"""The `abort_on` safety rail: stop a run whose error rate stays above a limit for a duration."""

from __future__ import annotations

from collections import deque

from loadkit.plan import AbortRule

TRAILING_S = 5.0


class AbortWatch:
    """Fed once a second with cumulative (requests, failures); says when to abort.

    The error rate at each tick is taken over the trailing TRAILING_S seconds (one-second rates are
    too noisy at low QPS); the rule trips once that rate has stayed above the limit for `for_s`.
    """

    def __init__(self, rule: AbortRule) -> None:
        self.rule = rule
        self._history: deque[tuple[float, int, int]] = deque()
        self._above_since: float | None = None
        self.reason: str | None = None

    def feed(self, now: float, requests: int, failures: int) -> str | None:
        self._history.append((now, requests, failures))
        while len(self._history) > 2 and now - self._history[1][0] >= TRAILING_S:
            self._history.popleft()
        t0, r0, f0 = self._history[0]
        dr, df = requests - r0, failures - f0
        if dr <= 0 or now - t0 <= 0:
            return None
        rate = df / dr
        if rate <= self.rule.error_rate:
            self._above_since = None
            return None
        if self._above_since is None:
            self._above_since = now
        if now - self._above_since >= self.rule.for_s and self.reason is None:
            self.reason = (
                f"aborted: error rate {rate:.1%} stayed above {self.rule.error_rate:.1%} "
                f"for {self.rule.for_s:g} s (safety.abort_on)"
            )
        return self.reason
