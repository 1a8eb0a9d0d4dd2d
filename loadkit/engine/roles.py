"""What each kind of Locust process does with a plan: one class per role, as Locust has one runner
class per role.

- `LocalRole` (one process): paces, measures, watches, judges.
- `MasterRole` (`--processes`, `--master`): admits only the workers of its own run (`--run-id`),
  tells them the shared start time and their share of the rate, merges their deltas, watches
  `abort_on` and the workers, seeds and audits the mock, judges.
- `WorkerRole`: says which run it belongs to, learns the plan from the master's start message,
  paces its share, measures, and ships a delta with every stats report.

The judging roles write what they know to the report directory every few seconds (a snapshot),
so that a run whose Locust process dies still gets its reports (`loadkit run` writes them).

Each role adds its listeners to its own environment's events, so nothing is module-global but the
plan clock scenarios read (`clock.plan_clock`).
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from typing import TYPE_CHECKING, Any

import gevent
from locust.env import Environment
from locust.rpc import Message
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner

from loadkit import history
from loadkit.engine.abort import AbortWatch
from loadkit.engine.messages import (
    HELLO_MESSAGE,
    REFUSED_MESSAGE,
    START_MESSAGE,
    HelloMessage,
    RefusedMessage,
    StartMessage,
    WorkerReport,
    check_report,
)
from loadkit.engine.pacing import install
from loadkit.engine.session import RunSession
from loadkit.engine.shape import PlanShape, shape_for
from loadkit.measure.figures import EMPTY_ARRIVALS, Arrivals, EndingHow, Generator
from loadkit.measure.generator import LOCAL, MASTER
from loadkit.measure.reconcile import check_expectations, reconcile
from loadkit.measure.recorder import DeltaError
from loadkit.measure.summary import Summary, build_summary
from loadkit.measure.told import TOLD_KEY
from loadkit.plan import Plan, PlanError, parse_plan
from loadkit.rehearsal.mock_admin import MockAdminError
from loadkit.reports import unique_dir, write_all
from loadkit.reports.progress import closing_lines, progress_line

if TYPE_CHECKING:
    from loadkit.engine.rehearsal import Rehearsal

log = logging.getLogger("loadkit")

PROGRESS_EVERY_S = 5.0
# How much a run whose Locust dies can lose. A snapshot of a 10-minute plan costs 5-10 ms of the
# event loop (BENCHMARKS.md), so not more often, and half-way between progress lines.
SNAPSHOT_EVERY_S = 5.0
RUNNING = ("spawning", "running")
DEFAULT_STOP_TIMEOUT_S = 10.0
# Plan time 0 comes this long after the test starts, so the first stage's users are spawned
# before the first arrival is due (otherwise the first arrivals are counted late).
LEAD_S = 0.75
GC_THRESHOLDS = (50_000, 50, 1_000)
# The plan keys a worker needs to pace (it may run on another machine without the plan file).
WORKER_PLAN_KEYS = ("name", "stages", "arrivals", "budgets", "drills")
MASTER_LAG_S = 3.0  # a master gets the workers' figures up to one report interval late
EXIT_USAGE = 3


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
        if ok and context:
            told = context.get(TOLD_KEY)
            if told is not None:
                session.told.add(name, *told)
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
    rehearsal: Rehearsal | None = None  # set by the plugin for a three-tier rehearsal

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
        events.test_stopping.add_listener(self.on_test_stopping)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        if web_ui is not None:
            from loadkit.engine.webui import install as install_tab

            install_tab(environment, self.live)
        self.interrupted = False
        if self.headless:
            gevent.signal_handler(signal.SIGINT, self.on_interrupt)
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

    def worker_facts(self) -> dict[str, Any]:
        """Master only: the workers expected and the strangers refused (Generator fields)."""
        return {}

    def known_until(self, now: float) -> float:
        """Up to when this process's figures are complete (a master's lag its workers' reports)."""
        return now

    # --- listeners ---------------------------------------------------------------------------

    def on_test_start(self, **_kw: Any) -> None:
        session = self.session
        assert session is not None
        t0 = time.time() + (LEAD_S if isinstance(self.environment.shape_class, PlanShape) else 0.0)
        self.summary = None
        self.begin(session, t0)
        session.prepare_mock()
        session.write_snapshot(self.arrivals(), self.generator(until=t0), now=t0)
        if self.rehearsal is not None:
            self.rehearsal.test_started(session)
            if self.rehearsal.failed_to_start:
                self.halt(session, self.rehearsal.failed_to_start)

    def halt(self, session: RunSession, reason: str) -> None:
        """Stop the run at once for a reason judged elsewhere (the service under test is gone)."""
        if session.halted is not None:
            return
        session.halted = reason
        log.error("loadkit: stopping the run: %s", reason)
        runner = self.environment.runner
        gevent.spawn(runner.quit if self.headless else runner.stop)

    def begin(self, session: RunSession, t0: float) -> None:
        session.begin(t0)

    def on_test_stop(self, **_kw: Any) -> None:
        """With the web UI a test can stop without Locust quitting: judge it then. The master
        waits a report interval so the workers' final figures are in."""
        if self.headless:
            return
        delay = WORKER_REPORT_INTERVAL + 1.0 if isinstance(self.environment.runner, MasterRunner) else 0.0
        gevent.spawn_later(delay, self.finish, "stopped")

    def on_test_stopping(self, **_kw: Any) -> None:
        """The test begins to stop (plan done, abort, Ctrl-C, the web UI's STOP): its figures are
        cut here, not when the users have finished stopping."""
        if self.session is not None and self.session.stopping_at is None:
            self.session.stopping_at = time.time()

    def on_interrupt(self) -> None:
        """Ctrl-C (SIGINT) of a headless run: end the test as its plan's end would (users finish
        their task, workers send their last figures); Locust then quits and the run is judged as
        interrupted. Left to Locust's KeyboardInterrupt, it would land in whichever user greenlet
        happens to run. Before a test starts (or with a locustfile's own shape): Locust's own
        Ctrl-C. Once the test is ending, further Ctrl-Cs are ignored: the reports get written."""
        session = self.session
        shape = self.environment.shape_class
        if session is None or session.t0 is None or not isinstance(shape, PlanShape):
            raise KeyboardInterrupt
        if self.interrupted or session.judged:
            return
        self.interrupted = True
        log.info("loadkit: interrupted: ending the test, then judging what ran")
        shape.end()

    def on_quitting(self, **_kw: Any) -> None:
        """Locust is exiting: judge the test if nobody did. Interrupted (SIGINT/SIGTERM) while
        running, stop it first, so that the workers' last figures come in before it is judged; a
        second Ctrl-C must not cut the writing of the reports short. Then the service under test
        (if loadkit started one) is stopped."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if self.environment.runner.state in RUNNING:
                self.environment.runner.quit()
            self.finish("interrupted" if self.headless else "stopped")
        finally:
            if self.rehearsal is not None:
                self.rehearsal.stop()

    # --- figures ---------------------------------------------------------------------------

    def generator(self, *, until: float | None = None) -> Generator:
        session = self.session
        assert session is not None
        self.collect_health(session)
        return {**session.generator(self.workers(), until=until), **self.worker_facts()}  # type: ignore[typeddict-item]

    def live(self) -> dict[str, Any]:
        session = self.session
        if session is None:
            return {}
        generator = self.generator(until=time.time()) if session.t0 else {}
        live = session.live(self.arrivals(), generator, lag_s=self.lag_s)  # type: ignore[arg-type]
        if self.rehearsal is not None:
            live.update(self.rehearsal.live(session, time.time()))
        return live

    def monitor(self) -> None:
        """Once a second: generator health, workers, abort_on, the live snapshot and the headless
        progress line."""
        runner = self.environment.runner
        watch: AbortWatch | None = None
        last_progress, last_snapshot = 0.0, time.time() - SNAPSHOT_EVERY_S / 2
        while self.session is not None:
            gevent.sleep(1.0)
            session = self.session
            now = time.time()
            self.collect_health(session)
            if runner.state not in RUNNING or session.t0 is None:
                watch = None
                continue
            self.watch_workers(session)
            if self.rehearsal is not None and (reason := self.rehearsal.watch(session)):
                self.halt(session, reason)
            rule = session.plan.safety.abort_on
            if rule is not None:
                watch = watch or AbortWatch(rule)
                reason = watch.feed(now, runner.stats.total.num_requests, runner.stats.total.num_failures)
                if reason and session.abort_reason is None:
                    session.abort_reason = reason
                    log.error("loadkit: %s", reason)
                    gevent.spawn(runner.stop)
            if now - last_snapshot >= SNAPSHOT_EVERY_S:
                last_snapshot = now
                known = self.known_until(now)
                session.write_snapshot(self.arrivals(), self.generator(until=known), now=known)
            if self.headless and now - last_progress >= PROGRESS_EVERY_S:
                last_progress = now
                try:
                    print(progress_line(self.live()), flush=True)
                except Exception:  # a progress line must never break the run
                    log.exception("loadkit: progress line failed")

    # --- the end -----------------------------------------------------------------------------

    def finish(self, stopped_how: EndingHow) -> None:
        """Judge the test once, write the reports and the history, set the exit code. The figures
        and the ending are cut when the test began to stop (Ctrl-C, abort, STOP, the plan's end)."""
        session = self.session
        if session is None or session.t0 is None or session.judged:
            return
        session.judged = True
        now = time.time()
        cut = min(session.stopping_at or now, now)
        # arrivals are counted up to now: every slot taken while stopping was due by now
        evidence = session.evidence(self.arrivals(), self.generator(until=cut), finished=cut)
        evidence["ending"] = session.ending(cut, stopped_how=stopped_how)
        evidence["baseline"] = session.baseline
        if self.rehearsal is not None:
            self.rehearsal.books(session, evidence, cut)  # type: ignore[arg-type]
        self.integrity(session, evidence)
        if self.rehearsal is not None:
            self.rehearsal.reconcile(session, evidence)  # type: ignore[arg-type]
        summary = build_summary(
            session.plan,
            evidence,
            started_at=session.started_at or now,
            finished_at=now,
            host=session.host,
        )
        self.summary = summary
        run_dir = unique_dir(session.report_dir) if session.report_dir else None
        if run_dir is not None:
            options = self.environment.parsed_options
            db = history.db_for(getattr(options, "history_db", None), run_dir)
            trend = None
            try:
                history.record_run(db, summary, run_dir)
                trend = history.trend(db, session.plan.name, until=summary["started_at"])
            except Exception as exc:  # the history is a convenience; the reports are written
                log.warning("loadkit: could not record the run in %s: %s", db, exc)
            write_all(run_dir, summary, trend)
            session.drop_snapshot()
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
    """Admits only workers that say they belong to this run (`--run-id`): another run's worker
    (two `--processes` runs on one machine, a worker pointed at the wrong master) is told to quit
    and its figures are ignored, and the run cannot pass."""

    lag_s = MASTER_LAG_S

    def __init__(self, environment: Environment, session: RunSession, web_ui: Any) -> None:
        super().__init__(environment, session, web_ui)
        self.worker_arrivals: dict[str, Arrivals] = {}
        options = environment.parsed_options
        self.run_id: str | None = getattr(options, "run_id", None)
        if options is not None and hasattr(options, "run_id"):
            # Locust copies the master's custom options into each worker's with every spawn
            # message, and a worker joining a test under way gets one before it can say which
            # run it is of: its run id would become ours. Keep ours out of what is sent.
            del options.run_id
        self.members: set[str] = set()
        self.strangers: list[str] = []
        self.start_message: StartMessage | None = None
        self.started: set[str] = set()  # the workers sent this test's start message
        self.reported_at: dict[str, float] = {}  # worker -> when its last report of this test came
        environment.runner.register_message(HELLO_MESSAGE, self.on_hello)
        environment.events.worker_report.add_listener(self.on_worker_report)

    def _ours(self) -> list[str]:
        """Connected workers not known to belong to another run (a worker says which run it is
        of right after it connects; one that has not yet said so counts as ours meanwhile)."""
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        return [c.id for c in runner.clients.values() if c.state != "missing" and c.id not in self.strangers]

    def workers(self) -> int:
        members = [w for w in self._ours() if w in self.members]
        return max(len(members), self.session.health.max_workers if self.session else 0)

    def known_until(self, now: float) -> float:
        """The figures are complete up to the oldest of the workers' last reports."""
        times = [self.reported_at[w] for w in self._ours() if w in self.reported_at]
        return min(times, default=now)

    def worker_facts(self) -> dict[str, Any]:
        expected = self.start_message["workers"] if self.start_message else None
        return {"workers_expected": expected, "strangers": list(self.strangers)}

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
        clients = [c for c in runner.clients.values() if c.id in self.members]  # said they are ours
        session.health.observe_workers(
            alive=[c.id for c in clients if c.state != "missing"],
            missing=[c.id for c in clients if c.state == "missing"],
        )

    def begin(self, session: RunSession, t0: float) -> None:
        session.begin(t0)
        self.worker_arrivals.clear()
        self.reported_at.clear()
        raw = session.plan.raw
        self.start_message = {
            "t0": t0,
            "workers": max(1, len(self._ours())),
            "plan": {k: raw[k] for k in WORKER_PLAN_KEYS if k in raw},
        }
        self.started = set(self._ours())
        for client_id in self.started:
            self.environment.runner.send_message(START_MESSAGE, self.start_message, client_id=client_id)

    def on_hello(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        """A worker says which run it belongs to, right after it connects."""
        data: HelloMessage = msg.data if isinstance(msg.data, dict) else {"run_id": None}
        node = str(msg.node_id)
        theirs = data.get("run_id")
        if theirs == self.run_id:
            self.members.add(node)
            if (
                self.start_message is not None
                and node not in self.started
                and environment.runner.state in RUNNING
            ):
                # joined a test under way: pace a share rather than run unpaced (the run is then
                # judged on more workers than its rate was split among: inconclusive)
                self.started.add(node)
                environment.runner.send_message(START_MESSAGE, self.start_message, client_id=node)
            return
        if node not in self.strangers:
            self.strangers.append(node)
        reason = (
            f"this master runs load test {self.run_id or '(no run id)'}, the worker belongs to "
            f"{theirs or '(no run id)'}: start workers with the master's --run-id"
        )
        log.error("loadkit: refused worker %s: %s", node, reason)
        self._expel(node, reason)

    def _expel(self, node: str, reason: str) -> None:
        """Tell a worker of another run to quit and forget it, without ending this run: Locust's
        own handling of a worker that quits (rebalancing its users onto ours) when other workers
        remain; else just dropping it (Locust's handling would end this run with its last worker)."""
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        refused: RefusedMessage = {"reason": reason}
        runner.send_message(REFUSED_MESSAGE, refused, client_id=node)  # type: ignore[arg-type]
        runner.send_message("quit", None, client_id=node)
        if node not in runner.clients:
            return
        if runner.state in RUNNING and runner.worker_count > 1:
            runner.handle_message(node, Message("quit", None, node))
        else:
            del runner.clients[node]

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        session = self.session
        payload = data.get("loadkit")
        if session is None or not payload or client_id not in self.members:
            return  # not a loadkit worker of this run: its figures are not this run's
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
        self.reported_at[client_id] = time.time()
        session.health.add(client_id, report["health"])
        session.told.extend(report["told"])


class WorkerRole(_Pacing):
    """Learns the plan from the master's start message: a remote worker needs no plan file."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.session = None
        runner = environment.runner
        runner.register_message(START_MESSAGE, self.on_start_message)
        runner.register_message(REFUSED_MESSAGE, self.on_refused)
        environment.events.report_to_master.add_listener(self.on_report_to_master)
        # connected by now (Locust fires `init` after the worker's handshake): say whose we are
        hello: HelloMessage = {"run_id": getattr(environment.parsed_options, "run_id", None)}
        runner.send_message(HELLO_MESSAGE, hello)  # type: ignore[arg-type]

    def on_refused(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        """The master belongs to another run; it also sent `quit`, so this worker ends (exit 3)."""
        reason = (
            (msg.data or {}).get("reason", "another run") if isinstance(msg.data, dict) else "another run"
        )
        log.error("loadkit: the master refused this worker: %s", reason)
        environment.process_exit_code = EXIT_USAGE

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
        if session.t0 == float(data["t0"]):
            return  # this test's start, already under way here
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
            "told": session.told.take(),
        }
        data["loadkit"] = report


def judging_role(environment: Environment, session: RunSession, web_ui: Any) -> LocalRole | MasterRole:
    if isinstance(environment.runner, MasterRunner):
        return MasterRole(environment, session, web_ui)
    return LocalRole(environment, session, web_ui)
