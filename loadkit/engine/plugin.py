"""loadkit inside Locust: options, listeners and messages, through Locust's own extension points.

Importing this module registers everything on `locust.events` (once: Python caches the module).
Locustfiles that `import loadkit.platform.user` get it for free; `loadkit run` adds `locust_entry.py` to
`-f` for plain Locust files. Without `--plan` nothing changes: Locust runs as usual.

Roles: a local runner paces, measures and judges; with master/workers (or `--processes`), the
master tells each worker the shared start time and its share of the rate (`loadkit:start`),
workers pace and measure and ship deltas in `report_to_master`, and the master merges them,
seeds/audits the mock, watches `abort_on`, and judges in `quitting` (after the final reports).
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner, WorkerRunner

from loadkit import history
from loadkit.engine.abort import AbortWatch
from loadkit.engine.pacing import install
from loadkit.engine.session import RunSession
from loadkit.engine.shape import PlanShape, shape_for
from loadkit.plan import PlanError, load_plan, parse_plan
from loadkit.plan.safety import UnsafeHostError, check_host
from loadkit.rehearsal.mock_admin import MockAdmin
from loadkit.reports import default_run_dir, write_all
from loadkit.reports.progress import closing_lines, progress_line

log = logging.getLogger("loadkit")

START_MESSAGE = "loadkit:start"
PROGRESS_EVERY_S = 5.0
DEFAULT_STOP_TIMEOUT_S = 10.0
# Plan time 0 comes this long after the test starts, so the first stage's users are spawned
# before the first arrival is due (otherwise the first arrivals are counted late).
LEAD_S = 0.75
GC_THRESHOLDS = (50_000, 50, 1_000)
# The plan keys a worker needs to pace (it may run on another machine without the plan file).
WORKER_PLAN_KEYS = ("name", "stages", "arrivals", "budgets")

_session: RunSession | None = None


def current_session() -> RunSession | None:
    """The session of this process (None without --plan), for tests and the web UI."""
    return _session


@events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_kw: Any) -> None:
    # Straight on Locust's parser: its extra keywords (is_secret, env_var) are not known to groups.
    group = parser
    group.add_argument(
        "--plan", env_var="LOADKIT_PLAN", default=None, help="Event plan (YAML) to run and judge"
    )
    group.add_argument(
        "--report-dir",
        env_var="LOADKIT_REPORT_DIR",
        default=None,
        help="Where summary.json, junit.xml, summary.md and report.html go (default reports/<plan>-<time>)",
    )
    group.add_argument(
        "--mock-url",
        env_var="LOADKIT_MOCK_URL",
        default=None,
        help="Admin base URL of the mock platform (default: the host, when --mock-admin-token is set)",
    )
    group.add_argument(
        "--mock-admin-token",
        env_var="LOADKIT_MOCK_ADMIN_TOKEN",
        default=None,
        is_secret=True,
        help="Admin token of the mock platform: seed it from the plan and audit its ledger",
    )
    group.add_argument(
        "--history-db",
        env_var="LOADKIT_HISTORY_DB",
        default=None,
        help="SQLite run history (default: loadkit-history.sqlite3 beside the report directory)",
    )


def _fail_setup(message: str) -> None:
    """A usage or configuration error: say it plainly and exit 3 before any request."""
    sys.stderr.write(f"loadkit: {message}\n")
    sys.stderr.flush()
    raise SystemExit(3)


@events.init.add_listener
def _on_init(environment: Environment, runner: Any = None, web_ui: Any = None, **_kw: Any) -> None:
    global _session
    runner = runner or environment.runner
    if isinstance(runner, WorkerRunner):
        # Workers learn the plan from the master's start message (they may have no plan file).
        runner.register_message(START_MESSAGE, _on_start_message)
        return
    opts = environment.parsed_options
    plan_path = getattr(opts, "plan", None) if opts is not None else None
    if not plan_path:
        return
    try:
        plan = load_plan(plan_path)
    except PlanError as exc:
        _fail_setup(str(exc))
    host = environment.host or plan.host
    if not host:
        _fail_setup(f"{plan_path}: no target host: give --host or `host:` in the plan")
    try:
        check_host(host, plan.safety.allow_hosts)
    except UnsafeHostError as exc:
        _fail_setup(f"{plan_path}: {exc}")
    environment.host = host
    _default_stop_timeout(environment)
    _quiet_gc()

    mock = None
    if getattr(opts, "mock_admin_token", None):
        mock = MockAdmin(opts.mock_url or host, opts.mock_admin_token)
    elif plan.mock is not None and plan.mock.seed is not None:
        log.warning(
            "loadkit: the plan seeds a mock platform but no --mock-admin-token was given; not seeding"
        )
    report_dir = Path(opts.report_dir) if getattr(opts, "report_dir", None) else default_run_dir(plan.name)
    role = "master" if isinstance(runner, MasterRunner) else "local"
    _session = RunSession(plan, role=role, report_dir=report_dir, mock=mock, host=host)

    if environment.shape_class is None:
        shape = shape_for(plan, LEAD_S)
        shape.runner = runner
        environment.shape_class = shape
    else:
        log.info("loadkit: the locustfile has its own load shape; pacing still follows the plan")
    if role == "local":
        install(environment.user_classes, _session.new_pacer(1.0))
    if web_ui is not None:
        from loadkit.engine.webui import install as install_tab

        install_tab(environment, lambda: _session.live(_workers(environment)) if _session else {})
    gevent.spawn(_monitor, environment)


def _quiet_gc() -> None:
    """A load generator must not pause: CPython's full collections over a heap of users and
    sessions stall every greenlet at once, and the arrivals due meanwhile go out late. Move what
    exists at start-up out of the collector's way and collect the old generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _default_stop_timeout(environment: Environment) -> None:
    """Let a task under way finish when the run ends: a user killed mid-request leaves an effect
    in the ledger that no user saw (reconciliation allows for it, but fewer is better)."""
    if not environment.stop_timeout:
        environment.stop_timeout = DEFAULT_STOP_TIMEOUT_S


def _workers(environment: Environment) -> int:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return max(runner.worker_count, _session.health.max_workers if _session else 0)
    return 1


def _on_start_message(environment: Environment, msg: Any, **_kw: Any) -> None:
    """Worker: a test starts at `t0` on the shared clock; pace our 1/N share of the plan."""
    global _session
    data = msg.data or {}
    if _session is None:
        try:
            plan = parse_plan(data["plan"])
        except (PlanError, KeyError) as exc:
            log.error("loadkit: cannot pace, the master's plan did not parse: %s", exc)
            return
        _session = RunSession(plan, role="worker", report_dir=None, mock=None)
        _default_stop_timeout(environment)
        _quiet_gc()
        install(environment.user_classes, _session.new_pacer(1.0))
        gevent.spawn(_sample_cpu)
    workers = max(1, int(data.get("workers", 1)))
    assert _session.pacer is not None
    _session.pacer.set_share(1.0 / workers)
    index = max(0, getattr(environment.runner, "worker_index", 0)) % workers
    _session.begin(float(data["t0"]), phase=(index + 0.5) / workers)


def _sample_cpu() -> None:
    while _session is not None:
        _session.cpu.sample()
        gevent.sleep(1.0)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kw: Any) -> None:
    runner = environment.runner
    if _session is None or isinstance(runner, WorkerRunner):
        return
    t0 = time.time() + (LEAD_S if isinstance(environment.shape_class, PlanShape) else 0.0)
    _session.begin(t0)
    _session.prepare_mock()
    if isinstance(runner, MasterRunner):
        raw = _session.plan.raw
        plan = {k: raw[k] for k in WORKER_PLAN_KEYS if k in raw}
        runner.send_message(START_MESSAGE, {"t0": t0, "workers": max(1, runner.worker_count), "plan": plan})


@events.request.add_listener
def _on_request(
    name: str,
    response_time: float | None,
    exception: BaseException | None = None,
    context: dict[str, Any] | None = None,
    **_kw: Any,
) -> None:
    session = _session
    if session is None or session.t0 is None or response_time is None:
        return
    ok = exception is None
    session.recorder.record(
        name,
        t=time.time(),
        response_ms=response_time,
        lateness_s=session.pacer.lateness_of_current() if session.pacer else 0.0,
        ok=ok,
        outcome=(context or {}).get("loadkit_outcome") if ok else None,
        error=None if ok else f"{type(exception).__name__}: {exception}"[:300],
    )


@events.report_to_master.add_listener
def _on_report_to_master(data: dict[str, Any], **_kw: Any) -> None:
    session = _session
    if session is None or session.t0 is None:
        return
    data["loadkit"] = {
        "t0": session.t0,
        "rec": session.recorder.take_delta(),
        "arrivals": session.pacer.counts() if session.pacer else {},
        "cpu": session.cpu.take(),
    }


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    session = _session
    payload = data.get("loadkit")
    if session is None or not payload or payload.get("t0") != session.t0:
        return  # a late report from a previous test in the web UI: not this run's figures
    session.recorder.merge(payload["rec"])
    session.worker_arrivals[client_id] = payload["arrivals"]
    session.health.add_samples(client_id, payload["cpu"])


def _monitor(environment: Environment) -> None:
    """Master/local, once a second: CPU, workers, abort_on, and the headless progress line."""
    runner = environment.runner
    headless = bool(getattr(environment.parsed_options, "headless", False))
    watch: AbortWatch | None = None
    last_progress = 0.0
    while _session is not None:
        gevent.sleep(1.0)
        session = _session
        now = time.time()
        session.cpu.sample()
        if session.role == "master":
            session.health.add_samples("master", session.cpu.take())
        if runner.state not in ("spawning", "running") or session.t0 is None:
            watch = None
            continue
        if isinstance(runner, MasterRunner):
            clients = runner.clients.values()
            session.health.observe_workers(
                alive=[c.id for c in clients if c.state != "missing"],
                missing=[c.id for c in clients if c.state == "missing"],
            )
        rule = session.plan.safety.abort_on
        if rule is not None:
            watch = watch or AbortWatch(rule)
            reason = watch.feed(now, runner.stats.total.num_requests, runner.stats.total.num_failures)
            if reason and session.abort_reason is None:
                session.abort_reason = reason
                log.error("loadkit: %s", reason)
                gevent.spawn(runner.stop)
        if headless and now - last_progress >= PROGRESS_EVERY_S:
            last_progress = now
            try:
                print(progress_line(session.live(_workers(environment))), flush=True)
            except Exception:  # a progress line must never break the run
                log.exception("loadkit: progress line failed")


def _finish(environment: Environment) -> None:
    session = _session
    if session is None or session.t0 is None or session.summary is not None:
        return
    from loadkit.platform.client import REQUEST_NAMES

    pool = max(session.plan.users_for(i) for i in range(len(session.plan.stages)))
    summary = session.finalize(_workers(environment), REQUEST_NAMES, users=pool)
    run_dir = _unique_dir(session.report_dir) if session.report_dir else None
    if run_dir is not None:
        write_all(run_dir, summary)
        db = Path(environment.parsed_options.history_db or run_dir.parent / "loadkit-history.sqlite3")
        try:
            history.record_run(db, summary, run_dir)
        except Exception as exc:  # the history is a convenience; the reports are written
            log.warning("loadkit: could not record the run in %s: %s", db, exc)
    environment.process_exit_code = summary["exit_code"]
    print("\n".join(closing_lines(summary, str(run_dir) if run_dir else None)), flush=True)


def _unique_dir(base: Path) -> Path:
    """The web UI can run a plan several times: never overwrite an earlier run's reports."""
    if not base.exists() or not any(base.glob("summary.json")):
        return base
    n = 2
    while (candidate := base.with_name(f"{base.name}-{n}")).exists():
        n += 1
    return candidate


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_kw: Any) -> None:
    """With the web UI a test can stop without Locust quitting: judge it then. The master waits a
    report interval so the workers' final figures are in."""
    if _session is None or getattr(environment.parsed_options, "headless", False):
        return
    if isinstance(environment.runner, WorkerRunner):
        return
    delay = WORKER_REPORT_INTERVAL + 1.0 if isinstance(environment.runner, MasterRunner) else 0.0
    gevent.spawn_later(delay, _finish, environment)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_kw: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    _finish(environment)
