"""Benchmark: the mock's gateway (voucher.send), with its front and through aiohttp alone, against
a bare aiohttp + uvloop hello-world.

The servers, side by side in the same run (`--servers` picks some; hello-world always runs):

- `front`: `python -m mock_platform` as shipped: plain POST /gateway.do answered by its HTTP/1.1
  front (mock_platform/front.py), which reads heads with llhttp through httptools;
- `app`: the mock with `--no-fast-path`: every request through aiohttp's Application;
- `hello`: bench/hello_server.py, a bare aiohttp + uvloop app (the baseline).

(At commit 849bba0 this bench also ran the two ways of serving the gateway measured against the
front and dropped on 2026-12-04: aiohttp's low-level web.Server and the hand-written front; see
BENCHMARKS.md.)

All run pinned to CPU 0, the load generators to CPU 1 (when `taskset` exists and there are two
CPUs), everything on 127.0.0.1; every mock gets the same seed:

1. max rate: wrk (Debian's) with bench/voucher_send.lua — the same unsigned voucher.send form, a
   unique out_biz_no and user per request — against each server, in rounds that rotate the order
   (so a drift in the machine's speed hits all alike); the rates, each gateway's ratio to
   hello-world per round and its median, and the servers' CPU time per request (the ratio one
   free core would give on a shared machine);
2. latency at a fixed rate: bench/loadgen.py (wrk has no rate control and wrk2 is not in Debian),
   latency counted from each request's intended send time, and how busy that keeps the server's
   core: 5,000 req/s against every server in every round (hello-world as the machine's control),
   then 1,000 and 2,500 req/s once against the first gateway;
3. 10,000 requests in flight with 100 ms of injected constant latency (PUT /admin/faults), against
   the first gateway; then the ledger audit (GET /admin/audit) of every mock.

    .venv/bin/python bench/mock_gateway.py                       # about 3 minutes
    .venv/bin/python bench/mock_gateway.py --rounds 5 --json     # the figures as one JSON object
    .venv/bin/python bench/mock_gateway.py --gc-threshold 50000,50,1000   # another GC setting

Goals (issue 2), for a gateway: >= 0.5 x hello-world on one core; p99 < 10 ms at 5,000 req/s;
10,000 in flight at 100 ms without errors. In the JSON, `summary[NAME]` holds each gateway's
`ratio` (median of the rounds), `ratio_range`, `ratio_cpu`, `p99_at_goal_rate` (median) and
`rounds_meeting_goals`; each of `wrk_rounds` holds every server's wrk run, ratio and paced run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TOKEN = "bench-admin-token"
ACTIVITY = "BENCH-ACT"
SEND = "alipay.marketing.activity.voucher.send"
PACED_RATES = (1000, 2500, 5000)  # the goal is at the last one
SEED = {
    "activities": [
        {
            "activity_id": ACTIVITY,
            "activity_name": "bench",
            "quantity": 99_999_999,
            "quantity_limit_per_user": 0,
            "amount": "1.00",
            "publish_start_time": "2020-01-01 00:00:00",
            "publish_end_time": "2099-01-01 00:00:00",
        }
    ]
}


def pin(cpu: int) -> list[str]:
    """`taskset -c CPU` when pinning is possible here, else nothing."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


@dataclass
class Server:
    url: str
    pid: int  # taskset execs the command: this is the server's own pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server has used so far, from /proc."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(cmd: list[str], ready: str) -> Iterator[Server]:
    """Start a server, wait for its `ready` line (holding a URL), stop it with SIGTERM at the end."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        url = None
        for line in proc.stdout:
            match = re.search(ready + r" (http://\S+)", line)
            if match:
                url = match.group(1)
                break
            if time.monotonic() > deadline:
                break
        if url is None:
            raise SystemExit(f"bench: {' '.join(cmd)} did not start")
        yield Server(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def admin(url: str, method: str, path: str, body: Any) -> Any:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method=method)
    req.add_header("X-Admin-Token", TOKEN)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def wrk(target: Server, seconds: int, connections: int) -> dict[str, Any]:
    """One wrk run; the rate, and the server's CPU time per request (what one free core would
    give, whatever else the machine is running)."""
    cmd = [
        *pin(1),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(BENCH / "voucher_send.lua"),
        target.url,
        "--",
        ACTIVITY,
    ]
    cpu0 = target.cpu_s()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    cpu = target.cpu_s() - cpu0
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    counts = re.search(r"voucher_send ok=(\d+) other=(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    return {
        "rate": rate,
        "requests": requests,
        "cpu_us_per_request": round(cpu * 1e6 / requests, 1),
        "ok": int(counts.group(1)) if counts else None,
        "other": int(counts.group(2)) if counts else None,
        "socket_errors": errors.group(1) if errors else None,
        "p99": p99.group(1) if p99 else None,
        "command": " ".join(cmd),
    }


def loadgen(port: int, *args: str, timeout: float = 120) -> dict[str, Any]:
    cmd = [
        *pin(1),
        sys.executable,
        str(BENCH / "loadgen.py"),
        *args,
        "--port",
        str(port),
        "--activity",
        ACTIVITY,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout
    return {**json.loads(out.strip().splitlines()[-1]), "command": " ".join(cmd)}


def paced(target: Server, rate: int, run: str) -> dict[str, Any]:
    """bench/loadgen.py at a fixed rate for 5 s, and how busy that kept the server's core."""
    cpu0 = target.cpu_s()
    result = loadgen(
        target.port, "paced", "--duration", "5", "--connections", "128", "--rate", str(rate), "--run", run
    )
    cpu = target.cpu_s() - cpu0
    result["cpu_us_per_request"] = round(cpu * 1e6 / max(1, result["responses"]), 1)
    result["core_busy"] = round(cpu / 5, 2)
    return result


GATEWAYS = ("front", "app")


def mock_command(name: str, gc_threshold: str | None = None, *, pinned: bool = True) -> list[str]:
    """The command of gateway `name` (see GATEWAYS), pinned to CPU 0 when `pinned`, with other GC
    thresholds than the CLI's GC_THRESHOLDS when `gc_threshold` is given."""
    cpu = pin(0) if pinned else []
    args = ["--port", "0", "--admin-token", TOKEN, *(("--no-fast-path",) if name == "app" else ())]
    if gc_threshold is None:
        return [*cpu, sys.executable, "-m", "mock_platform", *args]
    thresholds = ", ".join(str(int(x)) for x in gc_threshold.split(","))
    code = (
        f"import sys; import mock_platform.cli as cli; cli.GC_THRESHOLDS = ({thresholds}); "
        "sys.exit(cli.main())"
    )
    return [*cpu, sys.executable, "-c", code, *args]


def _audit(target: Server) -> bool:
    request = urllib.request.Request(target.url + "/admin/audit", headers={"X-Admin-Token": TOKEN})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())["ok"]


def _summary(rounds: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """One gateway's figures over the rounds."""
    ratios = sorted(r["ratio"][name] for r in rounds)
    p99s = [r["paced"][name]["latency_ms"]["p99"] for r in rounds]
    return {
        "ratio": statistics.median(ratios),
        "ratio_range": [ratios[0], ratios[-1]],
        "ratio_cpu": statistics.median(r["ratio_cpu"][name] for r in rounds),
        "p99_at_goal_rate": statistics.median(p99s),
        "p99_range": [min(p99s), max(p99s)],
        "core_busy_range": [
            min(r["paced"][name]["core_busy"] for r in rounds),
            max(r["paced"][name]["core_busy"] for r in rounds),
        ],
        "rounds_meeting_goals": sum(
            r["ratio"][name] >= 0.5 and r["paced"][name]["latency_ms"]["p99"] < 10 for r in rounds
        ),
        "rounds": len(rounds),
    }


def run(seconds: int, rounds: int, names: list[str], gc_threshold: str | None = None) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers inherit it: 10k sockets
    hello_cmd = [*pin(0), sys.executable, str(BENCH / "hello_server.py"), "--port", "0"]
    result: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "pinned": bool(pin(0)),
        "loadavg_before": os.getloadavg(),
        "servers": [*names, "hello"],
        "commands": {name: " ".join(mock_command(name, gc_threshold)) for name in names},
        "wrk_rounds": [],
    }
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(server(mock_command(name, gc_threshold), "listening on"))
            for name in names
        }
        servers["hello"] = stack.enter_context(server(hello_cmd, "listening on"))
        for name in names:
            admin(servers[name].url, "POST", "/admin/seed", SEED)
        for target in servers.values():  # warm-up: imports, first connections, caches
            wrk(target, 2, 64)
        everyone = list(servers)
        for i in range(rounds):  # the order rotates, so a drift in the machine's speed hits all alike
            order = everyone[i % len(everyone) :] + everyone[: i % len(everyone)]
            runs = {name: wrk(servers[name], seconds, 64) for name in order}
            # the latency goal's rate, with hello-world beside the gateways as the machine's control
            paced_runs = {name: paced(servers[name], PACED_RATES[-1], f"r{i}") for name in order}
            hello = runs["hello"]
            result["wrk_rounds"].append(
                {
                    "order": order,
                    "wrk": runs,
                    "paced": paced_runs,
                    "ratio": {name: round(runs[name]["rate"] / hello["rate"], 3) for name in names},
                    "ratio_cpu": {
                        name: round(hello["cpu_us_per_request"] / runs[name]["cpu_us_per_request"], 3)
                        for name in names
                    },
                }
            )
        result["summary"] = {name: _summary(result["wrk_rounds"], name) for name in names}
        first = servers[names[0]]
        result["paced_first"] = [paced(first, rate, f"p{rate}") for rate in PACED_RATES[:-1]]
        admin(first.url, "PUT", "/admin/faults", {SEND: {"latency": {"dist": "constant", "ms": 100}}})
        inflight = ("inflight", "--connections", "10000", "--duration", "5", "--run", "i")
        result["inflight_first"] = loadgen(first.port, *inflight)
        admin(first.url, "PUT", "/admin/faults", {})
        result["audit_ok"] = {name: _audit(servers[name]) for name in names}
    result["loadavg_after"] = os.getloadavg()
    return result


def _lat(run: dict[str, Any]) -> str:
    ms, service = run["latency_ms"], run["service_ms"]
    return f"p50 {ms['p50']} ms, p99 {ms['p99']} ms (service {service['p99']} ms), max {ms['max']} ms"


def _wrk_line(w: dict[str, Any]) -> str:
    counts = f"ok {w['ok']}, other {w['other']}, " if w["ok"] is not None else ""
    return f"{w['rate']:>7.0f} req/s ({counts}p99 {w['p99']}), {w['cpu_us_per_request']} us CPU each"


def _paced_line(run: dict[str, Any]) -> str:
    return f"{_lat(run)}, core {run['core_busy']:.0%} busy"


def report(r: dict[str, Any]) -> str:
    names = [n for n in r["servers"] if n != "hello"]
    inf = r["inflight_first"]
    lines = [
        f"CPUs {r['cpus']}, servers pinned to CPU 0 and clients to CPU 1: {r['pinned']}; "
        f"load average before {r['loadavg_before'][0]:.2f}, after {r['loadavg_after'][0]:.2f}",
        "ratios are to hello-world; " + "; ".join(f"{n} = {r['commands'][n]}" for n in names),
    ]
    for i, rnd in enumerate(r["wrk_rounds"], 1):
        for j, name in enumerate(r["servers"]):
            ratio = f"; ratio {rnd['ratio'][name]:.3f}" if name in rnd["ratio"] else ""
            label = f"wrk round {i}" if j == 0 else ""
            lines.append(f"{label:<14} {name:<12} {_wrk_line(rnd['wrk'][name])}{ratio}")
    for i, rnd in enumerate(r["wrk_rounds"], 1):
        for j, name in enumerate(r["servers"]):
            label = f"5,000/s round {i}" if j == 0 else ""
            lines.append(f"{label:<17} {name:<12} {_paced_line(rnd['paced'][name])}")
    for name in names:
        s = r["summary"][name]
        low, high = s["ratio_range"]
        busy_low, busy_high = s["core_busy_range"]
        lines.append(
            f"{name:<12} ratio median {s['ratio']:.3f} (range {low:.3f}-{high:.3f}), "
            f"CPU ratio {s['ratio_cpu']:.3f}; p99 at 5,000/s median {s['p99_at_goal_rate']} ms "
            f"(range {s['p99_range'][0]}-{s['p99_range'][1]}), core {busy_low:.0%}-{busy_high:.0%} busy; "
            f"rounds meeting both goals {s['rounds_meeting_goals']}/{s['rounds']}"
        )
    lines += [
        *(
            f"{pg['rate']:>6.0f} req/s   {names[0]} {_lat(pg)}; "
            f"{pg['ok']}/{pg['sent']} ok, errs {pg['errors']}"
            for pg in r["paced_first"]
        ),
        f"in flight      {names[0]}, {inf['peak_in_flight']} concurrent at 100 ms injected: "
        f"{inf['responses']} answers, {inf['ok']} ok, {inf['not_ok']} not ok, errors {inf['errors']}, "
        f"unanswered {inf['unanswered']}, {inf['rate']} req/s, {_lat(inf)}",
        "audit ok: " + ", ".join(f"{n} {ok}" for n, ok in r["audit_ok"].items()),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=6, help="length of each measured wrk run (default 6)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every server, order rotated (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--gc-threshold", metavar="G0,G1,G2", help="GC thresholds for every mock instead of the CLI's"
    )
    parser.add_argument(
        "--servers",
        default=",".join(GATEWAYS),
        help="gateways to run, comma-separated; the first is also measured alone (default: all)",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is not installed (Debian: apt-get install wrk)")
    if args.gc_threshold is not None and not re.fullmatch(r"\d+,\d+,\d+", args.gc_threshold):
        parser.error("--gc-threshold: expected three integers, e.g. 50000,50,1000")
    if args.seconds < 1 or args.rounds < 1:
        parser.error("--seconds and --rounds must be at least 1")
    names = [n for n in args.servers.split(",") if n]
    if not names or any(n not in GATEWAYS for n in names):
        parser.error(f"--servers: a comma-separated list of {', '.join(GATEWAYS)}")
    result = run(args.seconds, args.rounds, names, args.gc_threshold)
    result["gc_threshold"] = args.gc_threshold
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
