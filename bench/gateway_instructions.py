"""Benchmark: instructions per request, the gateway's voucher.send against the bare hello-world.

CPU time on a shared VM moves by 30-50 % from one minute to the next (neighbours, caches), and
bench/mock_gateway.py can only average that out. Instructions executed do not move: callgrind
(valgrind) counts them for each server, one after the other — the gateway served each way
bench/mock_gateway.py knows (`front`: `python -m mock_platform` as shipped, plain POST /gateway.do
answered by its llhttp front; `app`: `--no-fast-path`, every request through aiohttp's
Application) and bench/hello_server.py — while one keep-alive client sends the same unsigned
voucher.send form as bench/voucher_send.lua, one request at a time (a unique out_biz_no and user
each). Counting starts after a warm-up and stops before shutdown (`callgrind_control -i`), so
start-up is not in the figure. Each ratio hello / gateway is the rate ratio one core would give
if both ran at the same instructions per cycle; a gateway touches more memory, so its real ratio
is somewhat lower (compare with mock_gateway.py's CPU time per request).

    .venv/bin/python bench/gateway_instructions.py              # about a minute
    .venv/bin/python bench/gateway_instructions.py --servers front --requests 5000 --json

Needs valgrind (Debian: apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from mock_gateway import ACTIVITY, BENCH, GATEWAYS, SEED, Server, admin, mock_command, server

WARM_UP = 300


def form(i: int) -> str:
    biz = json.dumps(
        {"activity_id": ACTIVITY, "out_biz_no": f"cg-{i}", "user_id": f"2088{i:012d}"}, separators=(",", ":")
    )
    return urllib.parse.urlencode(
        {
            "app_id": "2021000000000001",
            "method": "alipay.marketing.activity.voucher.send",
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": "2026-11-24 12:00:00",
            "version": "1.0",
            "biz_content": biz,
        }
    )


def send(target: Server, first: int, count: int) -> int:
    """`count` voucher.send calls on one keep-alive connection; how many answered code 10000."""
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=120)
    headers = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
    ok = 0
    try:
        for i in range(first, first + count):
            conn.request("POST", "/gateway.do", body=form(i), headers=headers)
            response = conn.getresponse()
            ok += response.status == 200 and b'"code":"10000"' in response.read()
    finally:
        conn.close()
    return ok


def instrument(target: Server, state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(target.pid)], check=True, capture_output=True)


def measure(label: str, cmd: list[str], requests: int, seed: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        grind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        with server([*grind, *cmd], "listening on") as target:
            if seed:
                admin(target.url, "POST", "/admin/seed", SEED)
            send(target, 0, WARM_UP)
            instrument(target, "on")
            ok = send(target, WARM_UP, requests)
            instrument(target, "off")
        # callgrind writes its totals when the server exits (the server() context stops it)
        totals = [
            int(line.split()[1])
            for path in Path(tmp).glob("callgrind.out*")
            for line in path.read_text(errors="replace").splitlines()
            if line.startswith(("summary:", "totals:"))
        ]
    if not totals:
        raise SystemExit(f"bench: callgrind wrote no totals for {label}")
    return {"requests": requests, "ok": ok, "instructions_per_request": round(max(totals) / requests)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=2000, help="measured requests per server (default 2000)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--servers", default=",".join(GATEWAYS), help="gateways to measure, comma-separated (default: all)"
    )
    args = parser.parse_args()
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is not installed (Debian: apt-get install valgrind)")
    names = [n for n in args.servers.split(",") if n]
    if not names or any(n not in GATEWAYS for n in names):
        parser.error(f"--servers: a comma-separated list of {', '.join(GATEWAYS)}")
    result: dict[str, Any] = {
        name: measure(name, mock_command(name, pinned=False), args.requests, seed=True) for name in names
    }
    hello = [sys.executable, str(BENCH / "hello_server.py"), "--port", "0"]
    result["hello"] = measure("hello-world", hello, args.requests, seed=False)
    h = result["hello"]["instructions_per_request"]
    result["ratio"] = {name: round(h / result[name]["instructions_per_request"], 3) for name in names}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name in [*names, "hello"]:
        r = result[name]
        ratio = f"; ratio hello / it {result['ratio'][name]:.3f}" if name in names else ""
        print(
            f"{name:<12} {r['instructions_per_request']:>9,} instructions per request ({r['ok']} ok){ratio}"
        )
    print("(each ratio is the rate ratio one core would give at equal instructions per cycle)")


if __name__ == "__main__":
    main()
