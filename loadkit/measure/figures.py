"""The typed figures of a run: what the recorder measures and what summary.json is made of.

Each part is a TypedDict, so it is a plain JSON-ready dict at run time (the worker delta, the web
UI and summary.json carry it unchanged) and a checked shape for the code that builds and reads it.
The recorder builds `Figures` (`recorder.Recorder.figures`), the plugin adds `Arrivals`,
`Generator` and the integrity results into `Evidence`, `verdict.judge` reads `Evidence`, and
`summary.build_summary` writes the document; nothing else invents keys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict

PERCENTILES = ("p50", "p90", "p95", "p99", "max")


def iso(epoch: float) -> str:
    """Epoch seconds as the ISO 8601 UTC time summary.json uses."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class Latency(TypedDict):
    """Milliseconds; None when there was no sample."""

    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None


EMPTY_LATENCY: Latency = {"p50": None, "p90": None, "p95": None, "p99": None, "max": None}


class Qps(TypedDict):
    target: float | None  # the plan's arrival rate, averaged over the window
    held: float | None  # successful requests per second in the window
    arrivals_held: float | None  # journeys started per second in the window


class Requests(TypedDict):
    count: int
    successes: int
    errors: int
    expected_outcomes: int  # successes that were declared business outcomes (sold out, ...)


class Endpoint(TypedDict):
    requests: int
    successes: int
    errors: int
    error_rate: float
    qps_held: float
    latency_ms: Latency
    latency_ms_service: Latency
    outcomes: dict[str, int]


class ErrorKind(TypedDict):
    name: str
    error: str
    occurrences: int


class Window(TypedDict):
    """The judged window: ISO times (None while unknown), its seconds and its stages."""

    start: str | None
    end: str | None
    seconds: float
    stages: list[str]


class GeneratorSeries(TypedDict):
    """The generator's health per second of plan time (`GeneratorHealth.timeseries`)."""

    lag_p99_ms: list[float | None]  # the worst event-loop lag p99 of the pacing processes
    unhealthy: list[int]  # how many pacing processes were unhealthy (loop lag or CPU over its limit)
    late_generator: list[int]  # arrivals due that second that were late, dropped or never sent, by cause
    late_users: list[int]
    late_target: list[int]


class Timeseries(GeneratorSeries):
    """One value per second of plan time; percentiles per 5-s window (None without samples).
    The recorder fills the request series, the generator's health the rest (`GeneratorSeries`)."""

    interval_s: int
    t: list[int]
    qps: list[int]
    errors: list[int]
    arrivals: list[int]
    target_qps: list[float]
    p50: list[float | None]
    p95: list[float | None]
    p99: list[float | None]


EMPTY_GENERATOR_SERIES: GeneratorSeries = {
    "lag_p99_ms": [],
    "unhealthy": [],
    "late_generator": [],
    "late_users": [],
    "late_target": [],
}


EMPTY_TIMESERIES: Timeseries = {
    "interval_s": 1,
    "t": [],
    "qps": [],
    "errors": [],
    "arrivals": [],
    "target_qps": [],
    "p50": [],
    "p95": [],
    "p99": [],
    **EMPTY_GENERATOR_SERIES,
}


class Figures(TypedDict):
    """What the requests did in the judged window (the gate, or the run so far before it)."""

    window: Window
    qps: Qps
    latency_ms: Latency
    latency_ms_service: Latency
    error_rate: float | None
    requests: Requests
    outcomes: dict[str, int]
    endpoints: dict[str, Endpoint]
    errors: list[ErrorKind]  # the whole run, most frequent first
    timeseries: Timeseries


class Gate(TypedDict):
    started: bool  # has the first gate stage begun?
    starts_in_s: float | None  # seconds until it does (0 once it has, None before the test starts)


NO_GATE: Gate = {"started": False, "starts_in_s": None}


class LiveFigures(Figures):
    """`Figures` so far, for the web UI and the progress line."""

    qps_now: float  # successful requests per second over the last 5 complete seconds
    gate: Gate


class Arrivals(TypedDict):
    """Arrival slots of the whole run, warm-up included. They add up:
    ``scheduled = sent + dropped + unsent`` and ``sent = on_time + late``; ``unsent`` are slots
    that came due while the run was stopping and no user took (a stopped or interrupted run)."""

    scheduled: int
    sent: int
    on_time: int
    late: int
    dropped: int
    unsent: int


EMPTY_ARRIVALS: Arrivals = {"scheduled": 0, "sent": 0, "on_time": 0, "late": 0, "dropped": 0, "unsent": 0}


class LateCounts(TypedDict):
    """Late, dropped or never sent arrivals of one second, by what the pacer saw (`engine/pacing.py`)."""

    loop: int  # a user waited for the slot and woke late: the event loop was slow
    target: int  # no user was free: they were waiting on the target
    users: int  # no user was free: they were busy elsewhere (think time, their own work)


class LateByCause(TypedDict):
    """Arrivals late, dropped or never sent, by who caused it (`measure/attribution.py`)."""

    generator: int  # the generator's loop or CPU was the limit
    users: int  # the generator's user pool was the limit (users busy, not waiting on the target)
    target: int  # every user was waiting on the target, the generator healthy


class ProcessHealth(TypedDict):
    """One Locust process over the window: "local", "master" or "worker-N" (in order of joining)."""

    name: str
    paces: bool  # sends arrivals (local, workers); the master only merges
    lag_p99_ms: float | None  # event-loop lag: how late a 10-ms sleep woke
    lag_max_ms: float | None
    cpu_max: float | None
    cpu_avg: float | None
    cpu_wait_max: float | None  # the most of one second it waited for a core (Linux), in percent
    unhealthy_s: float  # seconds with loop lag or CPU (ran + waited for a core) above its limit
    free_min: int | None  # the fewest users free (waiting for their arrival) in any second


class Generator(TypedDict):
    """The load generator's own health over the window (every Locust process).

    `late` and `unsent` cover the whole run, like `Arrivals`: `late` splits its late and dropped
    arrivals, `unsent` its unsent ones, by cause."""

    cpu_max: float
    cpu_avg: float
    cpu_high_s: float  # the longest time one process spent above the CPU limit
    workers: int
    workers_lost: int
    lag_p99_ms: float | None  # the worst of the pacing processes
    lag_max_ms: float | None
    unhealthy_s: float | None  # the longest time one pacing process was unhealthy (None: not measured)
    late: LateByCause | None  # None in summaries written before causes were measured
    unsent: LateByCause | None
    processes: list[ProcessHealth]
    workers_expected: NotRequired[int | None]
    strangers: NotRequired[list[str]]  # workers of another run that tried to join


EMPTY_GENERATOR: Generator = {
    "cpu_max": 0.0,
    "cpu_avg": 0.0,
    "cpu_high_s": 0.0,
    "workers": 0,
    "workers_lost": 0,
    "lag_p99_ms": None,
    "lag_max_ms": None,
    "unhealthy_s": None,
    "late": None,
    "unsent": None,
    "processes": [],
}


class Seen(TypedDict):
    """Per request name over the whole run, for reconciliation (never in summary.json)."""

    successes: int  # expected business outcomes excluded: they take no effect
    errors: int
    outcomes: int  # expected business outcomes (sold out, limit reached)


class WholeRun(TypedDict):
    """The whole run, warm-up included: what the target should have served (summary.json)."""

    requests: int
    errors: int


EndingHow = Literal["completed", "stopped", "interrupted", "aborted", "generator_died"]


class Ending(TypedDict):
    """How the run ended: `completed` (the plan ran out), `stopped` (from the web UI, or a plain
    Locust --run-time), `interrupted` (SIGINT/SIGTERM), `aborted` (abort_on), `generator_died`."""

    how: EndingHow
    at: str | None  # ISO time it ended
    plan_s: float | None  # plan time (s) at which it ended
    detail: str | None


class BaselineRun(TypedDict):
    """Which earlier run a run is compared with (`--baseline`)."""

    source: str  # as asked: a report directory, "last-pass" or "history:<id>"
    run_dir: str | None
    history_id: int | None  # its row in the run history, when it came from there
    plan: str | None
    started_at: str | None
    verdict: str | None


class BaselineInput(TypedDict):
    """The baseline the verdict compares with: the run, its summary, the regression allowed."""

    run: BaselineRun
    summary: dict[str, Any]  # the baseline run's summary.json (load_summary)
    max_regression: float  # relative change allowed (0.1 = 10%), besides the absolute floors and noise


class Evidence(TypedDict, total=False):
    """Everything the verdict judges: the figures plus the run's other facts."""

    window: Window
    qps: Qps
    latency_ms: Latency
    latency_ms_service: Latency
    error_rate: float | None
    requests: Requests
    outcomes: dict[str, int]
    endpoints: dict[str, Endpoint]
    errors: list[ErrorKind]
    timeseries: Timeseries
    arrivals: Arrivals
    generator: Generator
    whole_run: WholeRun
    ending: Ending | None
    abort: dict[str, Any] | None
    audit: dict[str, Any] | None
    reconciliation: dict[str, Any] | None
    service: dict[str, Any] | None  # rehearsal.service.ServiceDoc
    drills: list[dict[str, Any]]  # measure.drills.DrillDoc
    baseline: BaselineInput | None
