"""Listen: aiohttp's runner for the app, behind the gateway front (`front.py`) unless told not to.

The CLI and the tests start the mock through `start_serving`, so what the tests check is what
`mock-platform` serves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from mock_platform.app import GATEWAY
from mock_platform.front import KEEPALIVE_TIMEOUT_S, FrontServer

BACKLOG = 4096  # 10,000 clients connecting at once must not be refused


class Serving:
    """A mock listening on one address; `stop()` closes it and every connection."""

    def __init__(self, runner: web.AppRunner, front: FrontServer | None, shutdown_timeout: float) -> None:
        self._runner = runner
        self._front = front
        self._shutdown_timeout = shutdown_timeout

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound: the port is the one picked when 0 was asked for."""
        if self._front is not None:
            sockname: Any = self._front.sockets[0].getsockname()
        else:
            sockname = self._runner.addresses[0]
        return sockname[0], sockname[1]

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def front(self) -> FrontServer | None:
        """The gateway front (its counts), or None when aiohttp serves everything."""
        return self._front

    async def stop(self) -> None:
        """Stop listening; answers under way get up to the shutdown timeout, on both paths at once."""
        if self._front is None:
            await self._runner.cleanup()
        else:
            await asyncio.gather(self._front.close(self._shutdown_timeout), self._runner.cleanup())


async def start_serving(
    app: web.Application,
    host: str,
    port: int,
    *,
    front: bool = True,
    shutdown_timeout: float = 1.0,
    keepalive_timeout: float = KEEPALIVE_TIMEOUT_S,
) -> Serving:
    """Serve `app` (from create_app) on host:port; with `front=False`, every request, gateway
    included, goes through aiohttp's own request cycle (slower; the reference to compare with).
    `keepalive_timeout` is the front's; aiohttp keeps its own 75 s."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        if not front:
            await web.TCPSite(runner, host, port, backlog=BACKLOG).start()
            return Serving(runner, None, shutdown_timeout)
        assert runner.server is not None
        server = FrontServer(app[GATEWAY], runner.server, keepalive_timeout=keepalive_timeout)
        await server.listen(host, port, backlog=BACKLOG)
    except BaseException:
        await runner.cleanup()
        raise
    return Serving(runner, server, shutdown_timeout)
