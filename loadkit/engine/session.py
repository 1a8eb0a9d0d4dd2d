"""One plan inside one Locust process: the per-test state a role's listeners share.

A `RunSession` holds what a test accumulates (recorder, pacer, t0, abort) and turns it into typed
evidence; what differs by role (where arrivals and generator figures come from) is passed in by
the role (`roles.py`). Judging happens once per test, in the role's finish.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from loadkit.engine.clock import PlanClock, set_plan_clock
from loadkit.engine.pacing import ArrivalPacer
from loadkit.engine.probe import LoopProbe
from loadkit.measure.figures import Arrivals, BaselineInput, Ending, EndingHow, Evidence, Generator, iso
from loadkit.measure.generator import GeneratorHealth, HealthDelta
from loadkit.measure.recorder import Recorder
from loadkit.measure.summary import LIVE_NAME, Snapshot, write_snapshot
from loadkit.measure.told import ToldLog
from loadkit.measure.verdict import judge
from loadkit.plan import Plan
from loadkit.rehearsal.mock_admin import MockAdmin, MockAdminError

log = logging.getLogger("loadkit")


class RunSession:
    def __init__(
        self,
        plan: Plan,
        *,
        report_dir: Path | None = None,
        mock: MockAdmin | None = None,
        host: str | None = None,
        baseline: BaselineInput | None = None,
    ) -> None:
        self.plan = plan
        self.host = host
        self.report_dir = report_dir
        self.mock = mock
        self.baseline = baseline
        self.recorder = Recorder(plan)
        self.told = ToldLog()  # grants the users were told about (JsonUser), for reconciliation
        self.pacer: ArrivalPacer | None = None
        self.probe = LoopProbe(free_users=self._free_users)
        self.health = GeneratorHealth(plan.gate_window())
        self.t0: float | None = None
        self.started_at: float | None = None
        self.stopping_at: float | None = None  # when the test began to stop (figures are cut there)
        self.abort_reason: str | None = None
        self.setup_problem: str | None = None
        self.halted: str | None = None  # why loadkit stopped the run (the service died), judged apart
        self.judged = False

    # --- lifecycle -------------------------------------------------------------------------

    def new_pacer(self) -> ArrivalPacer:
        self.pacer = ArrivalPacer(
            self.plan.qps_at,
            arrivals=self.plan.arrivals,
            end_s=self.plan.duration_s,
            on_take=self._journey_started,
            loop_lag=self.probe.lag_now,
        )
        return self.pacer

    def _journey_started(self, t: float) -> None:
        # looked up on each call: begin() gives every test a new recorder
        self.recorder.record_arrival(t)

    def _free_users(self) -> int | None:
        return self.pacer.waiting if self.pacer is not None else None

    def begin(self, t0: float, *, phase: float = 0.5) -> None:
        """A new test starts: forget the previous one (the web UI can run several).

        `phase` offsets this process's arrival slots so that N workers interleave theirs."""
        self.t0 = t0
        self.started_at = time.time()
        self.stopping_at = None
        self.recorder = Recorder(self.plan)
        self.recorder.start(t0)
        self.told = ToldLog()
        self.health = GeneratorHealth(self.plan.gate_window())
        self.abort_reason = None
        self.halted = None
        self.judged = False
        if self.pacer is not None:
            self.pacer.start(t0, phase=phase)
        self.probe.start(t0)
        set_plan_clock(PlanClock(self.plan, t0))

    def prepare_mock(self) -> None:
        """Reset and seed the mock (master/local, before users start)."""
        if self.mock is None or self.plan.mock is None or self.plan.mock.seed is None:
            return
        try:
            self.mock.reset()
            self.mock.seed(self.plan.mock.seed)
            log.info("loadkit: seeded the mock platform at %s", self.mock.base_url)
        except MockAdminError as exc:
            self.setup_problem = f"could not seed the mock platform: {exc}"
            log.error("loadkit: %s", self.setup_problem)

    # --- figures ---------------------------------------------------------------------------

    def health_delta(self) -> HealthDelta:
        """This process's health since the last call: what its probe and its pacer saw."""
        pacer = self.pacer
        return {
            "seconds": self.probe.take(),
            "late": pacer.take_causes() if pacer is not None else {},
            "pending": pacer.pending() if pacer is not None else {},
        }

    def collect_health(self, node: str) -> None:
        """Add this process's own health delta (local or master) to the run's."""
        self.health.add(node, self.health_delta(), paces=self.pacer is not None)

    def generator(self, workers: int, *, until: float | None = None) -> Generator:
        """The generator's figures over the gate window; with ``until`` (epoch seconds, a live
        view) over the run so far while the gate has not begun."""
        if until is not None and self.t0 is not None and until - self.t0 < self.plan.gate_window()[0]:
            return self.health.summary(workers, window=(0.0, math.inf))
        return self.health.summary(workers)

    def live(self, arrivals: Arrivals, generator: Generator, *, lag_s: float = 0.0) -> dict:
        """Figures so far, shaped like summary.json, for the web UI and the progress line.

        Before the gate window starts there is no verdict (no ``verdict``, no ``reasons``): the
        warm-up is not meant to meet the budgets. ``checks`` still set the figures so far beside
        their limits."""
        now = time.time()
        live: dict = dict(self.recorder.live(now, lag_s=lag_s))
        live["arrivals"] = arrivals
        live["generator"] = generator
        live["abort"] = {"reason": self.abort_reason} if self.abort_reason else None
        live["stage"] = self.stage_info(now)
        if self.t0 is not None:
            verdict, checks, reasons = judge(self.plan, live)
            live["checks"] = [c.as_dict() for c in checks]
            if live["gate"]["started"] or self.abort_reason:  # an abort is judged whenever it comes
                live.update(verdict=verdict, reasons=reasons)
        return live

    def stage_info(self, now: float) -> dict | None:
        if self.t0 is None:
            return None
        elapsed = now - self.t0
        found = self.plan.stage_at(elapsed)
        if found is None:
            return {"index": None, "name": "done", "elapsed_s": elapsed, "remaining_s": 0.0, "qps_planned": 0}
        index, stage = found
        stage_elapsed = elapsed - self.plan.stage_start(index)
        return {
            "index": index,
            "name": stage.name,
            "count": len(self.plan.stages),
            "elapsed_s": round(stage_elapsed, 1),
            "remaining_s": round(max(0.0, stage.duration_s - stage_elapsed), 1),
            "qps_planned": round(self.plan.qps_at(elapsed), 2),
            "gate": stage.gate,
        }

    def ending(self, finished: float, *, stopped_how: EndingHow) -> Ending:
        """How the test ended at epoch `finished`: aborted, the plan ran out, or `stopped_how`
        (stopped in the web UI, interrupted headless) when it ended before the plan did."""
        assert self.t0 is not None
        plan_s = finished - self.t0
        how: EndingHow
        detail = None
        if self.abort_reason or self.setup_problem or self.halted:
            how, detail = "aborted", self.abort_reason or self.setup_problem or self.halted
        elif plan_s >= self.plan.duration_s - 0.5:
            how = "completed"
        else:
            how = stopped_how
        return {"how": how, "at": iso(finished), "plan_s": round(plan_s, 3), "detail": detail}

    def evidence(self, arrivals: Arrivals, generator: Generator, *, finished: float) -> Evidence:
        """The measured figures of the test (cut at `finished`) with arrivals, generator, abort."""
        figures = self.recorder.figures(until=finished)
        figures["timeseries"].update(self.health.timeseries(len(figures["timeseries"]["t"])))
        evidence: Evidence = {**figures, "arrivals": arrivals}
        evidence["whole_run"] = self.recorder.whole_run()
        evidence["generator"] = generator
        evidence["abort"] = {"reason": self.abort_reason} if self.abort_reason else None
        if self.setup_problem:
            evidence["abort"] = {"reason": self.setup_problem}
        return evidence

    # --- the live snapshot (summary.Snapshot) ----------------------------------------------------

    def write_snapshot(self, arrivals: Arrivals, generator: Generator, *, now: float) -> None:
        """What this test knows at `now`, in the report directory: if the process dies, the CLI
        writes the reports from it. A failure to write is logged, never raised (the run goes on)."""
        if self.report_dir is None or self.t0 is None or self.judged:
            return
        snapshot: Snapshot = {
            "t0": self.t0,
            "started_at": self.started_at or now,
            "written_at": now,
            "host": self.host,
            "evidence": self.evidence(arrivals, generator, finished=now),
        }
        try:
            write_snapshot(self.report_dir, snapshot)
        except OSError as exc:
            log.warning("loadkit: could not write the live snapshot in %s: %s", self.report_dir, exc)

    def drop_snapshot(self) -> None:
        """The reports are written: a snapshot left behind would read as a generator that died."""
        if self.report_dir is not None:
            (self.report_dir / LIVE_NAME).unlink(missing_ok=True)
