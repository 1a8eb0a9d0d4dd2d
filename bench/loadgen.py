"""A small HTTP/1.1 load generator for the two things wrk cannot do: send at a fixed rate and
measure latency from the intended send time (wrk2's correction), and hold N requests in flight.

Raw asyncio protocols on uvloop, keep-alive, one request at a time per connection: parsing a
response costs a few microseconds, so the generator is not what limits a single-core server.

    python bench/loadgen.py paced --port P --rate 5000 --duration 5 --activity ACT1
    python bench/loadgen.py inflight --port P --connections 10000 --duration 5 --activity ACT1

Prints one JSON object with the counts and latency percentiles (milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import uvloop

OK_MARK = b'"code":"10000"'


def voucher_send_request(activity: str, run: str) -> Callable[[int], bytes]:
    """Request bytes for voucher.send number `i`: unique out_biz_no and user per request."""
    prefix = (
        "app_id=2021000000000001&method=alipay.marketing.activity.voucher.send&format=JSON"
        "&charset=utf-8&sign_type=RSA2&version=1.0&timestamp=" + quote(time.strftime("%Y-%m-%d %H:%M:%S"))
    )

    def make(i: int) -> bytes:
        biz = f'{{"activity_id":"{activity}","out_biz_no":"{run}-{i}","user_id":"2088{i:012d}"}}'
        body = (prefix + "&biz_content=" + quote(biz, safe="")).encode()
        head = (
            "POST /gateway.do HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded;charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    return make


class Conn(asyncio.Protocol):
    """One keep-alive connection; `on_done(conn, ok, error)` fires when a response is complete."""

    def __init__(self, on_done: Callable[[Conn, bool, str | None], None]) -> None:
        self.on_done = on_done
        self.transport: Any = None  # uvloop's transports do not subclass asyncio.Transport
        self.buf = bytearray()
        self.busy = False
        self.sent_at = 0.0
        self.intended = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def send(self, data: bytes, intended: float) -> None:
        self.busy = True
        self.intended = intended
        self.sent_at = time.perf_counter()
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        start = head.find(b"content-length:")
        if start < 0:
            self._finish(False, "response without content-length")
            return
        line_end = head.find(b"\r\n", start)
        length = int(head[start + 15 : line_end if line_end >= 0 else len(head)])
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4 : end + 4 + length])
        status_ok = head.startswith(b"http/1.1 200")
        del self.buf[: end + 4 + length]
        self._finish(status_ok and OK_MARK in body, None if status_ok else head[:12].decode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.busy:
            self._finish(False, f"connection lost: {exc}")

    def _finish(self, ok: bool, error: str | None) -> None:
        self.busy = False
        self.on_done(self, ok, error)


async def open_conns(port: int, n: int, on_done: Callable[[Conn, bool, str | None], None]) -> list[Conn]:
    """`n` connections, opened in batches so the server's accept queue never overflows."""
    loop = asyncio.get_running_loop()
    conns: list[Conn] = []
    for start in range(0, n, 500):
        size = min(500, n - start)
        batch = await asyncio.gather(
            *(loop.create_connection(lambda: Conn(on_done), "127.0.0.1", port) for _ in range(size))
        )
        conns.extend(proto for _, proto in batch)
    return conns


def percentiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    xs = sorted(xs)

    def pick(q: float) -> float:
        return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 3)

    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "p999": pick(0.999), "max": pick(1.0)}


class Tally:
    def __init__(self) -> None:
        self.ok = 0
        self.not_ok = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.corrected: list[float] = []
        self.service: list[float] = []

    def add(self, conn: Conn, ok: bool, error: str | None) -> None:
        now = time.perf_counter()
        self.corrected.append(now - conn.intended)
        self.service.append(now - conn.sent_at)
        if ok:
            self.ok += 1
        elif error:
            self.errors[error] += 1
        else:
            self.not_ok += 1

    def report(self, **extra: Any) -> dict[str, Any]:
        return {
            **extra,
            "responses": self.ok + self.not_ok + sum(self.errors.values()),
            "ok": self.ok,
            "not_ok": self.not_ok,
            "errors": dict(self.errors),
            "latency_ms": percentiles(self.corrected),
            "service_ms": percentiles(self.service),
        }


async def paced(port: int, rate: float, duration: float, conns: int, make: Callable[[int], bytes]) -> dict:
    """Send at `rate` for `duration` seconds; latency counted from each request's intended time."""
    tally = Tally()
    idle: collections.deque[Conn] = collections.deque()
    backlog: collections.deque[float] = collections.deque()
    counter = itertools.count()
    lost: list[Conn] = []

    def done(conn: Conn, ok: bool, error: str | None) -> None:
        tally.add(conn, ok, error)
        if conn.transport is None:
            lost.append(conn)
            return
        if backlog:
            conn.send(make(next(counter)), backlog.popleft())
        else:
            idle.append(conn)

    idle.extend(await open_conns(port, conns, done))
    total = int(rate * duration)
    t0 = time.perf_counter() + 0.05
    issued = 0
    while issued < total:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while issued < due:
            intended = t0 + issued / rate
            issued += 1
            if idle:
                idle.popleft().send(make(next(counter)), intended)
            else:
                backlog.append(intended)
        # uvloop's timers tick in milliseconds: a shorter sleep would spin. Sending in 1-ms batches
        # makes a request up to 1 ms late, which the corrected latency includes (service does not).
        await asyncio.sleep(max(0.001, t0 + issued / rate - time.perf_counter()))
    deadline = time.perf_counter() + 10
    while (backlog or len(idle) + len(lost) < conns) and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    result = tally.report(mode="paced", rate=rate, duration_s=duration, connections=conns, sent=total)
    result["unanswered"] = total - result["responses"]
    return result


async def inflight(port: int, connections: int, duration: float, make: Callable[[int], bytes]) -> dict:
    """Keep one request outstanding on each of `connections` connections for `duration` seconds."""
    tally = Tally()
    counter = itertools.count()
    state = {"stop": False, "outstanding": 0, "peak": 0}

    def done(conn: Conn, ok: bool, error: str | None) -> None:
        tally.add(conn, ok, error)
        state["outstanding"] -= 1
        if not state["stop"] and conn.transport is not None:
            fire(conn)

    def fire(conn: Conn) -> None:
        state["outstanding"] += 1
        state["peak"] = max(state["peak"], state["outstanding"])
        conn.send(make(next(counter)), time.perf_counter())

    conns = await open_conns(port, connections, done)
    t0 = time.perf_counter()
    for conn in conns:
        fire(conn)
    await asyncio.sleep(duration)
    state["stop"] = True
    deadline = time.perf_counter() + 30
    while state["outstanding"] and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    result = tally.report(mode="inflight", connections=len(conns), duration_s=duration)
    result.update(peak_in_flight=state["peak"], unanswered=state["outstanding"])
    result["rate"] = round(result["responses"] / elapsed, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["paced", "inflight"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--activity", default="ACT1")
    parser.add_argument("--run", default="lg", help="out_biz_no prefix (unique per run)")
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if args.connections + 100 > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections + 1000), hard))
    make = voucher_send_request(args.activity, args.run)
    if args.mode == "paced":
        result = uvloop.run(paced(args.port, args.rate, args.duration, args.connections, make))
    else:
        result = uvloop.run(inflight(args.port, args.connections, args.duration, make))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
