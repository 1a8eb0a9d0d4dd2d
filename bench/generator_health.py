"""The generator watching itself: what the loop-lag probe costs, and where loadkit calls one
generator process unhealthy compared with where its arrivals start to be late.

    .venv/bin/python bench/generator_health.py            # everything (about 5 minutes)
    .venv/bin/python bench/generator_health.py probe      # (a) only (about 1 minute)
    .venv/bin/python bench/generator_health.py ladder [--rates 3000 3500] [--root CHECKOUT]   # (b) only

(a) The probe's cost, three ways:
    - CPU, side by side in one run: two child processes at once, each an idle gevent loop for
      20 s, one pinned to each core (taskset); one runs `LoopProbe`, the other does not. Then
      the cores are swapped and it runs again. CPU ms per second from getrusage. Idle, each of
      the 100 wake-ups a second wakes the whole process: the probe's worst case.
    - CPU in a working generator: one Locust process paced by loadkit at 1,000 requests/s on
      CPU 0 against the raw server on CPU 1, with and without the probe, alternated five times
      (bench/pacing.py's child; least and median CPU per second of each). There the loop is
      awake anyway and the probe adds its callback; on a shared VM this figure is noisy.
    - Instructions (they do not move with the neighbours' load): callgrind counts a child that
      lets the probe wake up N times, for two values of N; the difference over the difference
      in wake-ups is the cost of one wake-up (start-up cancels out). Needs valgrind.
(b) One generator process asked for rising rates: `loadkit run` (the real plugin: pacing, probe,
    per-second health, verdict) and, for the same plan, plain Locust (FastHttpUser with
    constant_throughput(rate / users), no loadkit), each pinned to CPU 0, against a raw
    uvloop server on CPU 1 (bench/pacing.py's, far faster than one Locust process). For loadkit:
    arrivals sent per second and on time, seconds unhealthy, late arrivals by cause and the
    verdict; for plain Locust: requests per second held. The question is whether loadkit's
    health checks mark the run unhealthy where the late arrivals begin, not later.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pacing

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Visitor(FastHttpUser):
    wait_time = constant(0)

    @task
    def home(self):
        self.client.get("/", name="home")
"""
RATES = (1000, 1500, 2000, 2500, 3000, 4000, 6000)
USERS = 50


def pin(cpu: str | None, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if cpu is not None and shutil.which("taskset") else cmd


# --- (a) the probe's cost ------------------------------------------------------------------------


def idle_loop(seconds: float, probe: bool) -> None:
    """A gevent loop with nothing to do but (maybe) the probe; prints CPU ms per second."""
    import gevent

    from loadkit.engine.probe import LoopProbe

    if probe:
        LoopProbe().start(time.time())
    gevent.sleep(0.5)
    before = resource.getrusage(resource.RUSAGE_SELF)
    gevent.sleep(seconds)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(json.dumps({"probe": probe, "cpu_ms_per_s": cpu / seconds * 1000}))


def wake_ups(n: int) -> None:
    """Let the probe wake up `n` times, then exit (run under callgrind)."""
    import gevent

    from loadkit.engine.probe import LoopProbe

    probe = LoopProbe()
    probe.start(time.time())
    woke = 0
    while woke < n:
        gevent.sleep(0.05)
        woke += sum(sum(piece["lag"].values()) for piece in probe.take())
    probe.stop()


def bench_probe_loaded(rounds: int = 5) -> None:
    server = subprocess.Popen(pacing.child(["serve"], "1"), stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = str(int(server.stdout.readline()))
        common = ["--port", port, "--rate", "1000", "--users", "20", "--duration", "8", "--warmup", "2"]
        cpu: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for probe in (True, False):
                run = pacing.run_child(
                    "0", "locust", "--mode", "paced", *common, *(["--probe"] if probe else [])
                )
                cpu[probe].append(run["cpu_us_per_request"] * run["rps"] / 1000)  # CPU ms per second
        for probe in (False, True):
            values = sorted(cpu[probe])
            print(
                f"    a Locust process paced at 1,000 requests/s {'with' if probe else 'without'} the probe:"
                f" {values[0]:.0f} ms/s of CPU at least, {values[len(values) // 2]:.0f} median"
                f" ({', '.join(f'{v:.0f}' for v in cpu[probe])})"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)


def bench_probe(seconds: float) -> None:
    cpus = ("0", "1") if (os.cpu_count() or 1) >= 2 else (None, None)
    rows = []
    for with_probe_on, without_on in (cpus, cpus[::-1]):
        me = [sys.executable, __file__]
        procs = [
            subprocess.Popen(
                pin(with_probe_on, [*me, "idle", "--seconds", str(seconds), "--probe"]),
                stdout=subprocess.PIPE,
                text=True,
            ),
            subprocess.Popen(
                pin(without_on, [*me, "idle", "--seconds", str(seconds)]), stdout=subprocess.PIPE, text=True
            ),
        ]
        results = [json.loads(p.communicate(timeout=seconds + 60)[0].strip().splitlines()[-1]) for p in procs]
        rows.append((with_probe_on, without_on, results[0]["cpu_ms_per_s"], results[1]["cpu_ms_per_s"]))
    print(f"(a) idle gevent loop, {seconds:.0f} s, side by side (CPU ms per second of wall time):")
    for on, off, cpu_on, cpu_off in rows:
        print(
            f"    with the probe on CPU {on}: {cpu_on:6.2f} ms/s   without on CPU {off}: {cpu_off:6.2f} ms/s"
            f"   -> the probe costs {cpu_on - cpu_off:5.2f} ms/s ({(cpu_on - cpu_off) / 10:.2f}% of a core)"
        )
    bench_probe_loaded()
    if not shutil.which("valgrind"):
        print("    (no valgrind: instructions not counted)")
        return
    counts = {}
    for n in (500, 2500):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "callgrind.out"
            subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={out}",
                    sys.executable,
                    __file__,
                    "wakeups",
                    "--n",
                    str(n),
                ],
                capture_output=True,
                timeout=600,
                check=True,
            )
            counts[n] = next(
                int(line.split()[1]) for line in out.read_text().splitlines() if line.startswith("summary:")
            )
    per_wake_up = (counts[2500] - counts[500]) / 2000
    print(
        f"    instructions (callgrind): {per_wake_up:,.0f} per wake-up, {per_wake_up * 100:,.0f} per second"
        f" at 100 wake-ups a second ({counts[500]:,} for 500 wake-ups, {counts[2500]:,} for 2,500,"
        " start-up included)"
    )


# --- (b) where the late arrivals begin -----------------------------------------------------------


def loadkit_run(url: str, rate: float, tmp: Path, root: Path) -> dict:
    """`loadkit run` of a short plan at `rate`, from the checkout at `root`; its summary.json."""
    plan = {
        "name": f"ladder-{rate:.0f}",
        "locustfile": str(tmp / "visitor.py"),
        "stages": [
            {"name": "warmup", "duration": "2s", "qps": rate, "users": USERS},
            {"name": "hold", "duration": "8s", "qps": rate, "users": USERS, "gate": True},
        ],
        "budgets": {"qps_min": rate * 0.95, "latency_ms": {"p99": 500}},
        "safety": {"max_qps": 100000},
    }
    plan_path = tmp / f"plan-{rate:.0f}.json"
    plan_path.write_text(json.dumps(plan))
    report = tmp / f"report-{rate:.0f}"
    cmd = [
        sys.executable,
        "-m",
        "loadkit",
        "run",
        str(plan_path),
        "--headless",
        "--host",
        url,
        "--report-dir",
        str(report),
    ]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        pin("0", cmd), capture_output=True, text=True, timeout=120, cwd=root, env=env, check=False
    )
    path = report / "summary.json"
    if not path.is_file():
        raise SystemExit(
            f"loadkit run at {rate}/s wrote no summary:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return json.loads(path.read_text())


def bench_ladder(rates: tuple[float, ...] = RATES, root: Path = ROOT) -> None:
    server = subprocess.Popen(pacing.child(["serve"], "1"), stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}"
        print(f"(b) one generator process on CPU 0, {USERS} users, against a raw uvloop server on CPU 1")
        print(
            "    planned/s | plain Locust held/s |  loadkit sent/s  on time | unhealthy s of 8 | late by:"
            " generator  users  target | verdict"
        )
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            (tmp / "visitor.py").write_text(LOCUSTFILE)
            for rate in rates:
                plain = pacing.run_child(
                    "0", "locust", "--mode", "plain", "--port", str(port), "--rate", str(rate),
                    "--users", str(USERS), "--duration", "8", "--warmup", "2",
                )  # fmt: skip
                summary = loadkit_run(url, rate, tmp, root)
                arrivals, gen = summary["arrivals"], summary["generator"]
                on_time = arrivals["on_time"] / arrivals["scheduled"] if arrivals["scheduled"] else 0.0
                if "late" in gen:  # a loadkit from before the generator's health: no causes
                    late = [
                        f"{gen['late'][k] + gen['unsent'][k]:,}" for k in ("generator", "users", "target")
                    ]
                    unhealthy = f"{gen['unhealthy_s']:.0f}"
                else:
                    late, unhealthy = ["-", "-", "-"], "-"
                print(
                    f"    {rate:9,.0f} | {plain['rps']:11,.0f} {plain['rps'] / rate:6.1%} |"
                    f" {summary['qps']['arrivals_held']:14,.0f}"
                    f"  {on_time:7.1%} | {unhealthy:>16} | {late[0]:>18} {late[1]:>6} {late[2]:>7}"
                    f" | {summary['verdict']}"
                )
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what")
    probe = sub.add_parser("probe", help="(a) only")
    probe.add_argument("--seconds", type=float, default=20.0)
    ladder = sub.add_parser("ladder", help="(b) only")
    ladder.add_argument("--rates", type=float, nargs="+", default=list(RATES), help="planned arrivals/s")
    ladder.add_argument("--root", type=Path, default=ROOT, help="the loadkit checkout to run")
    idle = sub.add_parser("idle", help="internal: an idle gevent loop")
    idle.add_argument("--seconds", type=float, required=True)
    idle.add_argument("--probe", action="store_true")
    wake = sub.add_parser("wakeups", help="internal: N probe wake-ups")
    wake.add_argument("--n", type=int, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.what == "idle":
        idle_loop(args.seconds, args.probe)
    elif args.what == "wakeups":
        wake_ups(args.n)
    else:
        if args.what in (None, "probe"):
            bench_probe(getattr(args, "seconds", 20.0))
        if args.what in (None, "ladder"):
            bench_ladder(tuple(getattr(args, "rates", RATES)), getattr(args, "root", ROOT))


if __name__ == "__main__":
    main()
