"""The aiohttp routes' ends of the pipeline: read a request's body within the limits, and carry a
`Reply` out (its delay, then the answer or the dropped connection).

The gateway route and the WeChat routes share these, so an injected latency, hang or reset is
carried out alike on every aiohttp route; the gateway front (front.py) does the same on its raw
transports with `close_transport`.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import NoReturn, cast

from aiohttp import web

from mock_platform.pipeline import RESET, Reply

__all__ = ["BodyTooLarge", "buffered_body", "close_transport", "drop_connection", "read_body", "respond"]


class BodyTooLarge(ValueError):
    """The body is over the configured limit; each dialect answers it 413 in its own words."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")


def buffered_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body without awaiting when it is already buffered (a small body arrives with its
    headers), None when it must be read; BodyTooLarge beyond `limit` bytes.

    `request.read()` would copy it through a bytearray and two more awaits: ~4 µs a call under load.
    """
    content = request.content
    if not content.is_eof():
        return None
    body = content.read_nowait()
    if len(body) > limit:
        raise BodyTooLarge(limit)
    return body


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The body, refused (BodyTooLarge) before it is read when its length is known to be over
    `limit`; a body that does not arrive within `timeout` seconds closes the connection, as the
    gateway front closes it."""
    body = buffered_body(request, limit)
    if body is not None:
        return body
    try:
        async with asyncio.timeout(timeout):
            return await _read(request, limit)
    except TimeoutError:
        drop_connection(request, reset=False)


async def _read(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None:
        if length > limit:
            raise BodyTooLarge(limit)
        return await request.read()
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


async def respond(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Carry `reply` out: wait its delay, then answer, or drop the connection."""
    if reply.delay > 0:
        await asyncio.sleep(reply.delay)
    if reply.drop is not None:
        drop_connection(request, reset=reply.drop == RESET)
    response = web.Response(status=reply.status, body=reply.body, headers=reply.headers)
    if reply.status == 413:
        response.force_close()  # the rest of the body was never read
    return response


def close_transport(transport: asyncio.BaseTransport, *, reset: bool) -> None:
    """Close a connection without an answer: a TCP RST when `reset`, else a FIN."""
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        cast(asyncio.Transport, transport).abort()
    else:
        transport.close()


def drop_connection(request: web.Request, *, reset: bool) -> NoReturn:
    """Close the client's connection without an answer (see close_transport), ending the handler."""
    if request.transport is not None:
        close_transport(request.transport, reset=reset)
    raise asyncio.CancelledError
