"""loadkit inside Locust: one `LoadkitPlugin` per environment, through Locust's extension points.

Importing this module registers loadkit's command-line options and an `init` listener on
`locust.events` (once: Python caches the module). Locustfiles that import loadkit's user classes
get it for free; `loadkit run` adds `locust_entry.py` to `-f` for plain Locust files. Without
`--plan` nothing changes: Locust runs as usual.

At `init` the plugin picks its role from the runner (`roles.py`: local, master, worker), and the
role adds its own listeners to that environment's events.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import psutil
from locust import events
from locust.env import Environment
from locust.exception import RPCError
from locust.runners import WorkerRunner

import loadkit.engine.options  # noqa: F401  (registers --plan and the other options)
from loadkit import baseline as baselines
from loadkit import history
from loadkit.engine.rehearsal import Rehearsal, RehearsalSetupError
from loadkit.engine.roles import (
    LocalRole,
    MasterRole,
    WorkerRole,
    default_stop_timeout,
    judging_role,
    quiet_gc,
)
from loadkit.engine.session import RunSession
from loadkit.measure.compare import parse_fraction
from loadkit.measure.figures import BaselineInput
from loadkit.plan import PLACEHOLDERS, Plan, PlanError, load_plan
from loadkit.plan.durations import format_duration
from loadkit.plan.safety import UnsafeHostError, check_host
from loadkit.rehearsal.mock_admin import MockAdmin
from loadkit.rehearsal.service import ServiceCommandError
from loadkit.reports import default_run_dir

EXIT_USAGE = 3


class LoadkitPlugin:
    """loadkit's part of one Locust environment: its role, and through it the run session."""

    def __init__(self, environment: Environment, role: LocalRole | MasterRole | WorkerRole) -> None:
        self.environment = environment
        self.role = role

    @property
    def session(self) -> RunSession | None:
        return self.role.session

    @classmethod
    def setup(cls, environment: Environment, web_ui: Any = None) -> LoadkitPlugin | None:
        """The plugin for `environment`, or None when there is no plan (plain Locust)."""
        if isinstance(environment.runner, WorkerRunner):
            # Workers learn the plan from the master's start message (they may have no plan file).
            return cls(environment, WorkerRole(environment))
        options = environment.parsed_options
        plan_path = getattr(options, "plan", None) if options is not None else None
        if not plan_path:
            return None
        try:
            plan = load_plan(plan_path)
        except PlanError as exc:
            _fail_setup(str(exc))
        if getattr(options, "run_time", None):
            _fail_setup(
                f"--run-time does not apply with --plan: the plan's stages set the run's length "
                f"({format_duration(plan.duration_s)}); shorten the stages in {plan_path} instead"
            )
        # with a service under test, it is the target; the host given (the mock's) is the platform
        host = plan.service.host if plan.service is not None else environment.host or plan.host
        if not host:
            _fail_setup(f"{plan_path}: no target host: give --host or `host:` in the plan")
        try:
            check_host(_sample(host) if plan.service is not None else host, plan.safety.allow_hosts)
        except UnsafeHostError as exc:
            _fail_setup(
                f"{plan_path}: service.host: {exc}" if plan.service is not None else f"{plan_path}: {exc}"
            )
        default_stop_timeout(environment)
        quiet_gc()
        mock = None
        if getattr(options, "mock_admin_token", None):
            mock = MockAdmin(options.mock_url or environment.host or host, options.mock_admin_token)
        elif plan.mock is not None and plan.mock.seed is not None:
            print(
                "loadkit: the plan seeds a mock platform but no --mock-admin-token was given; not seeding",
                file=sys.stderr,
            )
        report_dir = (
            Path(options.report_dir) if getattr(options, "report_dir", None) else default_run_dir(plan.name)
        )
        baseline = _baseline(options, plan, report_dir)  # before the service starts: it may refuse
        rehearsal = None
        if Rehearsal.wanted(plan):
            rehearsal = Rehearsal(plan, mock=mock, run_dir=report_dir)
            try:
                rehearsal.start()
            except (RehearsalSetupError, ServiceCommandError) as exc:
                rehearsal.stop()
                _fail_setup(f"{plan_path}: {exc}")
            host = rehearsal.host or host
        environment.host = host
        session = RunSession(plan, report_dir=report_dir, mock=mock, host=host, baseline=baseline)
        role = judging_role(environment, session, web_ui)
        role.rehearsal = rehearsal
        return cls(environment, role)


def _sample(template: str) -> str:
    """A service URL with its placeholders filled, to check its host before the port exists."""
    return template.format(**dict.fromkeys(PLACEHOLDERS, "1"))


def _baseline(options: Any, plan: Plan, report_dir: Path) -> BaselineInput | None:
    """--baseline, resolved before any request: a baseline that cannot be used is a usage error."""
    spec = getattr(options, "baseline", None)
    if not spec:
        return None
    try:
        limit = parse_fraction(getattr(options, "max_regression", None) or "10%")
        return baselines.resolve(spec, plan.name, history.db_for(options.history_db, report_dir), limit)
    except ValueError as exc:
        _fail_setup(f"--max-regression: {exc}")
    except baselines.BaselineError as exc:
        _fail_setup(str(exc))
    return None


def _fail_setup(message: str) -> NoReturn:
    """A usage or configuration error: say it plainly and exit 3 before any request."""
    sys.stderr.write(f"loadkit: {message}\n")
    sys.stderr.flush()
    raise SystemExit(EXIT_USAGE)


def _master_port_taken(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None, *, previous: Any
) -> None:
    """Locust's master could not bind its port (another process took it first): one line and
    exit 3 (`loadkit run` then tries another port), instead of Locust's traceback and a process
    that never exits (its zmq context waits for the socket that failed). The workers Locust
    forked for this master go too: they would wait for it for minutes."""
    if not (issubclass(exc_type, RPCError) and "Socket bind failure" in str(exc)):
        previous(exc_type, exc, tb)
        return
    sys.stderr.write(f"loadkit: the Locust master could not listen for its workers: {exc}\n")
    sys.stderr.flush()
    for child in psutil.Process().children():
        child.kill()
    os._exit(EXIT_USAGE)


_previous_hook = sys.excepthook
sys.excepthook = lambda t, e, tb: _master_port_taken(t, e, tb, previous=_previous_hook)

_plugin: LoadkitPlugin | None = None


def current_plugin() -> LoadkitPlugin | None:
    """This process's plugin (None without --plan), for tests and tools."""
    return _plugin


@events.init.add_listener
def _on_init(environment: Environment, runner: Any = None, web_ui: Any = None, **_kw: Any) -> None:
    global _plugin
    _plugin = LoadkitPlugin.setup(environment, web_ui)
