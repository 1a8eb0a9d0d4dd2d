"""The HTTP/1.1 front: plain `POST /gateway.do` requests answered without aiohttp's request cycle.

aiohttp's request/response cycle costs about as much CPU as everything the gateway does on top
(~185,000 of ~300,000 instructions per voucher.send), and the gateway is what a load test drives
at thousands of requests per second on one core. So each connection starts with this protocol,
which reads request heads with llhttp (through httptools, as uvicorn does: the same C parser
aiohttp's own extension runs) and answers the plain case through the same `Gateway.answer` (the
Alipay dialect's parsing, then the request pipeline) the aiohttp route uses: `POST /gateway.do`
in HTTP/1.1 with one Host, a Content-Length within the body limit, a usual form Content-Type, and
nothing that needs more of HTTP (chunked bodies, `Expect`, `Upgrade`, `Content-Encoding`). Like
the aiohttp routes it only writes the pipeline's Reply out: its delay, then the answer or the
dropped connection.

Anything else (another route, another method, HTTP/1.0, a head llhttp refuses, garbage) goes to
aiohttp's own protocol, with the connection and every byte from the request where aiohttp's
answers start to differ, and stays there: aiohttp remains the reference for everything, every 4xx
included. aiohttp's parser refuses a chunk of input as a whole (one 400, none of the well-formed
requests in it answered), so the front answers nothing of a chunk before all of it reads as plain
requests; tests send the same random streams, cut anywhere, to a mock with the front and one
without, and compare the answers. Requests on a connection are answered in order; an injected
latency holds the ones behind it, as it would on aiohttp.

What the front relies on (the response head aiohttp writes, its protocol taking over a transport
mid-stream) was tested with one aiohttp minor version: `aiohttp_supported()` says whether the one
running is it, and serving.py serves everything through aiohttp when it is not.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast

import aiohttp
import httptools
from aiohttp.http import SERVER_SOFTWARE

from mock_platform.aioroutes import close_transport
from mock_platform.gateway import JSON_HEADERS, USUAL_FORM_HEADERS, Gateway
from mock_platform.pipeline import RESET, Reply

log = logging.getLogger(__name__)

TESTED_AIOHTTP = "3.14"  # the minor version the front's answers were compared with (pyproject pins it)
MAX_HEAD_BYTES = 8190  # aiohttp's limit for the request line and each header line
MAX_HEADERS = 100  # more: aiohttp decides (it refuses beyond 128)
PAUSE_READING_BYTES = 256 * 1024  # input kept behind an answer that waits, before reading stops
MAX_BODY_BYTES = 256 * 1024  # a larger body (limits.max_body_bytes allows up to 16 MiB) goes to aiohttp
_TARGET = b"/gateway.do"
_HEAD_END = b"\r\n\r\n"
_NOT_IN_TARGET = bytes([*range(0, 0x21), *range(0x7F, 0x100)])  # llhttp refuses these
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
_NOT_PLAIN = frozenset((b"expect", b"upgrade", b"content-encoding"))
_CONNECTION = frozenset((b"connection", b"proxy-connection"))  # llhttp reads both
_USUAL_TYPES = frozenset(value.encode("latin-1") for value in USUAL_FORM_HEADERS)


def aiohttp_supported(version: str = aiohttp.__version__) -> bool:
    """Whether `version` is the aiohttp minor version the front was tested with."""
    return version == TESTED_AIOHTTP or version.startswith(TESTED_AIOHTTP + ".")


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
_LENGTH = b"\r\nContent-Length: "
_SERVER = b"\r\nServer: " + SERVER_SOFTWARE.encode("ascii")


def _fields(headers: Mapping[str, str]) -> bytes:
    """A reply's header lines, each after its CRLF."""
    return b"".join(f"\r\n{name}: {value}".encode("latin-1") for name, value in headers.items())


_JSON_FIELDS = _fields(JSON_HEADERS)  # what the gateway's answers carry, encoded once


def _head(status: int, headers: Mapping[str, str], length: int, close: bool) -> bytes:
    """The response head, as aiohttp's route writes it: the reply's headers, then Content-Length,
    Date and Server, in its order."""
    return b"".join(
        (
            _OK if status == 200 else f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode(),
            _JSON_FIELDS if headers is JSON_HEADERS else _fields(headers),
            _LENGTH,
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


class _Plain:
    """A plain gateway request read from its head: its query, and where its body starts and ends
    counted from the request's first byte; `close` when the client asked to close after it."""

    __slots__ = ("body_end", "body_start", "close", "length", "query")

    def __init__(self, query: bytes, length: int, close: bool) -> None:
        self.query = query
        self.length = length
        self.close = close
        self.body_start = 0
        self.body_end = 0


class HeadReader:
    """llhttp's callbacks (httptools) for one connection: each head llhttp completes is appended
    to `heads`, as a _Plain when the front answers it, else None (aiohttp will). `plain` turns
    False as soon as the head being read can no longer be plain."""

    __slots__ = ("_length", "_lines", "_seen", "_type", "_url", "heads", "limit", "parser", "plain")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.heads: list[_Plain | None] = []
        self.parser = httptools.HttpRequestParser(self)
        self.plain = True
        self._url = b""
        self._seen: set[bytes] = set()
        self._type: bytes | None = None
        self._length = 0
        self._lines = 0

    def on_message_begin(self) -> None:
        self.plain = True
        self._url = b""
        self._seen.clear()
        self._type = None
        self._length = 0
        self._lines = 0

    def on_url(self, part: bytes) -> None:
        self._url = self._url + part if self._url else part

    def on_header(self, name: bytes, value: bytes) -> None:
        self._lines += 1
        if self._lines > MAX_HEADERS or len(name) + len(value) >= MAX_HEAD_BYTES:
            self.plain = False
            return
        lname = name.lower()
        if lname in _SINGLETONS:
            if lname in self._seen:
                self.plain = False  # aiohttp answers 400 to a second one
                return
            self._seen.add(lname)
            if lname == b"content-length":  # llhttp checked it: digits, and no Transfer-Encoding
                self._length = int(value)
            elif lname == b"content-type":
                self._type = value.rstrip(b" \t")
            elif lname == b"transfer-encoding":
                self.plain = False
        elif lname in _NOT_PLAIN or (lname in _CONNECTION and b"upgrade" in value.lower()):
            self.plain = False

    def on_headers_complete(self) -> None:
        parser = self.parser
        url = self._url
        length = self._length
        query = _query_of(url) if len(url) < MAX_HEAD_BYTES - 14 else None  # "POST " + " HTTP/1.1"
        if (
            not self.plain
            or query is None
            or parser.get_method() != b"POST"
            or parser.get_http_version() != "1.1"
            or b"host" not in self._seen  # aiohttp answers 400 without one
            or length > self.limit  # 413
            or length > MAX_BODY_BYTES  # a body aiohttp streams better
            or (length and self._type not in _USUAL_TYPES)  # the content type checked by aiohttp
        ):
            self.heads.append(None)
        else:
            self.heads.append(_Plain(query, length, not parser.should_keep_alive()))


class GatewayFront(asyncio.Protocol):
    """One client connection, until it is handed to aiohttp.

    The heads are read as each chunk arrives (`_scan`): llhttp is fed each byte once, so a head
    dripped a byte at a time costs what it would cost whole. When the chunk holds anything but
    plain requests (and the beginning of one), the requests whose heads came in earlier chunks
    are still answered here, as aiohttp would have answered them, and the connection then goes to
    aiohttp from the first request whose head came with that chunk.

    One timer per connection closes it when the client takes too long: the keep-alive timeout
    while it sends nothing, the head timeout once a head has started, the body timeout once a
    head is read and its body is not; none while an answer waits (its latency, or the client to
    read). Moving the deadline is a float store; the timer re-arms itself when it fires early.
    """

    __slots__ = (
        "_body_since",
        "_buf",
        "_closing",
        "_deadline",
        "_hand_off_at",
        "_head_since",
        "_line",
        "_pending",
        "_queue",
        "_read_paused",
        "_reader",
        "_scanned",
        "_server",
        "_timer",
        "_timer_at",
        "_transport",
        "_write_paused",
    )

    def __init__(self, server: FrontServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buf: bytes | bytearray = b""  # from the first request not yet answered
        self._queue: deque[_Plain] = deque()  # the requests in _buf whose heads were read
        self._scanned = 0  # where in _buf the next head starts (beyond its end: in a body)
        self._line = 0  # bytes of the head line being read so far
        self._reader = HeadReader(server.limit)
        self._hand_off_at: int | None = None  # where in _buf aiohttp takes over, once answered up to it
        self._pending: asyncio.TimerHandle | None = None  # an answer waiting out its latency
        self._write_paused = False
        self._read_paused = False
        self._closing = False  # the server is stopping: close once the answer waiting is sent
        self._deadline = math.inf  # when the client has taken too long (loop time)
        self._head_since: float | None = None  # when the head being read started
        self._body_since: float | None = None  # when the body being read was due
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

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
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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
        buf = self._buf
        if not buf:
            self._buf = data
        else:  # a request across chunks: append in place, not by copying what came before
            if type(buf) is bytes:
                buf = bytearray(buf)
            buf += data
            self._buf = buf
        if self._hand_off_at is None:
            self._hand_off_at = self._scan(data)
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

    def _scan(self, data: bytes) -> int | None:
        """Feed the chunk that arrived to llhttp and place the heads it completed. None when the
        input is plain requests (and the beginning of one), else where in the buffer aiohttp takes
        over: the first request whose head arrived with this chunk, since aiohttp answers such a
        chunk with a lone 400."""
        reader = self._reader
        heads = reader.heads
        first = pos = self._scanned
        try:
            reader.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # aiohttp decides: it refuses alike
            heads.clear()
            return first
        buf = self._buf
        size = len(buf)
        if heads:
            if None in heads:
                heads.clear()
                return first
            queue = self._queue
            for plain in heads:  # llhttp is strict: a head ends at the first blank line
                end = buf.find(_HEAD_END, pos)
                if end < 0:  # cannot happen with llhttp's strict rules; aiohttp decides if it does
                    heads.clear()
                    return first
                plain.body_start = end + 4 - pos
                plain.body_end = plain.body_start + plain.length
                queue.append(plain)
                pos += plain.body_end
            heads.clear()
            self._scanned = pos
            self._head_since = None
        if pos < size:  # a head not complete yet: can it still be plain?
            if not reader.plain:
                return first
            start = max(pos, size - len(data))
            crlf = buf.rfind(b"\r\n", start)
            if crlf >= 0:
                self._line = size - crlf - 2
            else:
                self._line = size - start + (self._line if start > pos else 0)
            if self._line > MAX_HEAD_BYTES:
                return first
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
            if type(buf) is bytes:
                self._buf = buf[consumed:]
            else:
                body = bytes(body)
                del buf[:consumed]  # O(1) at the front of a bytearray
                if not buf:
                    self._buf = b""
            self._scanned -= consumed
            self._body_since = None
            if self._hand_off_at is not None:
                self._hand_off_at -= consumed
            self._server.answered += 1
            reply = gateway.answer(plain.query, body, started, time.time())
            if reply.delay > 0:
                self._pending = asyncio.get_running_loop().call_later(
                    reply.delay, self._answer_late, reply, plain.close
                )
                break
            if not self._answer(reply, plain.close):
                return
        self._flow(transport)
        self._watch()

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

    def _watch(self) -> None:
        """Set the deadline for what the connection waits for now (see the class's note)."""
        server = self._server
        if self._pending is not None or self._write_paused or self._transport is None:
            deadline = math.inf
        elif self._scanned < len(self._buf):  # a head under way
            now = server.loop.time()
            if self._head_since is None:
                self._head_since = now
            deadline = self._head_since + server.head_timeout
        elif self._queue:  # a body under way
            now = server.loop.time()
            if self._body_since is None:
                self._body_since = now
            deadline = self._body_since + server.body_timeout
        else:
            deadline = server.loop.time() + server.keepalive_timeout
        self._deadline = deadline
        if deadline < self._timer_at:  # sooner than the timer: move it (a later one waits for it)
            if self._timer is not None:
                self._timer.cancel()
            self._timer = server.loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        if self._transport is None:
            return
        if self._server.loop.time() >= self._deadline:
            self._server.timed_out += 1
            log.debug("gateway front: closing a connection that took too long")
            self._transport.close()
        elif self._deadline != math.inf:
            self._timer = self._server.loop.call_at(self._deadline, self._on_timer)
            self._timer_at = self._deadline

    def _answer(self, reply: Reply, close: bool) -> bool:
        """Write the answer (or drop the connection); whether the connection is still open."""
        transport = self._transport
        if transport is None:
            return False
        if reply.drop is not None:
            close_transport(transport, reset=reply.drop == RESET)
            return False
        body = reply.body
        transport.write(_head(reply.status, reply.headers, len(body), close) + body)
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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        protocol = server.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._write_paused:
            protocol.pause_writing()
        if self._read_paused:
            transport.resume_reading()
        buf, self._buf, self._transport = self._buf, b"", None
        protocol.data_received(bytes(buf))


class FrontServer:
    """The listening socket, whose connections start on GatewayFront; `fallback()` makes aiohttp's
    protocol (its web.Server) for a hand-off. Counts what it answered, what it handed off, and the
    connections it closed for taking too long."""

    def __init__(
        self,
        gateway: Gateway,
        fallback: Callable[[], asyncio.Protocol],
        *,
        keepalive_timeout: float,
        head_timeout: float,
        body_timeout: float,
    ) -> None:
        self.gateway = gateway
        self.fallback = fallback
        self.limit = gateway.state.config.max_body_bytes
        self.keepalive_timeout = keepalive_timeout
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        self.connections: set[GatewayFront] = set()
        self.answered = 0  # requests answered here
        self.handed_off = 0  # connections given to aiohttp
        self.timed_out = 0  # connections closed for taking too long (keep-alive, head, body)
        self.loop = asyncio.get_running_loop()
        self._server: asyncio.AbstractServer | None = None

    async def listen(self, host: str, port: int, *, backlog: int) -> None:
        self._server = await self.loop.create_server(lambda: GatewayFront(self), host, port, backlog=backlog)

    @property
    def sockets(self) -> Any:
        return self._server.sockets if self._server is not None else ()

    async def close(self, timeout: float) -> None:
        """Stop listening, close idle connections, give the answers still waiting out an injected
        latency up to `timeout` seconds (aiohttp's graceful shutdown does the same), close the rest."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close_when_answered()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.close()
