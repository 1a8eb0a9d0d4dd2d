"""The event plan as frozen dataclasses: stages, budgets, safety rails, and the plan's clock.

Everything that turns plan time into rates, stages and the gate window lives here, once, so the
pacer, the recorder, the verdict and the reports cannot disagree about them.
"""

from __future__ import annotations

import math
import string
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PERCENTILE_KEYS = ("p50", "p90", "p95", "p99", "max")
ARRIVALS = ("constant", "poisson")
DEFAULT_LATENCY_S = 0.5
MIN_LATENCY_S = 0.1
DEFAULT_RECOVERY_S = 30.0
DEFAULT_APP_ID = "2021000000000001"
DEFAULT_WX_MCHID = "1900000001"
# Naming any of these registers a WeChat Pay merchant (a fresh key pair) with the mock.
WECHAT_PLACEHOLDERS = (
    "wx_mchid",
    "wx_serial_no",
    "wx_private_key_file",
    "wx_platform_public_key_file",
    "wx_public_key_id",
)
# What `service:` strings may name: filled in by the rehearsal when it starts the service.
PLACEHOLDERS = (
    "python",
    "port",
    "mock_url",
    "app_id",
    "app_private_key_file",
    "app_public_key_file",
    "platform_public_key_file",
    "service_token",
    "run_dir",
    *WECHAT_PLACEHOLDERS,
)


class PlanError(Exception):
    """A plan that cannot be used; the message says where (file, key) and what was expected."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.key = key


@dataclass(frozen=True)
class Stage:
    name: str
    duration_s: float
    qps_from: float
    qps_to: float
    users: int | None
    gate: bool

    @property
    def peak_qps(self) -> float:
        return max(self.qps_from, self.qps_to)


@dataclass(frozen=True)
class LatencyBudget:
    """Milliseconds; None means no budget for that figure."""

    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    def items(self) -> list[tuple[str, float]]:
        """The budgets that are set, in percentile order."""
        return [(k, v) for k in PERCENTILE_KEYS if (v := getattr(self, k)) is not None]


@dataclass(frozen=True)
class EndpointBudget:
    qps_min: float | None = None
    latency_ms: LatencyBudget = field(default_factory=LatencyBudget)
    error_rate_max: float | None = None


@dataclass(frozen=True)
class Budgets:
    qps_min: float | None = None
    latency_ms: LatencyBudget = field(default_factory=LatencyBudget)
    error_rate_max: float | None = None
    endpoints: Mapping[str, EndpointBudget] = field(default_factory=dict)
    recovery_s: float | None = None  # a drill's default recovery budget


@dataclass(frozen=True)
class AbortRule:
    error_rate: float
    for_s: float


@dataclass(frozen=True)
class Safety:
    allow_hosts: tuple[str, ...] | None = None
    max_qps: float | None = None
    abort_on: AbortRule | None = None


@dataclass(frozen=True)
class MockSetup:
    seed: Mapping[str, Any] | None
    audit: bool
    # audit totals the run must end with, by dotted path: {"vouchers.FLASH-SALE.issued": 150}
    expect: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceSetup:
    """The system under test, started and owned by loadkit. Strings keep their `{placeholders}`
    (filled when the service starts: the port and keys exist only then)."""

    command: tuple[str, ...]
    env: Mapping[str, str]
    ready: str  # URL polled until HTTP 200
    host: str  # Locust's target
    ready_timeout_s: float = 30.0
    stop_timeout_s: float = 10.0
    settle_timeout_s: float = 15.0  # the most the end of a test waits for the ledger to go quiet
    app_id: str = DEFAULT_APP_ID
    records: str | None = None  # URL of the service's own records (JSON lines)
    records_token_env: str | None = None  # the env var (in `env`) sent as X-Admin-Token
    wx_mchid: str = DEFAULT_WX_MCHID  # the WeChat Pay merchant registered when WeChat placeholders are used

    @property
    def placeholders(self) -> frozenset[str]:
        """The placeholders the service's strings name."""
        texts = (*self.command, *self.env.values(), self.ready, self.host, self.records or "")
        return frozenset(name for text in texts for _, name, _, _ in string.Formatter().parse(text) if name)

    @property
    def uses_wechat(self) -> bool:
        """Whether the service is given a WeChat Pay merchant (it names a `{wx_...}` placeholder)."""
        return not self.placeholders.isdisjoint(WECHAT_PLACEHOLDERS)


@dataclass(frozen=True)
class Drill:
    """Platform trouble on the plan's timeline: a fault layer on the mock from `at_s` for `for_s`."""

    name: str
    at_s: float
    for_s: float
    faults: Mapping[str, Any]
    recovery_s: float | None = None  # None: budgets.recovery_s, else DEFAULT_RECOVERY_S


@dataclass(frozen=True)
class ReconcileSetup:
    # effects allowed per user, by platform method or by campaign (activity, budget code, crowd)
    per_user_limit: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    name: str
    locustfile: Path | None
    host: str | None
    stages: tuple[Stage, ...]
    budgets: Budgets
    safety: Safety
    mock: MockSetup | None
    arrivals: str
    source: Path | None
    raw: Mapping[str, Any]
    service: ServiceSetup | None = None
    drills: tuple[Drill, ...] = ()
    reconcile: ReconcileSetup | None = None
    duration_s: float = field(init=False)
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts, t = [], 0.0
        for stage in self.stages:
            starts.append(t)
            t += stage.duration_s
        object.__setattr__(self, "_starts", tuple(starts))
        object.__setattr__(self, "duration_s", t)

    def stage_start(self, index: int) -> float:
        """Seconds from the start of the run to the start of stage `index`."""
        return self._starts[index]

    def stage_at(self, t: float) -> tuple[int, Stage] | None:
        """The stage running at `t` seconds from the start; None before 0 and from the end on."""
        if t < 0 or t >= self.duration_s:
            return None
        index = bisect_right(self._starts, t) - 1
        return index, self.stages[index]

    def qps_at(self, t: float) -> float:
        """Planned arrival rate at `t`: constant, or linear from qps_from to qps_to inside a ramp."""
        found = self.stage_at(t)
        if found is None:
            return 0.0
        index, stage = found
        return _rate(stage, t - self._starts[index])

    def arrivals_between(self, t0: float, t1: float) -> float:
        """Planned arrivals in [t0, t1]: the exact integral of the piecewise-linear rate (0 if t1 <= t0)."""
        total = 0.0
        for index, stage in enumerate(self.stages):
            start = self._starts[index]
            a = max(t0, start) - start
            b = min(t1, start + stage.duration_s) - start
            if b > a:
                total += (b - a) * (_rate(stage, a) + _rate(stage, b)) / 2.0
        return total

    def gate_stages(self) -> list[int]:
        """Indices of the judged stages. A plan that marks none is judged on its last stage (the
        usual warmup -> ramp -> hold shape), so a plan without `gate:` still gives a verdict."""
        marked = [i for i, s in enumerate(self.stages) if s.gate]
        return marked or [len(self.stages) - 1]

    def gate_window(self) -> tuple[float, float]:
        """Plan-time start and end (seconds) of the gate window: the first gate stage's start to
        the last one's end. Gate stages are consecutive (the loader checks), so this is one window."""
        gates = self.gate_stages()
        return self._starts[gates[0]], self._starts[gates[-1]] + self.stages[gates[-1]].duration_s

    def gate_seconds(self) -> float:
        start, end = self.gate_window()
        return end - start

    def gate_target_qps(self) -> float:
        """The planned arrival rate averaged over the gate window (summary.json `qps.target`)."""
        start, end = self.gate_window()
        return self.arrivals_between(start, end) / (end - start) if end > start else 0.0

    def users_for(self, index: int) -> int:
        """The user pool for stage `index`: its `users`, else derived by Little's law.

        An open model needs as many free users as arrivals in flight: rate x time per task. The
        time is taken as the p99 latency budget (0.5 s without one, never under 0.1 s), doubled for
        tasks slower than budget, plus 2 so a low-rate stage still has spare users. Too small a
        pool shows up as late arrivals (an inconclusive verdict), never as a false pass.
        """
        stage = self.stages[index]
        if stage.users is not None:
            return stage.users
        p99_ms = self.budgets.latency_ms.p99
        latency_s = p99_ms / 1000.0 if p99_ms is not None else DEFAULT_LATENCY_S
        return max(1, math.ceil(stage.peak_qps * max(latency_s, MIN_LATENCY_S) * 2) + 2)

    def peak_qps(self) -> float:
        return max(s.peak_qps for s in self.stages)

    def recovery_s(self, drill: Drill) -> float:
        """The recovery budget of `drill`: its own, else the plan's, else 30 s."""
        if drill.recovery_s is not None:
            return drill.recovery_s
        budget = self.budgets.recovery_s
        return budget if budget is not None else DEFAULT_RECOVERY_S


def _rate(stage: Stage, offset: float) -> float:
    if stage.qps_from == stage.qps_to or stage.duration_s <= 0:
        return stage.qps_from
    return stage.qps_from + (stage.qps_to - stage.qps_from) * offset / stage.duration_s
