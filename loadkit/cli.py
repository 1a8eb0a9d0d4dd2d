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
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadkit.measure.compare import Tolerance, parse_fraction
from loadkit.measure.figures import BaselineInput, EndingHow, iso
from loadkit.measure.summary import LIVE_NAME
from loadkit.plan import Plan, PlanError, load_plan
from loadkit.plan.durations import format_duration
from loadkit.plan.safety import UnsafeHostError, check_host
from loadkit.reports import default_run_dir

EXIT_USAGE = 3
MOCK_START_TIMEOUT_S = 30.0
MASTER_HOST = "127.0.0.1"
MASTER_BIND_ATTEMPTS = 3  # another process may take the chosen port before Locust binds it
GROUP_STOP_TIMEOUT_S = 5.0
RUN_TIME_FLAGS = ("-t", "--run-time")
MASTER_PORT_FLAGS = ("--master-bind-port", "--master-port")
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
    if _given(extra, RUN_TIME_FLAGS):
        raise UsageError(
            f"--run-time does not apply with a plan: its stages set the run's length "
            f"({format_duration(plan.duration_s)}); shorten the stages in {args.plan} instead"
        )
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
    baseline = _resolve_baseline(args, plan, report_dir)
    run_id = args.run_id or f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', plan.name)}-{secrets.token_hex(4)}"
    env = {**os.environ, "LOADKIT_RUN_ID": run_id}
    own_port = bool(args.processes) and not _given(extra, MASTER_PORT_FLAGS)
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
        if baseline is not None:
            cmd += [
                "--baseline",
                _baseline_spec(baseline),
                "--max-regression",
                str(baseline["max_regression"]),
            ]
        if args.headless:
            cmd += ["--headless", "--only-summary"]
        else:
            cmd += ["--web-host", args.web_host, "--web-port", str(args.web_port)]
        if args.processes:
            cmd += ["--processes", str(args.processes)]
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / LIVE_NAME).unlink(missing_ok=True)  # a stale one would read as a dead generator
        target = "the service under test (started by loadkit)" if plan.service is not None else host
        print(
            f"loadkit: running {plan.name} against {target} ({format_duration(plan.duration_s)})", flush=True
        )
        if _given(extra, ("--master",)):
            print(f"loadkit: run id {run_id}: start remote workers with --run-id {run_id}", flush=True)
        if not args.headless:
            print(f"loadkit: web UI on http://{args.web_host}:{args.web_port}", flush=True)
        started = time.time()
        stop = signal.SIGINT if args.headless else signal.SIGTERM
        code, interrupted = _run_locust(cmd, list(extra), env, own_port=own_port, stop=stop)
        if (report_dir / LIVE_NAME).is_file() or code < 0:
            # Locust died under a test, or was killed before one: write what it knew
            how: EndingHow = "interrupted" if interrupted and code >= 0 else "generator_died"
            return _reports_of_a_dead_run(plan, report_dir, args, host, baseline, how, code, started)
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


def _given(extra: Sequence[str], flags: Sequence[str]) -> bool:
    """Whether Locust arguments after `--` set one of `flags` (`--flag value` or `--flag=value`)."""
    return any(arg.split("=", 1)[0] in flags for arg in extra)


def _run_locust(
    cmd: list[str], extra: list[str], env: dict[str, str], *, own_port: bool, stop: signal.Signals
) -> tuple[int, bool]:
    """Run Locust; with `own_port` (--processes), its master on a port of its own on 127.0.0.1:
    Locust forks the workers before its master binds, so the port is chosen here and given to
    both. If another process takes it first, Locust cannot bind: try another port, then give up
    (exit 3). Returns Locust's exit code and whether we passed it an interrupt."""
    taken: list[int] = []
    while True:
        port = free_port() if own_port else None
        ports: list[str] = []
        if port is not None:
            ports = ["--master-bind-host", MASTER_HOST, "--master-bind-port", str(port)]
            ports += ["--master-host", MASTER_HOST, "--master-port", str(port)]
        code, interrupted = _run_child([*cmd, *ports, *extra], env, stop)
        if port is None or code == 0 or interrupted or not port_taken(port):
            return code, interrupted
        taken.append(port)
        if len(taken) >= MASTER_BIND_ATTEMPTS:
            shown = ", ".join(str(p) for p in taken)
            raise UsageError(f"could not bind the Locust master on {MASTER_HOST}: ports {shown} were taken")
        print(f"loadkit: master port {port} was taken by another process; trying another", flush=True)


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((MASTER_HOST, 0))
        return int(sock.getsockname()[1])


def port_taken(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port` (what makes Locust's master bind fail)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((MASTER_HOST, port))
        except OSError:
            return True
    return False


def _run_child(cmd: list[str], env: dict[str, str], stop: signal.Signals) -> tuple[int, bool]:
    """Run Locust in the foreground, in a process group of its own: a Ctrl-C reaches it once,
    through us (not also from the terminal), and workers it leaves behind if it dies can be
    stopped. SIGINT, SIGTERM and SIGHUP reach it as `stop`: SIGINT headless (loadkit's plugin
    stops the test and judges what ran; Locust handles no SIGTERM while a headless plan runs),
    SIGTERM with the web UI (Locust's own clean shutdown). Locust reads no terminal input (its
    keys would change the user count a plan sets)."""
    started: list[subprocess.Popen] = []
    interrupted = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        if started and started[0].poll() is None:
            started[0].send_signal(stop)

    # installed first: Locust then starts with SIGINT at its default even when we were started
    # with it ignored (as a background job is), and can be interrupted
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, process_group=0)
        started.append(proc)
        if interrupted:  # came while it was starting
            proc.send_signal(stop)
        try:
            return proc.wait(), interrupted
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            _stop_group(proc.pid)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_group(pgid: int) -> None:
    """Stop what is left of Locust's process group: workers forked by a Locust that died."""
    deadline = time.monotonic() + GROUP_STOP_TIMEOUT_S
    while True:
        try:
            os.killpg(pgid, signal.SIGTERM if time.monotonic() < deadline else signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # none left (or the id went to someone else)
            return
        time.sleep(0.1)


def _reports_of_a_dead_run(
    plan: Plan,
    report_dir: Path,
    args: argparse.Namespace,
    host: str,
    baseline: BaselineInput | None,
    how: EndingHow,
    code: int,
    started: float,
) -> int:
    """The reports of a run whose Locust process died: its last live snapshot (or the plan
    alone, if it died before the test began) judged with the ending: never a pass."""
    from loadkit import history
    from loadkit.measure.summary import build_summary, read_snapshot
    from loadkit.reports import unique_dir, write_all
    from loadkit.reports.progress import closing_lines

    now = time.time()
    snapshot = read_snapshot(report_dir)
    evidence: dict[str, Any] = {"window": {"start": None, "end": None, "seconds": 0.0, "stages": []}}
    t0 = None
    if snapshot is not None:
        evidence = dict(snapshot["evidence"])
        started, t0, host = snapshot["started_at"], snapshot["t0"], snapshot["host"] or host
    cause = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
    known = f"figures up to {iso(snapshot['written_at'])}" if snapshot else "it died before the test began"
    evidence["ending"] = {
        "how": how,
        "at": iso(now),
        "plan_s": round(now - t0, 3) if t0 is not None else None,
        "detail": f"Locust {cause}; {known}",
    }
    evidence["baseline"] = baseline
    summary = build_summary(plan, evidence, started_at=started, finished_at=now, host=host)  # type: ignore[arg-type]
    run_dir = unique_dir(report_dir)
    db = history.db_for(args.history_db, run_dir)
    trend = None
    try:
        history.record_run(db, summary, run_dir)
        trend = history.trend(db, plan.name, until=summary["started_at"])
    except history.HistoryError as exc:
        sys.stderr.write(f"loadkit: could not record the run in {db}: {exc}\n")
    write_all(run_dir, summary, trend)
    (report_dir / LIVE_NAME).unlink(missing_ok=True)
    sys.stderr.write(f"loadkit: Locust {cause}; the reports were written from what it had measured\n")
    print("\n".join(closing_lines(summary, str(run_dir))), flush=True)
    return summary["exit_code"]


def _resolve_baseline(args: argparse.Namespace, plan: Plan, report_dir: Path) -> BaselineInput | None:
    """--baseline, found before anything starts (a baseline that cannot be used is exit 3)."""
    if not args.baseline:
        return None
    from loadkit import baseline as baselines
    from loadkit import history

    try:
        limit = parse_fraction(args.max_regression)
    except ValueError as exc:
        raise UsageError(f"--max-regression: {exc}") from None
    try:
        return baselines.resolve(args.baseline, plan.name, history.db_for(args.history_db, report_dir), limit)
    except baselines.BaselineError as exc:
        raise UsageError(str(exc)) from None


def _baseline_spec(baseline: BaselineInput) -> str:
    """The baseline as the plugin must find it again: `last-pass` pinned to the run found now
    (another run may pass meanwhile)."""
    run = baseline["run"]
    return f"history:{run['history_id']}" if run["history_id"] is not None else str(run["run_dir"])


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
    """Re-render the reports of a finished run, with its plan's trend from the history."""
    from loadkit import history
    from loadkit.reports import write_all

    run_dir = Path(args.run_dir)
    summary = _read_summary(args.run_dir)
    db = history.db_for(args.history_db, run_dir)
    plan = (summary.get("plan") or {}).get("name")
    try:
        trend = history.trend(db, plan, until=summary.get("started_at")) if plan else []
    except history.HistoryError as exc:
        raise UsageError(str(exc)) from None
    written = write_all(run_dir, summary, trend)
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


HISTORY_COLUMNS = (  # (heading, key, width, how to show it)
    ("id", "id", 5, str),
    ("started", "started_at", 25, str),
    ("plan", "plan", 20, str),
    ("verdict", "verdict", 12, str),
    ("ended", "ending", 14, str),
    ("held req/s", "qps_held", 10, lambda v: f"{v:.1f}"),
    ("p99 ms", "p99_ms", 8, lambda v: f"{v:.1f}"),
    ("errors", "error_rate", 8, lambda v: f"{v:.2%}"),
    ("report", "run_dir", 0, str),
)


def _history(args: argparse.Namespace) -> int:
    """The recorded runs, newest first: a table, or JSON with --json."""
    from loadkit import history

    db = Path(args.db)
    if not db.is_file():
        raise UsageError(f"{db}: no run history yet (runs are recorded there as they finish)")
    try:
        runs = history.list_runs(db, plan=args.plan, limit=args.limit)
        if args.plan is not None and not runs:
            known = history.plans(db)
            listed = ", ".join(known) if known else "none"
            raise UsageError(f"{db}: no runs of plan {args.plan!r}; the history has runs of: {listed}")
    except history.HistoryError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(runs, indent=2, default=str))
        return 0
    print("  ".join(f"{head:<{width}}" for head, _key, width, _show in HISTORY_COLUMNS).rstrip())
    for run in runs:
        cells = [
            "-" if run.get(key) is None else show(run[key]) for _head, key, _width, show in HISTORY_COLUMNS
        ]
        print(
            "  ".join(f"{c:<{w}}" for c, (_h, _k, w, _s) in zip(cells, HISTORY_COLUMNS, strict=True)).rstrip()
        )
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
    """Key figures of a run against a baseline run: exit 1 when one got worse beyond its
    tolerance (and beyond the runs' own noise), 3 when the runs are of different plans."""
    from loadkit import baseline as baselines
    from loadkit.measure.compare import compare, plan_differences

    try:
        current, base = baselines.read_summary(args.run_dir), baselines.read_summary(args.baseline)
        tolerance = Tolerance(
            relative=parse_fraction(args.tolerance),
            latency_ms=float(args.tolerance_ms),
            qps=float(args.tolerance_qps),
            error_rate=parse_fraction(args.tolerance_errors),
            noise_sigmas=float(args.noise_sigmas),
        )
    except baselines.BaselineError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"a tolerance: {exc}") from None
    for label, doc, where in (("run:     ", current, args.run_dir), ("baseline:", base, args.baseline)):
        how = (doc.get("ending") or {}).get("how")
        ended = "" if how in (None, "completed") else f", {how}"
        plan = doc["plan"]["name"]
        print(f"{label} {where} (plan {plan}, started {doc['started_at']}, {doc['verdict']}{ended})")
    differences = plan_differences(current, base)
    if current["plan"]["name"] != base["plan"]["name"] and not args.any_plan:
        raise UsageError(
            f"{args.run_dir} and {args.baseline} are runs of different plans ({'; '.join(differences)}): "
            "their figures answer different questions (--any-plan compares them anyway)"
        )
    if differences:
        print(f"warning: the plans differ: {'; '.join(differences)}")
    print(
        f"a change counts beyond {tolerance.relative:.0%} of the baseline, {tolerance.latency_ms:g} ms, "
        f"{tolerance.qps:g} req/s or {tolerance.error_rate:.2%} of errors (whichever applies), "
        f"and {tolerance.noise_sigmas:g}x the runs' own noise"
    )
    rows = compare(current, base, tolerance)
    print(f"{'figure':<34} {'baseline':>10} {'current':>10} {'change':>9} {'allowed':>9}  result")
    for row in rows:
        change = "-" if row["delta_pct"] is None else f"{row['delta_pct']:+.1f}%"
        print(
            f"{row['figure']:<34} {_shown(row['baseline'], row['unit']):>10} "
            f"{_shown(row['current'], row['unit']):>10} {change:>9} {_shown(row['allowed'], row['unit']):>9}"
            f"  {row['change']}"
        )
    worse = [row["figure"] for row in rows if row["change"] == "worse"]
    print(f"result: {'worse: ' + ', '.join(worse) if worse else 'same or better on every figure'}")
    return 1 if worse else 0


def _shown(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2%}" if unit == "fraction" else f"{value:.2f}"


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
        run_id=None,
        baseline=None,
        max_regression="10%",
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
    run.add_argument(
        "--processes",
        type=int,
        default=None,
        help="Locust worker processes on this machine (their master listens on 127.0.0.1 only)",
    )
    run.add_argument("--report-dir", help="report directory (default reports/<plan>-<time>)")
    run.add_argument("--web-host", default="127.0.0.1", help="web UI address (default 127.0.0.1)")
    run.add_argument("--web-port", type=int, default=8089, help="web UI port (default 8089)")
    run.add_argument("--with-mock", action="store_true", help="start the mock platform and target it")
    run.add_argument("--mock-profile", help="fault profile for --with-mock (e.g. production)")
    run.add_argument("--mock-config", help="mock platform config file for --with-mock")
    run.add_argument("--locustfile", help="override the plan's locustfile")
    run.add_argument(
        "--history-db",
        help="SQLite run history (default loadkit-history.sqlite3 beside the report directory)",
    )
    run.add_argument(
        "--run-id",
        help="this run's id (default: the plan's name and a random suffix); remote workers need the same",
    )
    run.add_argument(
        "--baseline",
        help="fail on a regression against an earlier run of the plan: its report directory, "
        "last-pass (the newest passing run in the history) or history:<id>",
    )
    run.add_argument(
        "--max-regression",
        default="10%",
        help="with --baseline: how much worse a figure may get (default 10%%; besides 2 ms, 1 req/s, "
        "0.1%% of errors and the runs' own noise)",
    )
    run.epilog = "Arguments after `--` go to Locust unchanged (but --run-time: the plan sets the length)."

    validate = sub.add_parser("validate", help="check an event plan")
    validate.add_argument("plan", help="event plan (YAML)")

    demo = sub.add_parser("demo", help="mock platform + Jifenbao plan, headless, with the verdict")
    demo.add_argument("--report-dir", help="report directory (default reports/<plan>-<time>)")
    demo.add_argument("--processes", type=int, default=None, help="Locust worker processes")
    demo.add_argument("--mock-profile", default=None, help="fault profile of the mock (e.g. production)")

    report = sub.add_parser("report", help="re-render report.html and summary.md of a finished run")
    report.add_argument("run_dir", help="the run's report directory (with summary.json)")
    report.add_argument(
        "--history-db", help="run history for the plan's trend (default: beside the report directory)"
    )

    sub.add_parser("scenarios", help="list the shipped scenarios and plans")

    compare = sub.add_parser(
        "compare",
        help="compare a run with a baseline run (exit 1 if a figure got worse beyond its tolerance)",
    )
    compare.add_argument("run_dir", help="the run's report directory")
    compare.add_argument("baseline", help="the baseline run's report directory")
    compare.add_argument(
        "--tolerance", default="10%", help="relative change that is still the same (default 10%%)"
    )
    compare.add_argument(
        "--tolerance-ms", type=float, default=2.0, help="latency change that is still the same (default 2 ms)"
    )
    compare.add_argument(
        "--tolerance-qps", type=float, default=1.0, help="QPS change that is still the same (default 1 req/s)"
    )
    compare.add_argument(
        "--tolerance-errors",
        default="0.1%",
        help="error-rate change that is still the same (default 0.1%%, i.e. 0.001)",
    )
    compare.add_argument(
        "--noise-sigmas",
        type=float,
        default=3.0,
        help="a change within this many standard errors of the runs' own noise is the same (default 3)",
    )
    compare.add_argument(
        "--any-plan", action="store_true", help="compare runs of different plans (refused by default)"
    )

    hist = sub.add_parser("history", help="list recorded runs, newest first")
    hist.add_argument(
        "--db", default="reports/loadkit-history.sqlite3", help="the run history (default %(default)s)"
    )
    hist.add_argument("--plan", help="only the runs of this plan (by name)")
    hist.add_argument("--limit", type=int, default=20, help="at most this many runs (default 20)")
    hist.add_argument("--json", action="store_true", help="print JSON instead of a table")
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
