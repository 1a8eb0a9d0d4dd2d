"""The mock served two other ways, for bench/mock_gateway.py and bench/gateway_instructions.py to
compare with the shipped gateway front (mock_platform/front.py, llhttp through httptools):

- `--variant lowlevel`: aiohttp's low-level `web.Server` (no Application routing on the gateway's
  path): its handler sends /gateway.do to the same `Gateway.handle` the app route uses, anything
  else to the app (`app._handle`, to keep /admin/* working for the bench's seed and audit);
- `--variant handwritten`: the front as it was before llhttp (bench/front_handwritten.py, a copy of
  mock_platform/front.py at commit 043d07a: hand-written head rules, re-scanning partial heads).

    python bench/gateway_variants.py --variant lowlevel --port 0 --admin-token T

The other options are mock-platform's. Prints `mock_platform listening on URL` when ready.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from pathlib import Path

import uvloop
from aiohttp import web

from mock_platform import cli
from mock_platform.app import GATEWAY, STATE, create_app
from mock_platform.config import MockConfig
from mock_platform.serving import BACKLOG

sys.path.insert(0, str(Path(__file__).resolve().parent))
import front_handwritten

VARIANTS = ("lowlevel", "handwritten")


async def serve(config: MockConfig, variant: str) -> None:
    app = create_app(config)
    gateway = app[GATEWAY]
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    loop = asyncio.get_running_loop()
    front = None
    if variant == "handwritten":
        assert runner.server is not None
        front = front_handwritten.FrontServer(gateway, runner.server)
        await front.listen(config.host, config.port, backlog=BACKLOG)
        sockets = front.sockets
    else:

        async def handler(request: web.Request) -> web.StreamResponse:
            if request.raw_path.partition("?")[0] == "/gateway.do":
                return await gateway.handle(request)
            return await app._handle(request)

        low = web.Server(
            handler, request_factory=app._make_request, handler_cancellation=True, access_log=None
        )
        server = await loop.create_server(low, config.host, config.port, backlog=BACKLOG)
        sockets = server.sockets
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*cli.GC_THRESHOLDS)
    host, port = sockets[0].getsockname()[:2]
    print(f"mock_platform listening on http://{host}:{port}", flush=True)
    print(f"mock_platform admin token: {app[STATE].admin_token}", flush=True)
    await stop.wait()
    if front is not None:
        await front.close(1.0)
    await runner.cleanup()


def main() -> None:
    parser = cli.build_parser()
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    args = parser.parse_args()
    uvloop.run(serve(cli.config_from_args(args), args.variant))


if __name__ == "__main__":
    main()
