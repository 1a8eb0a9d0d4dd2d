"""Listen: aiohttp's runner for the app, behind the gateway front (`front.py`) unless told not to.

The CLI and the tests start the mock through `start_serving`, so what the tests check is what
`mock-platform` serves.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http import HttpProcessingError

from mock_platform.app import GATEWAY
from mock_platform.front import TESTED_AIOHTTP, FrontServer, aiohttp_supported

BACKLOG = 4096  # 10,000 clients connecting at once must not be refused

log = logging.getLogger(__name__)


class ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, but a request its parser refuses (it answers 400) is one line, not
    an ERROR with a traceback: the bad bytes are the client's, not the mock's. Other errors keep
    their traceback."""

    def exception(self, msg: Any, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError):
            reason = (exc.message or "").strip().splitlines()
            self.logger.warning(
                "refused a request (%s %s)", exc.code, reason[0].rstrip(":") if reason else "bad request"
            )
        else:
            self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


SERVER_LOG = ServerLog(logging.getLogger("aiohttp.server"), {})


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
    app: web.Application, host: str, port: int, *, front: bool = True, shutdown_timeout: float = 1.0
) -> Serving:
    """Serve `app` (from create_app) on host:port; with `front=False`, or an aiohttp other than the
    one the front was tested with, every request, gateway included, goes through aiohttp's own
    request cycle (slower; the reference to compare with). The config's timeouts apply: keep-alive
    on both paths, head and body on the front's."""
    gateway = app[GATEWAY]
    config = gateway.state.config
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=config.keepalive_timeout_s,
        logger=SERVER_LOG,
    )
    await runner.setup()
    if front and not aiohttp_supported():
        log.warning(
            "gateway front off: it was tested with aiohttp %s.x, this is %s; aiohttp serves every request",
            TESTED_AIOHTTP,
            aiohttp.__version__,
        )
        front = False
    try:
        if not front:
            await web.TCPSite(runner, host, port, backlog=BACKLOG).start()
            return Serving(runner, None, shutdown_timeout)
        assert runner.server is not None
        server = FrontServer(
            gateway,
            runner.server,
            keepalive_timeout=config.keepalive_timeout_s,
            head_timeout=config.head_timeout_s,
            body_timeout=config.body_timeout_s,
        )
        await server.listen(host, port, backlog=BACKLOG)
    except BaseException:
        await runner.cleanup()
        raise
    return Serving(runner, server, shutdown_timeout)
