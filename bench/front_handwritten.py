"""The HTTP/1.1 front: plain `POST /gateway.do` requests answered without aiohttp's request cycle.

aiohttp's request/response cycle costs about as much CPU as everything the gateway does on top
(~185,000 of ~300,000 instructions per voucher.send), and the gateway is what a load test drives
at thousands of requests per second on one core. So each connection starts with this protocol,
which reads the request head itself and answers the plain case through the same `Gateway`
(`dispatch`, `render`) the aiohttp route uses: `POST /gateway.do` in HTTP/1.1 with a
Content-Length within the body limit, a usual form Content-Type, and nothing that needs more of
HTTP (chunked bodies, `Expect`, `Upgrade`, obsolete line folding, odd bytes in the head).

Anything else (another route, another method, HTTP/1.0, a head this parser does not take as
plain, garbage) goes to aiohttp's own protocol, with the connection and every byte from the
request where aiohttp's answers start to differ, and stays there: aiohttp remains the reference
for everything, every 4xx included. aiohttp's parser refuses a chunk of input as a whole (one 400,
none of the well-formed requests in it answered), so the front answers nothing of a chunk before
all of it reads as plain requests; tests send the same random streams, cut anywhere, to a mock
with the front and one without, and compare the answers. Requests on a connection are answered
in order; an injected latency holds the ones behind it, as it would on aiohttp.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast

from aiohttp.http import SERVER_SOFTWARE

from mock_platform.gateway import USUAL_FORM_HEADERS, Gateway, Reply, close_transport

MAX_HEAD_BYTES = 8190  # aiohttp's own limit for the request line and each header line
MAX_HEADERS = 100
PAUSE_READING_BYTES = 256 * 1024  # input kept behind an answer that waits, before reading stops
MAX_BODY_BYTES = 256 * 1024  # a larger body (limits.max_body_bytes allows up to 16 MiB) goes to aiohttp
KEEPALIVE_TIMEOUT_S = 75.0  # aiohttp's: an idle connection is closed after this (here, up to twice)
_TARGET = b"/gateway.do"
_PLAIN_START = b"POST /gateway.do"
_HEAD_END = b"\r\n\r\n"
_TOKEN_BYTES = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NOT_TOKEN = bytes(sorted(set(range(256)) - _TOKEN_BYTES))
# Bytes llhttp refuses in a header value (controls but HTAB, and DEL): such a head goes to aiohttp.
_BAD_VALUE_BYTES = bytes([*range(0, 9), *range(10, 32), 127])
_NOT_IN_TARGET = bytes([*range(0, 0x21), *range(0x7F, 0x100)])  # llhttp answers 400 to these
# Headers aiohttp's parser refuses twice (400); what the front reads of them is only ever one value.
_SINGLETONS = frozenset(
    (
        b"content-length",
        b"content-location",
        b"content-range",
        b"content-type",
        b"etag",
        b"host",
        b"max-forwards",
        b"server",
        b"transfer-encoding",
        b"user-agent",
    )
)
_USUAL_TYPES = frozenset(value.encode("latin-1") for value in USUAL_FORM_HEADERS)


class _DateHeader:
    """The Date header's value, formatted once per second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._value = formatdate(now, usegmt=True).encode("ascii")
        return self._value


_DATE = _DateHeader()


_OK = b"HTTP/1.1 200 OK"
_TYPE_LENGTH = b"\r\nContent-Type: application/json;charset=utf-8\r\nContent-Length: "
_SERVER = b"\r\nServer: " + SERVER_SOFTWARE.encode("ascii")


def _head(status: int, length: int, close: bool) -> bytes:
    """The response head, with the headers aiohttp's route sends, in its order."""
    return b"".join(
        (
            _OK if status == 200 else f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode(),
            _TYPE_LENGTH,
            str(length).encode("ascii"),
            b"\r\nDate: ",
            _DATE.value(),
            _SERVER,
            b"\r\nConnection: close\r\n\r\n" if close else b"\r\n\r\n",
        )
    )


def _query_of(target: bytes) -> bytes | None:
    """The raw query of a request target the front answers (b"" for none), else None."""
    if target == _TARGET:
        return b""
    if (
        target.startswith(b"/gateway.do?")
        and b"#" not in target
        and len(target.translate(None, _NOT_IN_TARGET)) == len(target)
    ):
        return target[12:]
    return None


def plain_so_far(buf: bytes, start: int, limit: int) -> bool:
    """Whether `buf[start:]`, a head not complete yet, can still become a plain one: when it
    cannot, aiohttp may already have refused it (and with it the chunk it came in)."""
    if len(buf) - start > MAX_HEAD_BYTES * 4:
        return False
    last = buf.rfind(b"\r\n", start)
    if last < 0:  # the request line so far
        line = buf[start:]
        if len(line) <= len(_PLAIN_START):
            return _PLAIN_START.startswith(line)
        if not line.startswith(_PLAIN_START) or len(line) > MAX_HEAD_BYTES:
            return False
        space = line.find(b" ", 5)
        target, version = (line[5:], b"") if space < 0 else (line[5:space], line[space + 1 :])
        return _query_of(target) is not None and b"HTTP/1.1\r".startswith(version)
    if read_plain_head(buf, start, last, limit, partial=True) is None:
        return False
    rest = buf[last + 2 :]  # the line still coming
    if len(rest) > MAX_HEAD_BYTES:
        return False
    if rest == b"\r":
        return True  # the blank line that ends the head, but for its LF
    name, colon, value = rest.partition(b":")
    if name.translate(None, _NOT_TOKEN) != name or (colon and not name):
        return False
    value = value.removesuffix(b"\r")
    return len(value.translate(None, _BAD_VALUE_BYTES)) == len(value)


class _Plain:
    """A plain gateway request read from its head: its query, and where its body starts and ends
    counted from the request's first byte; `close` when the client asked to close after it."""

    __slots__ = ("body_end", "body_start", "close", "query")

    def __init__(self, query: bytes, body_start: int, body_end: int, close: bool) -> None:
        self.query = query
        self.body_start = body_start
        self.body_end = body_end
        self.close = close


def read_plain_head(buf: bytes, start: int, end: int, limit: int, *, partial: bool = False) -> _Plain | None:
    """The request whose head is `buf[start:end]` if this front answers it, else None (aiohttp
    will); its offsets count from `start`. With `partial`, `buf[start:end]` is the complete lines
    of a head still coming, and only what they hold is checked."""
    line_end = buf.find(b"\r\n", start, end)
    if line_end < 0:
        line_end = end
    if line_end - start > MAX_HEAD_BYTES:
        return None
    parts = buf[start:line_end].split(b" ")
    if len(parts) != 3 or parts[0] != b"POST" or parts[2] != b"HTTP/1.1":
        return None
    query = _query_of(parts[1])
    if query is None:
        return None
    length = 0
    close = False
    ctype: bytes | None = None
    lines = buf[line_end + 2 : end].split(b"\r\n") if line_end < end else []
    if len(lines) > MAX_HEADERS:
        return None
    singletons: set[bytes] = set()
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or len(line) > MAX_HEAD_BYTES or name.translate(None, _NOT_TOKEN) != name:
            return None  # no name, a space before the colon, a folded line: aiohttp decides
        if len(value) != len(value.translate(None, _BAD_VALUE_BYTES)):
            return None
        value = value.strip(b" \t")
        lname = name.lower()
        if lname in _SINGLETONS:
            if lname in singletons:
                return None  # aiohttp answers 400 to a second one
            singletons.add(lname)
            if lname == b"content-length":
                if not value.isdigit() or len(value) > 18:
                    return None
                length = int(value)
            elif lname == b"content-type":
                ctype = value
            elif lname == b"transfer-encoding":
                return None
        elif lname == b"connection" or lname == b"proxy-connection":  # llhttp reads both
            tokens = {token.strip(b" \t").lower() for token in value.split(b",")}
            if b"upgrade" in tokens:
                return None
            close = close or b"close" in tokens
        elif lname in (b"expect", b"upgrade", b"content-encoding"):
            return None
    if partial:
        return _Plain(query, 0, 0, close)
    if b"host" not in singletons:
        return None  # aiohttp answers 400 without one
    if length > limit or length > MAX_BODY_BYTES or (length and ctype not in _USUAL_TYPES):
        return None  # 413; a body aiohttp streams better; the content type checked by aiohttp
    body_start = end + 4 - start
    return _Plain(query, body_start, body_start + length, close)


class GatewayFront(asyncio.Protocol):
    """One client connection, until it is handed to aiohttp.

    The heads are read as each chunk arrives (`_scan`). When the chunk holds anything but plain
    requests (and the beginning of one), the requests whose heads came in earlier chunks are
    still answered here, as aiohttp would have answered them, and the connection then goes to
    aiohttp from the first request whose head came with that chunk.
    """

    __slots__ = (
        "_active",
        "_buf",
        "_closing",
        "_hand_off_at",
        "_pending",
        "_queue",
        "_read_paused",
        "_scanned",
        "_server",
        "_transport",
        "_write_paused",
    )

    def __init__(self, server: FrontServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buf = b""  # from the first request not yet answered
        self._queue: deque[_Plain] = deque()  # the requests in _buf whose heads were read
        self._scanned = 0  # where in _buf the next head starts (beyond its end: in a body)
        self._hand_off_at: int | None = None  # where in _buf aiohttp takes over, once answered up to it
        self._pending: asyncio.TimerHandle | None = None  # an answer waiting out its latency
        self._write_paused = False
        self._read_paused = False
        self._closing = False  # the server is stopping: close once the answer waiting is sent
        self._active = True  # read something since the server's last look for idle connections

    @property
    def reading_paused(self) -> bool:
        """Whether reading stopped because unanswered input piled up (the client does not read)."""
        return self._read_paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._server.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):  # as aiohttp does
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._transport = None
        self._buf = b""
        self._queue.clear()

    def eof_received(self) -> bool:
        # The client sends no more: close, what was written still goes out. aiohttp does the same
        # (and cancels the handlers still running), so an answer waiting out its latency is dropped.
        return False

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._serve()

    def data_received(self, data: bytes) -> None:
        self._active = True
        self._buf = self._buf + data if self._buf else data
        if self._hand_off_at is None:
            self._hand_off_at = self._scan()
        self._serve()

    def close(self) -> None:
        """Close the connection now; an answer still waiting is dropped."""
        if self._transport is not None:
            self._transport.close()

    def close_when_answered(self) -> None:
        """Close once the answer waiting out its latency is sent (now, when none is)."""
        self._closing = True
        if self._pending is None:
            self.close()

    def close_if_idle(self) -> None:
        """Close when nothing was read since the last call and nothing is waiting."""
        if not self._active and self._pending is None and not self._buf:
            self.close()
        self._active = False

    def _scan(self) -> int | None:
        """Read the heads that arrived. None when the input is plain requests (and the beginning
        of one), else where in the buffer aiohttp takes over: the first request whose head
        arrived with this chunk, since aiohttp answers such a chunk with a lone 400."""
        queue = self._queue
        buf = self._buf
        pos = self._scanned
        size = len(buf)
        limit = self._server.limit
        queued = len(queue)
        first = pos
        while pos < size:
            end = buf.find(_HEAD_END, pos)
            if end < 0:
                if plain_so_far(buf, pos, limit):
                    break
                plain = None
            else:
                plain = read_plain_head(buf, pos, end, limit)
            if plain is None or (plain.close and pos + plain.body_end < size):
                while len(queue) > queued:  # aiohttp answers these too: they are in its chunk
                    queue.pop()
                return first  # (aiohttp also refuses bytes after a "Connection: close" request)
            queue.append(plain)
            pos += plain.body_end
            if plain.close:
                break
        self._scanned = pos
        return None

    def _serve(self) -> None:
        """Answer the complete requests, in order, until one must wait; hand the connection to
        aiohttp when it is due."""
        transport = self._transport
        if transport is None:
            return
        gateway = self._server.gateway
        queue = self._queue
        while self._pending is None:
            if self._hand_off_at == 0:
                self._hand_off()
                return
            if self._write_paused or not queue or len(self._buf) < queue[0].body_end:
                break
            plain = queue.popleft()
            started = time.perf_counter()
            buf = self._buf
            consumed = plain.body_end
            body = buf[plain.body_start : consumed]
            self._buf = buf[consumed:]
            self._scanned -= consumed
            if self._hand_off_at is not None:
                self._hand_off_at -= consumed
            self._server.answered += 1
            reply = gateway.dispatch(plain.query, body, started, time.time())
            if reply.delay > 0:
                self._pending = asyncio.get_running_loop().call_later(
                    reply.delay, self._answer_late, reply, plain.close
                )
                break
            if not self._answer(reply, plain.close):
                return
        self._flow(transport)

    def _flow(self, transport: asyncio.Transport) -> None:
        """Stop reading while input piles up behind an answer that waits (its latency, or the
        client to read), read again once it is answered; when stopping, close."""
        if self._closing:
            transport.close()
            return
        blocked = self._pending is not None or self._write_paused
        waiting = blocked and len(self._buf) > PAUSE_READING_BYTES
        if waiting and not self._read_paused:
            transport.pause_reading()
            self._read_paused = True
        elif not waiting and self._read_paused:
            transport.resume_reading()
            self._read_paused = False

    def _answer(self, reply: Reply, close: bool) -> bool:
        """Write the answer (or drop the connection); whether the connection is still open."""
        transport = self._transport
        if transport is None:
            return False
        if reply.drop is not None:
            close_transport(transport, reset=reply.drop == "reset")
            return False
        body = self._server.gateway.render(reply)
        transport.write(_head(reply.status, len(body), close) + body)
        if close:
            transport.close()
            return False
        return True

    def _answer_late(self, reply: Reply, close: bool) -> None:
        self._pending = None
        if self._answer(reply, close):
            self._serve()

    def _hand_off(self) -> None:
        """Give the connection, and every byte from the current request on, to aiohttp."""
        transport = self._transport
        assert transport is not None
        server = self._server
        server.connections.discard(self)
        server.handed_off += 1
        protocol = server.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._write_paused:
            protocol.pause_writing()
        if self._read_paused:
            transport.resume_reading()
        buf, self._buf, self._transport = self._buf, b"", None
        protocol.data_received(buf)


class FrontServer:
    """The listening socket, whose connections start on GatewayFront; `fallback()` makes aiohttp's
    protocol (its web.Server) for a hand-off. Counts what it answered and what it handed off."""

    def __init__(
        self,
        gateway: Gateway,
        fallback: Callable[[], asyncio.Protocol],
        *,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT_S,
    ) -> None:
        self.gateway = gateway
        self.fallback = fallback
        self.limit = gateway.state.config.max_body_bytes
        self.connections: set[GatewayFront] = set()
        self.answered = 0  # requests answered here
        self.handed_off = 0  # connections given to aiohttp
        self._keepalive_timeout = keepalive_timeout
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def listen(self, host: str, port: int, *, backlog: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: GatewayFront(self), host, port, backlog=backlog)
        self._sweeper = loop.call_later(self._keepalive_timeout, self._sweep)

    @property
    def sockets(self) -> Any:
        return self._server.sockets if self._server is not None else ()

    def _sweep(self) -> None:
        """Close the connections idle since the last sweep: the keep-alive timeout, give or take."""
        for connection in list(self.connections):
            connection.close_if_idle()
        self._sweeper = asyncio.get_running_loop().call_later(self._keepalive_timeout, self._sweep)

    async def close(self, timeout: float) -> None:
        """Stop listening, close idle connections, give the answers still waiting out an injected
        latency up to `timeout` seconds (aiohttp's graceful shutdown does the same), close the rest."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close_when_answered()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.close()
