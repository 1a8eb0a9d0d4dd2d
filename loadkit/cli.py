"""`loadkit`: run, validate and report event plans; `loadkit demo` shows the whole thing.

The CLI never imports Locust (Locust monkey-patches the process with gevent on import): it
validates the plan and the target first, then runs `python -m locust` with loadkit's plugin as a
subprocess, and optionally the mock platform as another (`--with-mock`).
"""

from __future__ import annotations

import argparse
import ast
import importlib.resources
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from loadkit.plan import Plan, PlanError, load_plan
from loadkit.plan.durations import format_duration
from loadkit.plan.safety import UnsafeHostError, check_host
from loadkit.reports import default_run_dir

EXIT_USAGE = 3
MOCK_START_TIMEOUT_S = 30.0
READY_LINE = re.compile(r"listening on (http://\S+)")


class UsageError(Exception):
    """A mistake in how loadkit was called; exit 3 with the message."""


def _scenarios_dir() -> Path:
    return Path(str(importlib.resources.files("scenarios")))


class MockProcess:
    """`python -m mock_platform` on a free loopback port, for the length of a run."""

    def __init__(self, profile: str | None, config: str | None) -> None:
        self.token = secrets.token_urlsafe(24)
        cmd = [sys.executable, "-m", "mock_platform", "--host", "127.0.0.1", "--port", "0"]
        cmd.append(f"--admin-token={self.token}")  # one word: a token may start with "-"
        if profile:
            cmd += ["--profile", profile]
        if config:
            cmd += ["--config", config]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self.url = self._wait_ready()

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + MOCK_START_TIMEOUT_S
        seen: list[str] = []
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line.rstrip())
            if match := READY_LINE.search(line):
                threading.Thread(target=self._drain, daemon=True).start()
                return match.group(1)
        self.stop()
        raise UsageError("the mock platform did not start:\n  " + "\n  ".join(seen[-10:]))

    def _drain(self) -> None:
        """Keep reading the mock's output so a chatty mock never blocks on a full pipe; pass on
        what it says (it is quiet unless something is wrong)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "admin token" not in line:  # the token goes to Locust by environment, not to logs
                sys.stderr.write(f"mock_platform: {line}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _load(plan_path: str) -> Plan:
    try:
        return load_plan(plan_path)
    except PlanError as exc:
        raise UsageError(str(exc)) from None


def _run(args: argparse.Namespace, extra: Sequence[str]) -> int:
    plan = _load(args.plan)
    locustfile = Path(args.locustfile) if args.locustfile else plan.locustfile
    if locustfile is None:
        raise UsageError(f"{args.plan}: no locustfile: give `locustfile:` in the plan or --locustfile")
    if not locustfile.is_file():
        raise UsageError(f"{args.plan}: locustfile {locustfile} does not exist")
    if args.with_mock and args.host:
        raise UsageError("--with-mock points the run at a fresh mock platform; do not also give --host")
    _check_rehearsal(args, plan, extra)
    host = ""
    if not args.with_mock and plan.service is None:
        host = args.host or plan.host
        if not host:
            raise UsageError(f"{args.plan}: no target host: give --host, `host:` in the plan, or --with-mock")
        try:
            check_host(host, plan.safety.allow_hosts)
        except UnsafeHostError as exc:
            raise UsageError(f"{args.plan}: {exc}") from None
    report_dir = Path(args.report_dir) if args.report_dir else default_run_dir(plan.name)
    env = dict(os.environ)
    mock = None
    try:
        if args.with_mock:
            mock = MockProcess(args.mock_profile, args.mock_config)
            host = mock.url
            try:
                check_host(host, plan.safety.allow_hosts)
            except UnsafeHostError as exc:
                raise UsageError(f"{args.plan}: {exc}") from None
            env["LOADKIT_MOCK_ADMIN_TOKEN"] = mock.token
            env["LOADKIT_MOCK_URL"] = mock.url
            print(f"loadkit: mock platform at {mock.url}", flush=True)
        entry = Path(__file__).parent / "engine" / "locust_entry.py"
        cmd = [sys.executable, "-m", "locust", "-f", f"{entry},{locustfile}", "--plan", str(args.plan)]
        if host and plan.service is None:
            cmd += ["--host", host]
        cmd += ["--report-dir", str(report_dir), "--csv", str(report_dir / "locust")]
        if args.history_db:
            cmd += ["--history-db", args.history_db]
        if args.headless:
            cmd += ["--headless", "--only-summary"]
        else:
            cmd += ["--web-host", args.web_host, "--web-port", str(args.web_port)]
        if args.processes:
            cmd += ["--processes", str(args.processes)]
        cmd += list(extra)
        report_dir.mkdir(parents=True, exist_ok=True)
        target = "the service under test (started by loadkit)" if plan.service is not None else host
        print(
            f"loadkit: running {plan.name} against {target} ({format_duration(plan.duration_s)})", flush=True
        )
        if not args.headless:
            print(f"loadkit: web UI on http://{args.web_host}:{args.web_port}", flush=True)
        code = _run_child(cmd, env)
    finally:
        if plan.service is not None:
            _reap_service(report_dir)
        if mock is not None:
            mock.stop()
    summary_path = report_dir / "summary.json"
    if summary_path.is_file():
        return int(json.loads(summary_path.read_text())["exit_code"])
    if code == 0:
        return 0
    sys.stderr.write(f"loadkit: Locust exited with {code} and wrote no summary (see its output above)\n")
    return EXIT_USAGE


def _check_rehearsal(args: argparse.Namespace, plan: Plan, extra: Sequence[str]) -> None:
    """A plan with `service:` or `drills:` rehearses against the mock platform: it needs one
    (ours with --with-mock, or one named by LOADKIT_MOCK_URL/LOADKIT_MOCK_ADMIN_TOKEN or the
    Locust options after `--`)."""
    sections = [name for name, on in (("service:", plan.service), ("drills:", plan.drills)) if on]
    if not sections:
        return
    if plan.service is not None and args.host:
        raise UsageError(
            f"{args.plan}: the plan's service: section is the target (service.host); do not give --host"
        )
    named = os.environ.get("LOADKIT_MOCK_ADMIN_TOKEN") or "--mock-admin-token" in " ".join(extra)
    if not args.with_mock and not named:
        raise UsageError(
            f"{args.plan}: the plan's {' and '.join(sections)} section needs the mock platform: run with "
            "--with-mock, or set LOADKIT_MOCK_URL and LOADKIT_MOCK_ADMIN_TOKEN"
        )


def _reap_service(report_dir: Path) -> None:
    """The supervisor of last resort: a service group still running once Locust has exited
    (Locust killed, say) is stopped here."""
    from loadkit.rehearsal.service import reap_leftover

    pid = reap_leftover(report_dir)
    if pid is not None:
        sys.stderr.write(f"loadkit: the service under test (pid {pid}) outlived Locust; stopped it\n")


def _run_child(cmd: list[str], env: dict[str, str]) -> int:
    """Run Locust in the foreground; Ctrl-C / SIGTERM reach it so it stops and still reports."""
    proc = subprocess.Popen(cmd, env=env)

    def forward(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            proc.kill()


def _validate(args: argparse.Namespace) -> int:
    plan = _load(args.plan)
    print(f"{args.plan}: ok — {plan.name}, {len(plan.stages)} stages, {format_duration(plan.duration_s)}")
    for i, stage in enumerate(plan.stages):
        qps = (
            f"{stage.qps_from:g}"
            if stage.qps_from == stage.qps_to
            else f"{stage.qps_from:g}→{stage.qps_to:g}"
        )
        gate = "  [gate]" if i in plan.gate_stages() else ""
        print(
            f"  {stage.name:<12} {format_duration(stage.duration_s):>8}  {qps:>10} qps"
            f"  {plan.users_for(i)} users{gate}"
        )
    for line in _rehearsal_lines(plan):
        print(line)
    return 0


def _rehearsal_lines(plan: Plan) -> list[str]:
    """What `validate` shows of the three-tier sections (service, drills, reconcile)."""
    lines = []
    service = plan.service
    if service is not None:
        lines.append(f"  service: {' '.join(service.command)}")
        lines.append(f"    ready: {service.ready} (within {format_duration(service.ready_timeout_s)})")
        lines.append(f"    target: {service.host}; app {service.app_id} registered with the mock")
        if service.uses_wechat:
            lines.append(f"    WeChat Pay merchant {service.wx_mchid} registered with the mock (fresh keys)")
        if service.records:
            lines.append(f"    records: {service.records}")
    for drill in plan.drills:
        methods = ", ".join(f"{m}: {'/'.join(v)}" for m, v in drill.faults.items())
        lines.append(
            f"  drill {drill.name}: {format_duration(drill.at_s)} + {format_duration(drill.for_s)}"
            f" ({methods}); recovery within {plan.recovery_s(drill):g} s"
        )
    if plan.reconcile is not None and plan.reconcile.per_user_limit:
        limits = ", ".join(f"{k} ≤ {v}" for k, v in plan.reconcile.per_user_limit.items())
        lines.append(f"  reconcile: per user {limits}")
    return lines


def _report(args: argparse.Namespace) -> int:
    from loadkit.reports import write_all

    run_dir = Path(args.run_dir)
    written = write_all(run_dir, _read_summary(args.run_dir))
    for name in sorted(written):
        print(written[name])
    return 0


def _docstring_line(path: Path) -> str:
    try:
        doc = ast.get_docstring(ast.parse(path.read_text()))
    except (OSError, SyntaxError):
        doc = None
    return (doc or "").strip().splitlines()[0] if doc else ""


def _scenarios(_args: argparse.Namespace) -> int:
    root = _scenarios_dir()
    for path in sorted(root.glob("*.py")):
        if path.name.startswith("_"):
            continue
        print(f"{path.stem:<20} {_docstring_line(path)}")
        for plan_path in sorted((root / "plans").glob(f"{path.stem}*.yaml")):
            try:
                plan = load_plan(plan_path)
                gate = format_duration(plan.gate_seconds())
                desc = f"{format_duration(plan.duration_s)}, gate {gate}, peak {plan.peak_qps():g} qps"
            except PlanError as exc:
                desc = f"invalid: {exc}"
            print(f"    plans/{plan_path.name:<28} {desc}")
    print(
        f"\n(scenarios in {root}; run one with: loadkit run {root}/plans/<plan>.yaml --with-mock --headless)"
    )
    return 0


def _history(args: argparse.Namespace) -> int:
    from loadkit import history

    db = Path(args.db)
    if not db.is_file():
        raise UsageError(f"{db}: no run history yet")
    for run in history.list_runs(db, plan=args.plan, limit=args.limit):
        print(json.dumps(run, default=str))
    return 0


def _read_summary(run_dir: str) -> dict:
    path = Path(run_dir) / "summary.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{run_dir}: no summary.json here (is this a loadkit report directory?)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not readable JSON: {exc}") from None


def _compare(args: argparse.Namespace) -> int:
    """Key figures of a run against a baseline run; exit 1 when any moved the bad way."""
    from loadkit import history

    rows = history.compare(_read_summary(args.run_dir), _read_summary(args.baseline))
    print(f"{'figure':<16} {'baseline':>12} {'current':>12} {'change':>9}")
    for row in rows:
        change = "-" if row["delta_pct"] is None else f"{row['delta_pct']:+.1f}%"
        mark = "  worse" if row["worse"] else ""
        print(f"{row['figure']:<16} {row['baseline']!s:>12} {row['current']!s:>12} {change:>9}{mark}")
    return 1 if any(row["worse"] for row in rows) else 0


def _demo(args: argparse.Namespace) -> int:
    plan = _scenarios_dir() / "plans" / "jifenbao-ci.yaml"
    print(
        "loadkit demo: the Jifenbao channel plan (short CI variant) against the mock platform,\n"
        "headless; the verdict and the report location are printed at the end.",
        flush=True,
    )
    run_args = argparse.Namespace(
        plan=str(plan),
        locustfile=None,
        host=None,
        with_mock=True,
        mock_profile=args.mock_profile,
        mock_config=None,
        report_dir=args.report_dir,
        headless=True,
        processes=args.processes,
        web_host="127.0.0.1",
        web_port=8089,
        history_db=None,
    )
    return _run(run_args, [])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadkit", description="Event-readiness load tests for mini-program marketing campaigns."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an event plan (web UI, or --headless for CI)")
    run.add_argument("plan", help="event plan (YAML)")
    run.add_argument("--host", help="target base URL (overrides the plan's host)")
    run.add_argument("--headless", action="store_true", help="no web UI: run, judge, exit 0/1/2/3")
    run.add_argument("--processes", type=int, default=None, help="Locust worker processes on this machine")
    run.add_argument("--report-dir", help="report directory (default reports/<plan>-<time>)")
    run.add_argument("--web-host", default="127.0.0.1", help="web UI address (default 127.0.0.1)")
    run.add_argument("--web-port", type=int, default=8089, help="web UI port (default 8089)")
    run.add_argument("--with-mock", action="store_true", help="start the mock platform and target it")
    run.add_argument("--mock-profile", help="fault profile for --with-mock (e.g. production)")
    run.add_argument("--mock-config", help="mock platform config file for --with-mock")
    run.add_argument("--locustfile", help="override the plan's locustfile")
    run.add_argument("--history-db", help="SQLite run history file")
    run.epilog = "Arguments after `--` go to Locust unchanged."

    validate = sub.add_parser("validate", help="check an event plan")
    validate.add_argument("plan")

    demo = sub.add_parser("demo", help="mock platform + Jifenbao plan, headless, with the verdict")
    demo.add_argument("--report-dir")
    demo.add_argument("--processes", type=int, default=None)
    demo.add_argument("--mock-profile", default=None)

    report = sub.add_parser("report", help="re-render report.html and summary.md of a finished run")
    report.add_argument("run_dir")

    sub.add_parser("scenarios", help="list the shipped scenarios and plans")

    compare = sub.add_parser("compare", help="compare a run with a baseline run (exit 1 if worse)")
    compare.add_argument("run_dir")
    compare.add_argument("baseline")

    hist = sub.add_parser("history", help="list recorded runs")
    hist.add_argument("--db", default="reports/loadkit-history.sqlite3")
    hist.add_argument("--plan")
    hist.add_argument("--limit", type=int, default=20)
    return parser


COMMANDS = {
    "validate": _validate,
    "report": _report,
    "scenarios": _scenarios,
    "history": _history,
    "compare": _compare,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the problem
        return EXIT_USAGE if exc.code else 0
    try:
        if args.command == "run":
            return _run(args, extra)
        if args.command == "demo":
            return _demo(args)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        sys.stderr.write(f"loadkit: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
