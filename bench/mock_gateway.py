"""Benchmark: the mock's gateway (voucher.send) against a bare aiohttp + uvloop hello-world.

Both servers run pinned to CPU 0, the load generators to CPU 1 (when `taskset` exists and there are
two CPUs), everything on 127.0.0.1:

1. max rate: wrk (Debian's) with bench/voucher_send.lua — the same unsigned voucher.send form, a
   unique out_biz_no and user per request — against each server, in alternated rounds; both rates,
   their ratio per round and its median, and the servers' CPU time per request (the ratio one free
   core would give on a shared machine);
2. latency at fixed rates: bench/loadgen.py (wrk has no rate control and wrk2 is not in Debian),
   latency counted from each request's intended send time, and how busy that keeps the server's
   core; 5,000 req/s in every round, with hello-world at that rate beside it as the machine's
   control, then 1,000 and 2,500 req/s once;
3. 10,000 requests in flight with 100 ms of injected constant latency (PUT /admin/faults).

    .venv/bin/python bench/mock_gateway.py            # about 2 minutes
    .venv/bin/python bench/mock_gateway.py --json     # the figures as one JSON object
    .venv/bin/python bench/mock_gateway.py --gc-threshold 50000,50,1000   # try another GC setting

Goals (issue 2): gateway >= 0.5 x hello-world on one core; p99 < 10 ms at 5,000 req/s;
10,000 in flight at 100 ms without errors.
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


def mock_command(gc_threshold: str | None) -> list[str]:
    """`python -m mock_platform`, or the same CLI with other GC thresholds than its GC_THRESHOLDS."""
    args = ["--port", "0", "--admin-token", TOKEN]
    if gc_threshold is None:
        return [*pin(0), sys.executable, "-m", "mock_platform", *args]
    thresholds = ", ".join(str(int(x)) for x in gc_threshold.split(","))
    code = (
        f"import sys; import mock_platform.cli as cli; cli.GC_THRESHOLDS = ({thresholds}); "
        "sys.exit(cli.main())"
    )
    return [*pin(0), sys.executable, "-c", code, *args]


def run(seconds: int, rounds: int, gc_threshold: str | None = None) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers inherit it: 10k sockets
    mock_cmd = mock_command(gc_threshold)
    hello_cmd = [*pin(0), sys.executable, str(BENCH / "hello_server.py"), "--port", "0"]
    result: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "pinned": bool(pin(0)),
        "loadavg_before": os.getloadavg(),
        "wrk_rounds": [],
    }
    with server(mock_cmd, "listening on") as mock, server(hello_cmd, "listening on") as hello:
        admin(mock.url, "POST", "/admin/seed", SEED)
        for target in (mock, hello):  # warm-up: imports, first connections, caches
            wrk(target, 2, 64)
        for i in range(rounds):  # alternated, so a drift in the machine's speed hits both alike
            first, second = (mock, hello) if i % 2 == 0 else (hello, mock)
            runs = [wrk(first, seconds, 64), wrk(second, seconds, 64)]
            g, h = runs if first is mock else runs[::-1]
            result["wrk_rounds"].append(
                {
                    "gateway": g,
                    "hello": h,
                    "ratio": round(g["rate"] / h["rate"], 3),
                    "ratio_cpu": round(h["cpu_us_per_request"] / g["cpu_us_per_request"], 3),
                    # the latency goal's rate, with hello-world beside it as the machine's control
                    "paced_gateway": paced(mock, PACED_RATES[-1], f"r{i}"),
                    "paced_hello": paced(hello, PACED_RATES[-1], f"r{i}"),
                }
            )
        rounds_ = result["wrk_rounds"]
        ratios = sorted(r["ratio"] for r in rounds_)
        result["ratio"] = statistics.median(ratios)
        result["ratio_range"] = [ratios[0], ratios[-1]]
        result["ratio_cpu"] = statistics.median(r["ratio_cpu"] for r in rounds_)
        result["p99_at_goal_rate"] = statistics.median(
            r["paced_gateway"]["latency_ms"]["p99"] for r in rounds_
        )
        result["paced_gateway"] = [paced(mock, rate, f"p{rate}") for rate in PACED_RATES[:-1]]
        admin(mock.url, "PUT", "/admin/faults", {SEND: {"latency": {"dist": "constant", "ms": 100}}})
        inflight = ("inflight", "--connections", "10000", "--duration", "5", "--run", "i")
        result["inflight_gateway"] = loadgen(mock.port, *inflight)
        admin(mock.url, "PUT", "/admin/faults", {})
        request = urllib.request.Request(mock.url + "/admin/audit", headers={"X-Admin-Token": TOKEN})
        with urllib.request.urlopen(request, timeout=10) as resp:
            result["audit_ok"] = json.loads(resp.read())["ok"]
    result["loadavg_after"] = os.getloadavg()
    return result


def _lat(run: dict[str, Any]) -> str:
    ms, service = run["latency_ms"], run["service_ms"]
    return f"p50 {ms['p50']} ms, p99 {ms['p99']} ms (service {service['p99']} ms), max {ms['max']} ms"


def report(r: dict[str, Any]) -> str:
    inf = r["inflight_gateway"]
    lines = [
        f"CPUs {r['cpus']}, servers pinned to CPU 0 and clients to CPU 1: {r['pinned']}; "
        f"load average before {r['loadavg_before'][0]:.2f}, after {r['loadavg_after'][0]:.2f}",
    ]
    for i, rnd in enumerate(r["wrk_rounds"], 1):
        g, h = rnd["gateway"], rnd["hello"]
        lines += [
            f"wrk round {i}    gateway voucher.send {g['rate']:>7.0f} req/s "
            f"(ok {g['ok']}, other {g['other']}, p99 {g['p99']}), {g['cpu_us_per_request']} us CPU each",
            f"               hello-world          {h['rate']:>7.0f} req/s (p99 {h['p99']}), "
            f"{h['cpu_us_per_request']} us CPU each; ratio {rnd['ratio']:.3f}",
        ]
    lines += [
        f"ratio gateway / hello-world: median {r['ratio']:.3f} (range {r['ratio_range'][0]:.3f}-"
        f"{r['ratio_range'][1]:.3f})   (goal >= 0.5)",
        f"CPU per request: on a free core the gateway would reach {r['ratio_cpu']:.3f} x hello-world "
        "(median)",
        *(
            f"{pg['rate']:>6.0f} req/s   gateway {_lat(pg)}; {pg['ok']}/{pg['sent']} ok, errs {pg['errors']}"
            for pg in r["paced_gateway"]
        ),
        *(
            f"{rnd['paced_gateway']['rate']:>6.0f} req/s   round {i}: gateway {_lat(rnd['paced_gateway'])}, "
            f"core {rnd['paced_gateway']['core_busy']:.0%} busy; hello-world p99 "
            f"{rnd['paced_hello']['latency_ms']['p99']} ms, core {rnd['paced_hello']['core_busy']:.0%} busy"
            for i, rnd in enumerate(r["wrk_rounds"], 1)
        ),
        f"               gateway p99 at 5,000 req/s, median of the rounds: {r['p99_at_goal_rate']} ms "
        "(goal < 10 ms)",
        f"in flight      {inf['peak_in_flight']} concurrent at 100 ms injected: {inf['responses']} answers, "
        f"{inf['ok']} ok, {inf['not_ok']} not ok, errors {inf['errors']}, unanswered {inf['unanswered']}, "
        f"{inf['rate']} req/s, {_lat(inf)}",
        f"audit ok: {r['audit_ok']}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=6, help="length of each measured wrk run (default 6)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="wrk rounds of gateway and hello-world, alternated (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--gc-threshold", metavar="G0,G1,G2", help="GC thresholds for the mock instead of the CLI's"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is not installed (Debian: apt-get install wrk)")
    if args.gc_threshold is not None and not re.fullmatch(r"\d+,\d+,\d+", args.gc_threshold):
        parser.error("--gc-threshold: expected three integers, e.g. 50000,50,1000")
    if args.seconds < 1 or args.rounds < 1:
        parser.error("--seconds and --rounds must be at least 1")
    result = run(args.seconds, args.rounds, args.gc_threshold)
    result["gc_threshold"] = args.gc_threshold
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
