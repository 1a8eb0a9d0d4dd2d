"""One test run of a plan inside a Locust process: the state the plugin's listeners share.

A `RunSession` exists in every process that has a plan. Its role follows the runner: a local
runner paces, measures and judges; a worker paces and measures, shipping deltas; a master merges,
watches, seeds and audits the mock, and judges. Judging happens once per test, in `finalize()`.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadkit.engine.pacing import ArrivalPacer
from loadkit.measure.generator import CpuSampler, GeneratorHealth
from loadkit.measure.reconcile import check_expectations, reconcile
from loadkit.measure.recorder import Recorder
from loadkit.measure.summary import build_summary
from loadkit.measure.verdict import judge
from loadkit.plan import Plan
from loadkit.rehearsal.mock_admin import MockAdmin, MockAdminError

log = logging.getLogger("loadkit")


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class RunSession:
    def __init__(
        self,
        plan: Plan,
        *,
        role: str,
        report_dir: Path | None,
        mock: MockAdmin | None,
        host: str | None = None,
    ) -> None:
        self.plan = plan
        self.host = host
        self.role = role  # "local" | "master" | "worker"
        self.report_dir = report_dir
        self.mock = mock
        self.recorder = Recorder(plan)
        self.pacer: ArrivalPacer | None = None
        self.cpu = CpuSampler()
        self.health = GeneratorHealth()
        self.worker_arrivals: dict[str, dict[str, int]] = {}
        self.t0: float | None = None
        self.started_at: float | None = None
        self.abort_reason: str | None = None
        self.setup_problem: str | None = None
        self.summary: dict[str, Any] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def new_pacer(self, share: float) -> ArrivalPacer:
        self.pacer = ArrivalPacer(
            self.plan.qps_at,
            share=share,
            arrivals=self.plan.arrivals,
            end_s=self.plan.duration_s,
            on_take=self._journey_started,
        )
        return self.pacer

    def _journey_started(self, t: float) -> None:
        # looked up on each call: begin() gives every test a new recorder
        self.recorder.record_arrival(t)

    def begin(self, t0: float, *, phase: float = 0.5) -> None:
        """A new test starts: forget the previous one (the web UI can run several).

        `phase` offsets this process's arrival slots so that N workers interleave theirs."""
        self.t0 = t0
        self.started_at = time.time()
        self.recorder = Recorder(self.plan)
        self.recorder.start(t0)
        self.worker_arrivals.clear()
        self.health = GeneratorHealth()
        self.abort_reason = None
        self.summary = None
        if self.pacer is not None:
            self.pacer.start(t0, phase=phase)

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

    def arrivals(self) -> dict[str, int]:
        if self.role == "master":
            keys = ("scheduled", "sent", "late", "dropped")
            return {k: sum(int(c.get(k, 0)) for c in self.worker_arrivals.values()) for k in keys}
        return self.pacer.counts() if self.pacer else {"scheduled": 0, "sent": 0, "late": 0, "dropped": 0}

    def gate_bounds(self) -> tuple[float, float]:
        """Epoch start and end of the gate window (first gate stage start to last gate stage end)."""
        assert self.t0 is not None
        gates = self.plan.gate_stages()
        start = self.plan.stage_start(gates[0])
        end = self.plan.stage_start(gates[-1]) + self.plan.stages[gates[-1]].duration_s
        return self.t0 + start, self.t0 + end

    def generator(self, workers: int, *, until: float | None = None) -> dict[str, Any]:
        if self.role != "master":
            self.health.add_samples("local", self.cpu.take())
        start, end = self.gate_bounds()
        if until is not None:
            end = min(end, until)
        return self.health.summary(start, end, workers)

    def live(self, workers: int) -> dict[str, Any]:
        """Figures so far, shaped like summary.json, for the web UI and the progress line.

        Before the gate window starts there is no verdict (no ``verdict``, no ``reasons``): the
        warm-up is not meant to meet the budgets. ``checks`` still set the figures so far beside
        their limits."""
        now = time.time()
        # a master gets the workers' figures up to one report interval late
        live = dict(self.recorder.live(now, lag_s=3.0 if self.role == "master" else 0.0))
        live["arrivals"] = self.arrivals()
        live["generator"] = self.generator(workers, until=now) if self.t0 else {}
        live["abort"] = {"reason": self.abort_reason} if self.abort_reason else None
        live["stage"] = self.stage_info(now)
        if self.t0 is not None:
            verdict, checks, reasons = judge(self.plan, live)
            live["checks"] = [c.as_dict() for c in checks]
            if live["gate"]["started"] or self.abort_reason:  # an abort is judged whenever it comes
                live.update(verdict=verdict, reasons=reasons)
        return live

    def stage_info(self, now: float) -> dict[str, Any] | None:
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

    # --- the end ---------------------------------------------------------------------------

    def finalize(self, workers: int, request_names: dict[str, str], users: int = 0) -> dict[str, Any]:
        """Judge the run and return the summary (once per test). `users`: the largest user pool of
        the plan, which bounds the requests cut off in flight when the users were stopped."""
        if self.summary is not None:
            return self.summary
        finished = time.time()
        # `until`: a run stopped or aborted mid-gate is judged over the gate seconds that ran
        results = self.recorder.results(self.arrivals(), self.generator(workers), until=finished)
        results["abort"] = {"reason": self.abort_reason} if self.abort_reason else None
        if self.setup_problem:
            results["abort"] = {"reason": self.setup_problem}
        if self.mock is not None and self.plan.mock is not None and self.plan.mock.audit:
            try:
                audit = self.mock.audit()
                unmet = check_expectations(audit, self.plan.mock.expect)
                if unmet:
                    audit = {**audit, "ok": False, "violations": [*audit.get("violations", []), *unmet]}
                results["audit"] = audit
                results["reconciliation"] = reconcile(
                    results.get("seen", {}), audit, request_names, in_flight=users
                )
            except MockAdminError as exc:
                results["audit"] = {"ok": False, "violations": [f"audit unavailable: {exc}"], "totals": {}}
        seen = results.get("seen", {})
        run = {
            "requests": sum(c.get("successes", 0) + c.get("errors", 0) for c in seen.values()),
            "errors": sum(c.get("errors", 0) for c in seen.values()),
            "seconds": round(finished - (self.t0 or finished), 3),
        }
        results["host"] = self.host
        start, end = self.gate_bounds()
        window = {"start": iso(start), "end": iso(min(end, finished))}
        self.summary = build_summary(
            self.plan,
            results,
            started_at=iso(self.started_at or finished),
            finished_at=iso(finished),
            window=window,
            extra={"run": run},
        )
        return self.summary
