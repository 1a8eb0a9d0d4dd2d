"""What each kind of Locust process does with a plan: one class per role, as Locust has one runner
class per role.

- `LocalRole` (one process): paces, measures, watches, judges.
- `MasterRole` (`--processes`, `--master`): tells the workers the shared start time and their share
  of the rate, merges their deltas, watches `abort_on` and the workers, seeds and audits the mock,
  judges.
- `WorkerRole`: learns the plan from the master's start message, paces its share, measures, and
  ships a delta with every stats report.

Each role adds its listeners to its own environment's events, so nothing is module-global but the
plan clock scenarios read (`clock.plan_clock`).
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner

from loadkit import history
from loadkit.engine.abort import AbortWatch
from loadkit.engine.messages import START_MESSAGE, StartMessage, WorkerReport, check_report
from loadkit.engine.pacing import install
from loadkit.engine.session import RunSession
from loadkit.engine.shape import PlanShape, shape_for
from loadkit.measure.figures import EMPTY_ARRIVALS, Arrivals, EndingHow, Generator
from loadkit.measure.generator import LOCAL, MASTER
from loadkit.measure.reconcile import check_expectations, reconcile
from loadkit.measure.recorder import DeltaError
from loadkit.measure.summary import Summary, build_summary
from loadkit.plan import Plan, PlanError, parse_plan
from loadkit.rehearsal.mock_admin import MockAdminError
from loadkit.reports import write_all
from loadkit.reports.progress import closing_lines, progress_line

log = logging.getLogger("loadkit")

PROGRESS_EVERY_S = 5.0
DEFAULT_STOP_TIMEOUT_S = 10.0
# Plan time 0 comes this long after the test starts, so the first stage's users are spawned
# before the first arrival is due (otherwise the first arrivals are counted late).
LEAD_S = 0.75
GC_THRESHOLDS = (50_000, 50, 1_000)
# The plan keys a worker needs to pace (it may run on another machine without the plan file).
WORKER_PLAN_KEYS = ("name", "stages", "arrivals", "budgets")
MASTER_LAG_S = 3.0  # a master gets the workers' figures up to one report interval late


def quiet_gc() -> None:
    """A load generator must not pause: CPython's full collections over a heap of users and
    sessions stall every greenlet at once, and the arrivals due meanwhile go out late. Move what
    exists at start-up out of the collector's way and collect the old generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def default_stop_timeout(environment: Environment) -> None:
    """Let a task under way finish when the run ends: a user killed mid-request leaves an effect
    in the ledger that no user saw (reconciliation allows for it, but fewer is better)."""
    if not environment.stop_timeout:
        environment.stop_timeout = DEFAULT_STOP_TIMEOUT_S


class _Pacing:
    """Local and worker processes: pace the users and record their requests."""

    environment: Environment
    session: RunSession | None

    def start_pacing(self, session: RunSession) -> None:
        install(self.environment.user_classes, session.new_pacer())
        self.environment.events.request.add_listener(self.on_request)

    def on_request(
        self,
        name: str,
        response_time: float | None,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_kw: Any,
    ) -> None:
        session = self.session
        if session is None or session.t0 is None or response_time is None:
            return
        ok = exception is None
        session.recorder.record(
            name,
            t=time.time(),
            response_ms=response_time,
            lateness_s=session.pacer.request_done(response_time) if session.pacer else 0.0,
            ok=ok,
            outcome=(context or {}).get("loadkit_outcome") if ok else None,
            error=None if ok else f"{type(exception).__name__}: {exception}"[:300],
        )


class _Judging:
    """Local and master processes: the plan from --plan, the shape, the monitor, the verdict."""

    lag_s = 0.0

    def __init__(self, environment: Environment, session: RunSession, web_ui: Any) -> None:
        self.environment = environment
        self.session: RunSession | None = session
        self.headless = bool(getattr(environment.parsed_options, "headless", False))
        self.summary: Summary | None = None
        if environment.shape_class is None:
            shape = shape_for(session.plan, LEAD_S)
            shape.runner = environment.runner
            environment.shape_class = shape
        else:
            log.info("loadkit: the locustfile has its own load shape; pacing still follows the plan")
        events = environment.events
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        if web_ui is not None:
            from loadkit.engine.webui import install as install_tab

            install_tab(environment, self.live)
        gevent.spawn(self.monitor)

    # --- what differs between local and master -----------------------------------------------

    def workers(self) -> int:
        return 1

    def arrivals(self) -> Arrivals:
        raise NotImplementedError

    def collect_health(self, session: RunSession) -> None:
        """Add this process's own loop lag, CPU and late arrivals to the run's health."""
        raise NotImplementedError

    def watch_workers(self, session: RunSession) -> None:
        """Master only: note workers that went missing."""

    # --- listeners ---------------------------------------------------------------------------

    def on_test_start(self, **_kw: Any) -> None:
        session = self.session
        assert session is not None
        t0 = time.time() + (LEAD_S if isinstance(self.environment.shape_class, PlanShape) else 0.0)
        self.summary = None
        self.begin(session, t0)
        session.prepare_mock()

    def begin(self, session: RunSession, t0: float) -> None:
        session.begin(t0)

    def on_test_stop(self, **_kw: Any) -> None:
        """With the web UI a test can stop without Locust quitting: judge it then. The master
        waits a report interval so the workers' final figures are in."""
        if self.headless:
            return
        delay = WORKER_REPORT_INTERVAL + 1.0 if isinstance(self.environment.runner, MasterRunner) else 0.0
        gevent.spawn_later(delay, self.finish, "stopped")

    def on_quitting(self, **_kw: Any) -> None:
        self.finish("interrupted" if self.headless else "stopped")

    # --- figures ---------------------------------------------------------------------------

    def generator(self, *, until: float | None = None) -> Generator:
        session = self.session
        assert session is not None
        self.collect_health(session)
        return session.generator(self.workers(), until=until)

    def live(self) -> dict[str, Any]:
        session = self.session
        if session is None:
            return {}
        generator = self.generator(until=time.time()) if session.t0 else {}
        return session.live(self.arrivals(), generator, lag_s=self.lag_s)  # type: ignore[arg-type]

    def monitor(self) -> None:
        """Once a second: generator health, workers, abort_on, and the headless progress line."""
        runner = self.environment.runner
        watch: AbortWatch | None = None
        last_progress = 0.0
        while self.session is not None:
            gevent.sleep(1.0)
            session = self.session
            now = time.time()
            self.collect_health(session)
            if runner.state not in ("spawning", "running") or session.t0 is None:
                watch = None
                continue
            self.watch_workers(session)
            rule = session.plan.safety.abort_on
            if rule is not None:
                watch = watch or AbortWatch(rule)
                reason = watch.feed(now, runner.stats.total.num_requests, runner.stats.total.num_failures)
                if reason and session.abort_reason is None:
                    session.abort_reason = reason
                    log.error("loadkit: %s", reason)
                    gevent.spawn(runner.stop)
            if self.headless and now - last_progress >= PROGRESS_EVERY_S:
                last_progress = now
                try:
                    print(progress_line(self.live()), flush=True)
                except Exception:  # a progress line must never break the run
                    log.exception("loadkit: progress line failed")

    # --- the end -----------------------------------------------------------------------------

    def finish(self, stopped_how: EndingHow) -> None:
        """Judge the test once, write the reports and the history, set the exit code."""
        session = self.session
        if session is None or session.t0 is None or session.judged:
            return
        session.judged = True
        finished = time.time()
        evidence = session.evidence(self.arrivals(), self.generator(), finished=finished)
        evidence["ending"] = session.ending(finished, stopped_how=stopped_how)
        self.integrity(session, evidence)
        summary = build_summary(
            session.plan,
            evidence,
            started_at=session.started_at or finished,
            finished_at=finished,
            host=session.host,
        )
        self.summary = summary
        run_dir = _unique_dir(session.report_dir) if session.report_dir else None
        if run_dir is not None:
            write_all(run_dir, summary)
            options = self.environment.parsed_options
            db = Path(getattr(options, "history_db", None) or run_dir.parent / history.DB_NAME)
            try:
                history.record_run(db, summary, run_dir)
            except Exception as exc:  # the history is a convenience; the reports are written
                log.warning("loadkit: could not record the run in %s: %s", db, exc)
        self.environment.process_exit_code = summary["exit_code"]
        print("\n".join(closing_lines(summary, str(run_dir) if run_dir else None)), flush=True)

    def integrity(self, session: RunSession, evidence: dict[str, Any]) -> None:
        """The mock's audit and the reconciliation of what users saw with its ledger."""
        plan = session.plan
        if session.mock is None or plan.mock is None or not plan.mock.audit:
            return
        from loadkit.platform.client import REQUEST_NAMES

        pool = max(plan.users_for(i) for i in range(len(plan.stages)))
        try:
            audit = session.mock.audit()
        except MockAdminError as exc:
            evidence["audit"] = {"ok": False, "violations": [f"audit unavailable: {exc}"], "totals": {}}
            return
        unmet = check_expectations(audit, plan.mock.expect)
        if unmet:
            audit = {**audit, "ok": False, "violations": [*audit.get("violations", []), *unmet]}
        evidence["audit"] = audit
        evidence["reconciliation"] = reconcile(session.recorder.seen(), audit, REQUEST_NAMES, in_flight=pool)


def _unique_dir(base: Path) -> Path:
    """The web UI can run a plan several times: never overwrite an earlier run's reports."""
    if not base.exists() or not any(base.glob("summary.json")):
        return base
    n = 2
    while (candidate := base.with_name(f"{base.name}-{n}")).exists():
        n += 1
    return candidate


class LocalRole(_Pacing, _Judging):
    def __init__(self, environment: Environment, session: RunSession, web_ui: Any) -> None:
        _Judging.__init__(self, environment, session, web_ui)
        self.start_pacing(session)

    def arrivals(self) -> Arrivals:
        session = self.session
        return session.pacer.counts() if session and session.pacer else dict(EMPTY_ARRIVALS)  # type: ignore[return-value]

    def collect_health(self, session: RunSession) -> None:
        session.collect_health(LOCAL)


class MasterRole(_Judging):
    lag_s = MASTER_LAG_S

    def __init__(self, environment: Environment, session: RunSession, web_ui: Any) -> None:
        super().__init__(environment, session, web_ui)
        self.worker_arrivals: dict[str, Arrivals] = {}
        environment.events.worker_report.add_listener(self.on_worker_report)

    def workers(self) -> int:
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        return max(runner.worker_count, self.session.health.max_workers if self.session else 0)

    def arrivals(self) -> Arrivals:
        total = dict(EMPTY_ARRIVALS)
        for counts in self.worker_arrivals.values():
            for key in total:
                total[key] += int(counts.get(key, 0))
        return total  # type: ignore[return-value]

    def collect_health(self, session: RunSession) -> None:
        session.collect_health(MASTER)

    def watch_workers(self, session: RunSession) -> None:
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        clients = runner.clients.values()
        session.health.observe_workers(
            alive=[c.id for c in clients if c.state != "missing"],
            missing=[c.id for c in clients if c.state == "missing"],
        )

    def begin(self, session: RunSession, t0: float) -> None:
        session.begin(t0)
        self.worker_arrivals.clear()
        runner = self.environment.runner
        raw = session.plan.raw
        message: StartMessage = {
            "t0": t0,
            "workers": max(1, runner.worker_count),
            "plan": {k: raw[k] for k in WORKER_PLAN_KEYS if k in raw},
        }
        runner.send_message(START_MESSAGE, message)

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        session = self.session
        payload = data.get("loadkit")
        if session is None or not payload:
            return
        try:
            report = check_report(payload)
        except DeltaError as exc:
            log.error("loadkit: ignoring a malformed report from worker %s: %s", client_id, exc)
            return
        if report["t0"] != session.t0:
            return  # a late report from a previous test in the web UI: not this run's figures
        try:
            session.recorder.merge(report["recorder"])
        except DeltaError as exc:
            log.error("loadkit: ignoring a malformed delta from worker %s: %s", client_id, exc)
            return
        self.worker_arrivals[client_id] = report["arrivals"]
        session.health.add(client_id, report["health"])


class WorkerRole(_Pacing):
    """Learns the plan from the master's start message: a remote worker needs no plan file."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.session = None
        environment.runner.register_message(START_MESSAGE, self.on_start_message)
        environment.events.report_to_master.add_listener(self.on_report_to_master)

    def on_start_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        """A test starts at `t0` on the shared clock; pace our 1/N share of the plan."""
        data: StartMessage = msg.data or {}
        if self.session is None:
            try:
                plan: Plan = parse_plan(data["plan"])
            except (PlanError, KeyError, TypeError) as exc:
                log.error("loadkit: cannot pace, the master's plan did not parse: %s", exc)
                return
            self.session = RunSession(plan)
            default_stop_timeout(environment)
            quiet_gc()
            self.start_pacing(self.session)
        session = self.session
        workers = max(1, int(data.get("workers", 1)))
        assert session.pacer is not None
        session.pacer.set_share(1.0 / workers)
        index = max(0, getattr(environment.runner, "worker_index", 0)) % workers
        session.begin(float(data["t0"]), phase=(index + 0.5) / workers)

    def on_report_to_master(self, data: dict[str, Any], **_kw: Any) -> None:
        session = self.session
        if session is None or session.t0 is None:
            return
        report: WorkerReport = {
            "t0": session.t0,
            "recorder": session.recorder.take_delta(),
            "arrivals": session.pacer.counts() if session.pacer else dict(EMPTY_ARRIVALS),  # type: ignore[typeddict-item]
            "health": session.health_delta(),
        }
        data["loadkit"] = report


def judging_role(environment: Environment, session: RunSession, web_ui: Any) -> LocalRole | MasterRole:
    if isinstance(environment.runner, MasterRunner):
        return MasterRole(environment, session, web_ui)
    return LocalRole(environment, session, web_ui)
