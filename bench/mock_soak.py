"""Soak: the mock's memory under a steady points.send load, the length of an event rehearsal.

Starts `python -m mock_platform` (pinned to CPU 0, this generator to CPU 1 when there are two),
seeds a Jifenbao budget, and sends `alipay.user.alipaypoint.send` at a fixed rate (the full
Jifenbao channel: 240/s) for 10 minutes, a new partner_biz_no per call, users from a population
of 10,000 (every one of them created in the first minute, as a real event's visitors come back).
Every few seconds it samples the mock's resident memory (RSS, from /proc); at the end it prints
RSS over time, the idempotency store's entries, and the slope of RSS after the warm-up: the
default window (5 minutes) fills the store at this rate, then it must stay flat.

    .venv/bin/python bench/mock_soak.py                          # 10 minutes at 240/s
    .venv/bin/python bench/mock_soak.py --rate 2000 --minutes 5  # faster: the cap binds instead
    .venv/bin/python bench/mock_soak.py --json                   # every sample as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvloop

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from loadgen import paced  # noqa: E402  (bench/, beside this file)
from mock_gateway import pin, server  # noqa: E402

TOKEN = "soak-admin-token"
BUDGET = "JFB-SOAK"
USERS = 10_000
SEED = {"point_budgets": [{"budget_code": BUDGET, "total_amount": 10**13}]}


def points_send_request(run: str) -> Callable[[int], bytes]:
    """Request bytes for points.send number `i`: a new partner_biz_no, a user of the population."""
    prefix = (
        "app_id=2021000000000001&method=alipay.user.alipaypoint.send&format=JSON&charset=utf-8"
        "&sign_type=RSA2&version=1.0&timestamp=" + quote(time.strftime("%Y-%m-%d %H:%M:%S"))
    )

    def make(i: int) -> bytes:
        biz = (
            f'{{"budget_code":"{BUDGET}","partner_biz_no":"{run}-{i:012d}",'
            f'"point_amount":10,"user_id":"2088{i % USERS:012d}","memo":"soak"}}'
        )
        body = (prefix + "&biz_content=" + quote(biz, safe="")).encode()
        head = (
            "POST /gateway.do HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded;charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    return make


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def admin(url: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("X-Admin-Token", TOKEN)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def slope_mb_per_min(samples: list[dict[str, float]], after_s: float) -> float | None:
    """Least-squares slope of RSS (MB per minute) over the samples taken after `after_s`."""
    points = [(s["t"], s["rss_mb"]) for s in samples if s["t"] >= after_s]
    if len(points) < 3:
        return None
    ts = [t for t, _ in points]
    return statistics.linear_regression(ts, [r for _, r in points]).slope * 60


def run(rate: float, minutes: float, every: float, warmup: float, connections: int) -> dict[str, Any]:
    if pin(1):
        os.sched_setaffinity(0, {1})
    cmd = [*pin(0), sys.executable, "-m", "mock_platform", "--port", "0", "--admin-token", TOKEN]
    with server(cmd, "listening on") as mock:
        admin(mock.url, "POST", "/admin/seed", SEED)
        samples: list[dict[str, float]] = []
        stop = threading.Event()
        t0 = time.monotonic()

        def sample() -> None:
            while True:
                samples.append({"t": round(time.monotonic() - t0, 1), "rss_mb": round(rss_mb(mock.pid), 1)})
                if stop.wait(every):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        load = uvloop.run(
            paced(mock.port, rate, minutes * 60, connections, points_send_request(f"s{int(t0)}"))
        )
        stop.set()
        sampler.join(5)
        samples.append({"t": round(time.monotonic() - t0, 1), "rss_mb": round(rss_mb(mock.pid), 1)})
        totals = admin(mock.url, "GET", "/admin/audit")
        stats = totals["totals"]
    return {
        "command": " ".join(sys.argv),
        "mock_command": " ".join(cmd),
        "rate": rate,
        "minutes": minutes,
        "warmup_s": warmup,
        "load": load,
        "audit_ok": totals["ok"],
        "idempotency": stats.get("idempotency"),
        "points": stats.get("points"),
        "samples": samples,
        "rss_start_mb": samples[0]["rss_mb"],
        "rss_at_warmup_mb": next((s["rss_mb"] for s in samples if s["t"] >= warmup), None),
        "rss_end_mb": samples[-1]["rss_mb"],
        "rss_min_after_warmup_mb": min((s["rss_mb"] for s in samples if s["t"] >= warmup), default=None),
        "rss_max_after_warmup_mb": max((s["rss_mb"] for s in samples if s["t"] >= warmup), default=None),
        "slope_after_warmup_mb_per_min": slope_mb_per_min(samples, warmup),
    }


def report(r: dict[str, Any]) -> str:
    load = r["load"]
    lines = [
        f"{r['rate']:.0f} points.send/s for {r['minutes']:g} min: {load['ok']} ok of {load['sent']} sent, "
        f"not ok {load['not_ok']}, errors {load['errors']}, unanswered {load['unanswered']}; "
        f"latency p50 {load['latency_ms']['p50']} ms, p99 {load['latency_ms']['p99']} ms, "
        f"max {load['latency_ms']['max']} ms",
        f"audit ok {r['audit_ok']}; idempotency {r['idempotency']}",
        "RSS over time (MB):",
    ]
    step = max(1, len(r["samples"]) // 20)
    lines += [f"  {s['t']:>6.0f} s  {s['rss_mb']:>7.1f}" for s in r["samples"][::step]]
    slope = r["slope_after_warmup_mb_per_min"]
    lines.append(
        f"RSS {r['rss_start_mb']} MB at start, {r['rss_at_warmup_mb']} MB at {r['warmup_s']:g} s (warm-up), "
        f"{r['rss_end_mb']} MB at the end, {r['rss_min_after_warmup_mb']}-{r['rss_max_after_warmup_mb']} MB "
        "after warm-up; "
        f"slope after warm-up {'n/a' if slope is None else f'{slope:+.3f} MB/min'}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=240.0, help="points.send per second (default 240)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples (default 5)")
    parser.add_argument(
        "--warmup", type=float, default=330.0, help="seconds before the slope is measured (default 330)"
    )
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    args = parser.parse_args()
    if args.rate <= 0 or args.minutes <= 0 or args.every <= 0:
        parser.error("--rate, --minutes and --every must be positive")
    result = run(args.rate, args.minutes, args.every, args.warmup, args.connections)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
