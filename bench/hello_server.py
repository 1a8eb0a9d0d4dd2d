"""The baseline: a bare aiohttp + uvloop server answering every POST with a fixed small JSON body.

It does what any aiohttp app must do (accept, parse the request line and headers, write a
response) and nothing the mock does on top (form parsing, faults, ledger, envelope), so the ratio
of the two rates is the cost of the mock's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop
from aiohttp import web

BODY = (
    b'{"alipay_marketing_activity_voucher_send_response":{"code":"10000","msg":"Success","voucher_id":"V1"}}'
)


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


async def serve(port: int) -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"hello listening on http://127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port and print it")
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
