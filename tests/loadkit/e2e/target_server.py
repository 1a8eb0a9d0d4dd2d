"""Small HTTP targets with known behaviour, for the end-to-end tests of the harness.

Run as `python target_server.py MODE`: binds 127.0.0.1 on a free port, prints
`listening on http://127.0.0.1:PORT`, serves until SIGTERM. GET /count gives the requests served.

Modes:
  capped   serves at most CAP_QPS requests/s (requests are served one after another)
  stall    answers in ~1 ms, except that every 5 s it stalls for 1 s (everything waits)
  mix      latency mix: 90% 10 ms, 7% 100 ms, 3% 400 ms (GET /truth: the percentiles served)
  fast     answers at once
  error    answers 500 to everything
  delay:MS answers after MS milliseconds (e.g. delay:20)
  raw      answers at once from a bare asyncio protocol on uvloop, tens of thousands of requests
           a second on one core: far more than one Locust process can send
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time

from aiohttp import web

CAP_QPS = 150.0
STALL_EVERY_S = 5.0
STALL_FOR_S = 1.0


def make_app(mode: str) -> web.Application:
    state = {"count": 0, "t0": time.monotonic(), "next_free": 0.0}
    loop = asyncio.get_event_loop()
    rng = random.Random(7)

    served_ms: list[float] = []  # how long each request really took inside the server

    async def handle(_request: web.Request) -> web.Response:
        state["count"] += 1
        began = loop.time()
        try:
            return await respond()
        finally:
            served_ms.append((loop.time() - began) * 1000.0)

    async def respond() -> web.Response:
        if mode == "capped":
            # one request at a time, each taking exactly 1/CAP_QPS of server time (a D/1 queue)
            now = loop.time()
            done = max(now, state["next_free"]) + 1.0 / CAP_QPS
            state["next_free"] = done
            await asyncio.sleep(done - now)
        elif mode == "stall":
            phase = (time.monotonic() - state["t0"]) % STALL_EVERY_S
            if phase >= STALL_EVERY_S - STALL_FOR_S:
                await asyncio.sleep(STALL_EVERY_S - phase)
        elif mode == "mix":
            draw = rng.random()
            await asyncio.sleep(0.010 if draw < 0.90 else 0.100 if draw < 0.97 else 0.400)
        elif mode == "error":
            return web.Response(status=500, text="broken")
        elif mode.startswith("delay:"):
            await asyncio.sleep(float(mode.split(":", 1)[1]) / 1000.0)
        return web.Response(text="ok")

    async def count(_request: web.Request) -> web.Response:
        return web.json_response({"count": state["count"]})

    async def truth(_request: web.Request) -> web.Response:
        """Percentiles of the time really spent serving (nearest rank): what the harness must report,
        give or take the transport."""
        ordered = sorted(served_ms)
        pick = {p: ordered[max(0, -(-p * len(ordered) // 100) - 1)] for p in (50, 95, 99)} if ordered else {}
        return web.json_response({f"p{p}": v for p, v in pick.items()})

    app = web.Application()
    app.router.add_get("/count", count)
    app.router.add_get("/truth", truth)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


class RawHttp(asyncio.Protocol):
    """HTTP/1.1 keep-alive, no request bodies: "ok" to everything, the count to GET /count."""

    count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            if head.startswith(b"GET /count "):
                body = b'{"count": %d}' % RawHttp.count
            else:
                RawHttp.count += 1
                body = b"ok"
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))  # type: ignore[attr-defined]


async def serve_raw() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(RawHttp, "127.0.0.1", 0, backlog=1024)
    print(f"listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


async def serve(mode: str) -> None:
    runner = web.AppRunner(make_app(mode), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    if sys.argv[1] == "raw":
        import uvloop

        uvloop.run(serve_raw())
    else:
        asyncio.run(serve(sys.argv[1]))
