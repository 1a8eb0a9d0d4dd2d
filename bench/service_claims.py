"""Benchmark: the campaign service's claim throughput on one core, against the mock on the other.

The service (`python -m campaign_service`) is pinned to CPU 0; the mock platform and this script's
load generator (aiohttp, N claims in flight, closed loop) share CPU 1. Every claim is a real one:
a signed session (minted with the service's session secret, so no login is needed), an RSA2-signed
gateway call, the response's signature verified, two writes to the SQLite records (pending, then
granted). Each point runs a few seconds; the figures are claims answered per second, latency
percentiles, errors, how busy the service's core was (its CPU time from /proc), the CPU cost of
one answer and the answers per second that cost gives one free core ("1 core": the steadier
figure on a machine shared with other work), and how busy the other core was (the mock's CPU and
the generator's). At the end the mock's ledger is checked against the service's records.

    .venv/bin/python bench/campaign_service.py              # about 40 s
    .venv/bin/python bench/campaign_service.py --seconds 5 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from campaign_service.ready import parse_ready_line
from campaign_service.sessions import SessionSigner

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-admin-token"
APP_ID = "2021000000000001"
SECRET = "bench-session-secret-0123456789"
SEED = {
    "point_budgets": [
        {
            "budget_code": "JFB-CHANNEL",
            "total_amount": 10**9,
            "start_time": "NowTime",
            "end_time": "2099-01-01 00:00:00",
        }
    ],
    "activities": [
        {
            "activity_id": "FLASH-SALE",
            "activity_name": "bench",
            "quantity": 99_999_999,
            "quantity_limit_per_user": 1,
            "amount": "1.00",
            "publish_start_time": "NowTime",
            "publish_end_time": "2099-01-01 00:00:00",
        }
    ],
}


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else []


@dataclass
class Proc:
    url: str
    pid: int

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def started(cmd: list[str], prefix: str, env: dict[str, str] | None, log: Path) -> Iterator[Proc]:
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(prefix):
            raise SystemExit(f"bench: {' '.join(cmd)} did not start: {log.read_text()[-2000:]}")
        yield Proc(line.strip()[len(prefix) :], proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def admin(url: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("X-Admin-Token", TOKEN)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


async def load(
    url: str, path: str, sessions: Iterator[str], concurrency: int, seconds: float
) -> dict[str, Any]:
    """`concurrency` claims in flight for `seconds`: answers per second, latency, results."""
    results: dict[str, int] = {}
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            while time.perf_counter() < stop:
                headers = {"Authorization": f"Bearer {next(sessions)}"}
                t0 = time.perf_counter()
                try:
                    async with http.post(url + path, headers=headers) as resp:
                        body = await resp.json()
                        label = body.get("result") or body.get("error") or str(resp.status)
                except aiohttp.ClientError as exc:
                    label = type(exc).__name__
                latencies.append(time.perf_counter() - t0)
                results[label] = results.get(label, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "answers": len(latencies),
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "results": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per point (default 4)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    if pin(1):
        os.sched_setaffinity(0, {1})  # the load generator beside the mock
    work = Path(tempfile.mkdtemp(prefix="campaign-bench-"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (work / "app.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    mock_cmd = [*pin(1), sys.executable, "-m", "mock_platform", "--port", "0", "--admin-token", TOKEN]
    points: list[dict[str, Any]] = []
    with started(mock_cmd, "mock_platform listening on ", None, work / "mock.err") as mock:
        admin(mock.url, "POST", "/admin/seed", SEED)
        admin(mock.url, "POST", "/admin/apps", {"app_id": APP_ID, "public_key": public.decode()})
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")},
            "CAMPAIGN_GATEWAY_URL": mock.url + "/gateway.do",
            "CAMPAIGN_APP_PRIVATE_KEY_FILE": str(work / "app.pem"),
            "CAMPAIGN_PLATFORM_PUBLIC_KEY": admin(mock.url, "GET", "/admin/keys")["alipay_public_key"],
            "CAMPAIGN_SESSION_SECRET": SECRET,
            "CAMPAIGN_ADMIN_TOKEN": TOKEN,
        }
        svc_cmd = [
            *pin(0),
            sys.executable,
            "-m",
            "campaign_service",
            "--port",
            "0",
            "--db",
            str(work / "g.sqlite3"),
        ]
        with started(svc_cmd, "campaign_service listening on ", env, work / "service.err") as svc:
            ready = parse_ready_line("campaign_service listening on " + svc.url)
            assert ready is not None
            signer = SessionSigner(SECRET.encode(), 3600)
            counter = itertools.count(1)

            def fresh() -> Iterator[str]:  # a new user per claim
                while True:
                    yield signer.issue(f"2088{next(counter):012d}", time.time())

            def repeat(n: int) -> Iterator[str]:  # users who claimed already
                ids = [signer.issue(f"2088{i:012d}", time.time()) for i in range(1, n + 1)]
                return itertools.cycle(ids)

            plan = [
                ("points claim, new users", "/api/jifenbao/claim", fresh, 32, None),
                ("points claim, new users", "/api/jifenbao/claim", fresh, 128, None),
                ("voucher claim, new users", "/api/coupons/flash-sale/claim", fresh, 32, None),
                ("points claim, already claimed (records only)", "/api/jifenbao/claim", None, 32, None),
                ("points claim, platform latency 50 ms", "/api/jifenbao/claim", fresh, 128, 50),
            ]
            for name, path, sessions, concurrency, latency_ms in plan:
                faults = (
                    {} if latency_ms is None else {"*": {"latency": {"dist": "constant", "ms": latency_ms}}}
                )
                admin(mock.url, "PUT", "/admin/faults", faults)
                source = sessions() if sessions is not None else repeat(2000)
                cpu0, other0, wall0 = svc.cpu_s(), mock.cpu_s() + own_cpu_s(), time.perf_counter()
                result = asyncio.run(load(ready.url, path, source, concurrency, args.seconds))
                wall = time.perf_counter() - wall0
                cpu, other = svc.cpu_s() - cpu0, mock.cpu_s() + own_cpu_s() - other0
                result.update(
                    name=name,
                    in_flight=concurrency,
                    service_core_busy=round(cpu / wall, 2),
                    service_cpu_us_per_answer=round(cpu * 1e6 / max(1, result["answers"])),
                    per_free_core_s=round(result["answers"] / cpu) if cpu else None,
                    other_core_busy=round(other / wall, 2),
                )
                points.append(result)
            admin(mock.url, "PUT", "/admin/faults", {})
            audit = admin(mock.url, "GET", "/admin/audit")
            with urllib.request.urlopen(ready.url + "/metrics", timeout=10) as resp:
                calls = {
                    line.split("{", 1)[1].split("}", 1)[0]: float(line.rsplit(" ", 1)[1])
                    for line in resp.read().decode().splitlines()
                    if line.startswith("campaign_platform_calls_total{")
                }
            req = urllib.request.Request(ready.url + "/admin/grants", headers={"X-Admin-Token": TOKEN})
            with urllib.request.urlopen(req, timeout=30) as resp:
                rows = [json.loads(line) for line in resp.read().splitlines()]
    shutil.rmtree(work, ignore_errors=True)
    granted = {
        k: sum(1 for r in rows if r["kind"] == k and r["status"] == "granted") for k in ("points", "voucher")
    }
    methods = audit["totals"]["methods"]
    check = {
        "platform_calls": {
            k.replace('method="alipay.', "").replace('",outcome="', " ").rstrip('"'): int(v)
            for k, v in calls.items()
        },
        "audit_ok": audit["ok"],
        "rows": len(rows),
        "rows_not_granted": sum(1 for r in rows if r["status"] != "granted"),
        "points_granted_vs_effects": [granted["points"], methods["alipay.user.alipaypoint.send"]["effects"]],
        "vouchers_granted_vs_effects": [
            granted["voucher"],
            methods["alipay.marketing.activity.voucher.send"]["effects"],
        ],
    }
    if args.json:
        print(json.dumps({"points": points, "check": check}))
        return 0
    print(
        f"{'point':46} {'in flight':>9} {'answers/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'core 0':>6} "
        f"{'CPU/answer':>10} {'1 core':>6} {'core 1':>6}  results"
    )
    for p in points:
        print(
            f"{p['name']:46} {p['in_flight']:>9} {p['per_s']:>9} {p['p50_ms']:>7} {p['p99_ms']:>7} "
            f"{p['service_core_busy']:>6} {p['service_cpu_us_per_answer']:>7} µs {p['per_free_core_s']:>6} "
            f"{p['other_core_busy']:>6}  "
            f"{p['results']}"
        )
    print("check:", json.dumps(check))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
