"""Benchmark: the mock's gateway (voucher.send) against a bare aiohttp + uvloop hello-world.

Three servers, side by side in the same run:

- the gateway: `python -m mock_platform` as shipped, plain POST /gateway.do answered by its fast
  HTTP/1.1 front (mock_platform/front.py);
- the gateway via aiohttp: the same with `--no-fast-path`, every request through aiohttp's own
  request cycle (what the front saves);
- hello-world: bench/hello_server.py, a bare aiohttp + uvloop app (the baseline).

All three run pinned to CPU 0, the load generators to CPU 1 (when `taskset` exists and there are
two CPUs), everything on 127.0.0.1; both mocks get the same seed:

1. max rate: wrk (Debian's) with bench/voucher_send.lua — the same unsigned voucher.send form, a
   unique out_biz_no and user per request — against each server, in rounds that rotate the order
   of the three (so a drift in the machine's speed hits all alike); the rates, each gateway's ratio
   to hello-world per round and its median, and the servers' CPU time per request (the ratio one
   free core would give on a shared machine);
2. latency at fixed rates: bench/loadgen.py (wrk has no rate control and wrk2 is not in Debian),
   latency counted from each request's intended send time, and how busy that keeps the server's
   core; 5,000 req/s against all three in every round (hello-world as the machine's control),
   then 1,000 and 2,500 req/s once against the gateway;
3. 10,000 requests in flight with 100 ms of injected constant latency (PUT /admin/faults), against
   the gateway; then the ledger audit (GET /admin/audit) of both mocks.

    .venv/bin/python bench/mock_gateway.py            # 2 to 3 minutes
    .venv/bin/python bench/mock_gateway.py --json     # the figures as one JSON object
    .venv/bin/python bench/mock_gateway.py --gc-threshold 50000,50,1000   # another GC setting, both mocks

Goals (issue 2), for the gateway: >= 0.5 x hello-world on one core; p99 < 10 ms at 5,000 req/s;
10,000 in flight at 100 ms without errors. In the JSON, `ratio`, `ratio_range`, `ratio_cpu`,
`p99_at_goal_rate` and each round's `gateway` / `paced_gateway` are the gateway's (fast path); the
`..._aiohttp` keys (`ratio_aiohttp`, `p99_at_goal_rate_aiohttp`, each round's `gateway_aiohttp`,
`paced_gateway_aiohttp`, ...) are the same figures for the gateway via aiohttp.
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


def mock_command(gc_threshold: str | None, fast_path: bool = True) -> list[str]:
    """`python -m mock_platform`, or the same CLI with other GC thresholds than its GC_THRESHOLDS;
    with `--no-fast-path` (every request through aiohttp's request cycle) when not `fast_path`."""
    args = ["--port", "0", "--admin-token", TOKEN, *(() if fast_path else ("--no-fast-path",))]
    if gc_threshold is None:
        return [*pin(0), sys.executable, "-m", "mock_platform", *args]
    thresholds = ", ".join(str(int(x)) for x in gc_threshold.split(","))
    code = (
        f"import sys; import mock_platform.cli as cli; cli.GC_THRESHOLDS = ({thresholds}); "
        "sys.exit(cli.main())"
    )
    return [*pin(0), sys.executable, "-c", code, *args]


def _audit(target: Server) -> bool:
    request = urllib.request.Request(target.url + "/admin/audit", headers={"X-Admin-Token": TOKEN})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())["ok"]


def _medians(rounds: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
    """The summary figures of one gateway over the rounds (suffix "" or "_aiohttp")."""
    ratios = sorted(r["ratio" + suffix] for r in rounds)
    return {
        "ratio" + suffix: statistics.median(ratios),
        "ratio_range" + suffix: [ratios[0], ratios[-1]],
        "ratio_cpu" + suffix: statistics.median(r["ratio_cpu" + suffix] for r in rounds),
        "p99_at_goal_rate" + suffix: statistics.median(
            r["paced_gateway" + suffix]["latency_ms"]["p99"] for r in rounds
        ),
    }


def run(seconds: int, rounds: int, gc_threshold: str | None = None) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers inherit it: 10k sockets
    hello_cmd = [*pin(0), sys.executable, str(BENCH / "hello_server.py"), "--port", "0"]
    result: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "pinned": bool(pin(0)),
        "loadavg_before": os.getloadavg(),
        "wrk_rounds": [],
    }
    with (
        server(mock_command(gc_threshold), "listening on") as mock,
        server(mock_command(gc_threshold, fast_path=False), "listening on") as mock_aio,
        server(hello_cmd, "listening on") as hello,
    ):
        names = {mock.pid: "gateway", mock_aio.pid: "gateway_aiohttp", hello.pid: "hello"}
        for target in (mock, mock_aio):
            admin(target.url, "POST", "/admin/seed", SEED)
        for target in (mock, mock_aio, hello):  # warm-up: imports, first connections, caches
            wrk(target, 2, 64)
        for i in range(rounds):  # the order rotates, so a drift in the machine's speed hits all alike
            order = [mock, mock_aio, hello][i % 3 :] + [mock, mock_aio, hello][: i % 3]
            runs = {names[t.pid]: wrk(t, seconds, 64) for t in order}
            # the latency goal's rate, with hello-world beside the gateways as the machine's control
            paced_runs = {"paced_" + names[t.pid]: paced(t, PACED_RATES[-1], f"r{i}") for t in order}
            g, a, h = runs["gateway"], runs["gateway_aiohttp"], runs["hello"]
            result["wrk_rounds"].append(
                {
                    "order": [names[t.pid] for t in order],
                    "gateway": g,
                    "gateway_aiohttp": a,
                    "hello": h,
                    "ratio": round(g["rate"] / h["rate"], 3),
                    "ratio_aiohttp": round(a["rate"] / h["rate"], 3),
                    "ratio_cpu": round(h["cpu_us_per_request"] / g["cpu_us_per_request"], 3),
                    "ratio_cpu_aiohttp": round(h["cpu_us_per_request"] / a["cpu_us_per_request"], 3),
                    "paced_gateway": paced_runs["paced_gateway"],
                    "paced_gateway_aiohttp": paced_runs["paced_gateway_aiohttp"],
                    "paced_hello": paced_runs["paced_hello"],
                }
            )
        result.update(_medians(result["wrk_rounds"], ""))
        result.update(_medians(result["wrk_rounds"], "_aiohttp"))
        result["paced_gateway"] = [paced(mock, rate, f"p{rate}") for rate in PACED_RATES[:-1]]
        admin(mock.url, "PUT", "/admin/faults", {SEND: {"latency": {"dist": "constant", "ms": 100}}})
        inflight = ("inflight", "--connections", "10000", "--duration", "5", "--run", "i")
        result["inflight_gateway"] = loadgen(mock.port, *inflight)
        admin(mock.url, "PUT", "/admin/faults", {})
        result["audit_ok"] = _audit(mock)
        result["audit_ok_aiohttp"] = _audit(mock_aio)
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
    inf = r["inflight_gateway"]
    lines = [
        f"CPUs {r['cpus']}, servers pinned to CPU 0 and clients to CPU 1: {r['pinned']}; "
        f"load average before {r['loadavg_before'][0]:.2f}, after {r['loadavg_after'][0]:.2f}",
        "gateway = fast path (the default); gateway via aiohttp = --no-fast-path; ratios are to hello-world",
    ]
    for i, rnd in enumerate(r["wrk_rounds"], 1):
        lines += [
            f"wrk round {i}    gateway              {_wrk_line(rnd['gateway'])}; ratio {rnd['ratio']:.3f}",
            f"               gateway via aiohttp  {_wrk_line(rnd['gateway_aiohttp'])}; "
            f"ratio {rnd['ratio_aiohttp']:.3f}",
            f"               hello-world          {_wrk_line(rnd['hello'])}",
        ]
    lines += [
        f"ratio gateway / hello-world:             median {r['ratio']:.3f} "
        f"(range {r['ratio_range'][0]:.3f}-{r['ratio_range'][1]:.3f})   (goal >= 0.5)",
        f"ratio gateway via aiohttp / hello-world: median {r['ratio_aiohttp']:.3f} "
        f"(range {r['ratio_range_aiohttp'][0]:.3f}-{r['ratio_range_aiohttp'][1]:.3f})",
        f"CPU per request: on a free core the gateway would reach {r['ratio_cpu']:.3f} x hello-world, "
        f"the gateway via aiohttp {r['ratio_cpu_aiohttp']:.3f} x (medians)",
        *(
            f"{pg['rate']:>6.0f} req/s   gateway {_lat(pg)}; {pg['ok']}/{pg['sent']} ok, errs {pg['errors']}"
            for pg in r["paced_gateway"]
        ),
    ]
    for i, rnd in enumerate(r["wrk_rounds"], 1):
        lines += [
            f"{rnd['paced_gateway']['rate']:>6.0f} req/s   round {i}: gateway              "
            f"{_paced_line(rnd['paced_gateway'])}",
            f"                        gateway via aiohttp  {_paced_line(rnd['paced_gateway_aiohttp'])}",
            f"                        hello-world          {_paced_line(rnd['paced_hello'])}",
        ]
    lines += [
        f"p99 at 5,000 req/s, median of the rounds: gateway {r['p99_at_goal_rate']} ms (goal < 10 ms), "
        f"gateway via aiohttp {r['p99_at_goal_rate_aiohttp']} ms",
        f"in flight      gateway, {inf['peak_in_flight']} concurrent at 100 ms injected: "
        f"{inf['responses']} answers, {inf['ok']} ok, {inf['not_ok']} not ok, errors {inf['errors']}, "
        f"unanswered {inf['unanswered']}, {inf['rate']} req/s, {_lat(inf)}",
        f"audit ok: gateway {r['audit_ok']}, gateway via aiohttp {r['audit_ok_aiohttp']}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=6, help="length of each measured wrk run (default 6)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="wrk rounds of the three servers, order rotated (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--gc-threshold", metavar="G0,G1,G2", help="GC thresholds for both mocks instead of the CLI's"
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
