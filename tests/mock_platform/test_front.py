"""The gateway front (front.py): the same bytes on the wire as aiohttp's route, and its own HTTP.

Every exchange below is sent as raw bytes to two mocks started alike, one behind the front and one
served by aiohttp alone, and the answers must match byte for byte but for the Date header. The
front's counters tell which requests it answered itself, so the cases that must take the fast
path (what real clients send) are checked to take it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import re
import socket
import threading
import time
import urllib.parse
from typing import Any

import pytest
from aiohttp import web

from mock_platform import signing
from mock_platform.front import MAX_BODY_BYTES, MAX_HEAD_BYTES, PAUSE_READING_BYTES, HeadReader, _head

ACT = "ACT1"
SEED = {
    "activities": [
        {
            "activity_id": ACT,
            "activity_name": "front",
            "quantity": 3,
            "quantity_limit_per_user": 1,
            "amount": "5.00",
            "publish_start_time": "2026-01-01 00:00:00",
            "publish_end_time": "2099-01-01 00:00:00",
        }
    ]
}
SEND = "alipay.marketing.activity.voucher.send"
CTYPE = b"Content-Type: application/x-www-form-urlencoded;charset=utf-8\r\n"
DATE_RE = re.compile(rb"\r\nDate: [^\r]*")


def form(method: str = SEND, **biz: Any) -> bytes:
    params = {"app_id": "2021000000000001", "method": method, "charset": "utf-8", "version": "1.0"}
    if biz:
        params["biz_content"] = json.dumps(biz)
    return urllib.parse.urlencode(params).encode()


def send_form(n: int) -> bytes:
    return form(SEND, activity_id=ACT, out_biz_no=f"o{n}", user_id=f"2088{n:012d}")


def post(body: bytes, target: bytes = b"/gateway.do", extra: bytes = b"", ctype: bytes = CTYPE) -> bytes:
    return (
        b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + ctype + extra
        + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip


def connect(mock: Any, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(mock.serving.address, timeout=timeout)


def latency_mock(make_mock, ms: int, **options: Any) -> Any:
    """A seeded mock whose voucher.send waits `ms` before answering."""
    return make_mock({"seed": SEED, "faults": {SEND: {"latency": {"dist": "constant", "ms": ms}}}}, **options)


def exchange(mock: Any, pieces: list[bytes], timeout: float = 5.0, pause: float = 0.02) -> bytes:
    """Send `pieces` (`pause` between them), then read until the server closes or is quiet."""
    with connect(mock, timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each piece its own segment
        try:
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(pause)
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed after a 400: read what it answered
        sock.settimeout(0.5)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                return out + b"<EOF>"
            out += chunk
        return out


@pytest.fixture(scope="module")
def app_public_pem() -> str:
    return signing.public_pem(signing.generate_private_key())


def pair(make_mock) -> tuple[Any, Any]:
    return make_mock({"seed": SEED}, front=True), make_mock({"seed": SEED}, front=False)


HEALTH = b"GET /admin/health HTTP/1.1\r\nHost: x\r\n\r\n"
CASES = {
    # what clients send: the front answers these itself
    "plain": ([post(send_form(1))], 1),
    "query-string": ([post(b"biz_content=" + urllib.parse.quote(json.dumps({"activity_id": ACT})).encode(),
                           b"/gateway.do?" + form("alipay.marketing.activity.voucher.query"))], 1),
    "connection-close": ([post(send_form(1), extra=b"Connection: close\r\n")], 1),
    "pipelined": ([post(send_form(1)) + post(send_form(2)) + post(send_form(1))], 3),
    "byte-by-byte": ([bytes([b]) for b in post(form("no.such"))[:40]] + [post(form("no.such"))[40:]], 1),
    "body-later": ([post(send_form(1))[:-10], post(send_form(1))[-10:]], 1),
    "empty-body": ([post(b"", ctype=b"")], 1),
    "unknown-method": ([post(form("no.such"))], 1),
    "bad-utf8": ([post(b"method=%ff%fe")], 1),
    "bad-utf8-in-query": ([post(b"", b"/gateway.do?method=%E4%B8%AD&x=%FF")], 1),
    "sold-out-and-limit": ([post(send_form(n)) for n in (1, 1, 2, 3, 4, 5)], 6),
    # anything else is handed to aiohttp, from that request on
    "then-admin": ([post(send_form(1)) + HEALTH + post(send_form(2))], 0),
    "then-admin-later": ([post(send_form(1)), HEALTH + post(send_form(2))], 1),
    "then-garbage": ([post(send_form(1)) + b"GARBAGE\r\n\r\n"], 0),
    "then-garbage-later": ([post(send_form(1)), b"GARBAGE\r\n\r\n"], 1),
    "then-partial-garbage": ([post(send_form(1)) + b"app_id="], 0),
    "then-plain-start": ([post(send_form(1)) + post(send_form(2))[:10], post(send_form(2))[10:]], 2),
    "admin-first": ([HEALTH + post(send_form(1))], 0),
    "get": ([b"GET /gateway.do HTTP/1.1\r\nHost: x\r\n\r\n"], 0),
    "http-1.0": ([post(send_form(1)).replace(b"HTTP/1.1", b"HTTP/1.0", 1)], 0),
    "json-body": ([post(b'{"method":"x"}', ctype=b"Content-Type: application/json\r\n")], 0),
    "gbk": ([post(form("no.such"), ctype=CTYPE.replace(b"charset=utf-8", b" charset=gbk"))], 0),
    "chunked": ([b"POST /gateway.do HTTP/1.1\r\nHost: x\r\n" + CTYPE + b"Transfer-Encoding: chunked\r\n\r\n"
                 + b"%x\r\n" % len(send_form(1)) + send_form(1) + b"\r\n0\r\n\r\n"], 0),
    "expect-100": ([post(send_form(1), extra=b"Expect: 100-continue\r\n")], 0),
    "over-limit": ([post(b"method=x&pad=" + b"a" * 70_000)], 0),
    "no-host": ([post(send_form(1)).replace(b"Host: 127.0.0.1\r\n", b"")], 0),
    "two-hosts": ([post(send_form(1), extra=b"Host: 127.0.0.1\r\n")], 0),
    "gzip": ([post(gzip.compress(form("no.such")), extra=b"Content-Encoding: gzip\r\n")], 0),
    "not-gzip": ([post(form("no.such"), extra=b"Content-Encoding: gzip\r\n")], 0),
    "proxy-connection-close": ([post(send_form(1), extra=b"Proxy-Connection: close\r\n")], 1),
    "then-bad-method-start": ([post(send_form(1)) + b"XXXXX/gateway.do?a=1", post(send_form(2))[20:]], 0),
    "then-long-target": ([post(send_form(1)) + b"POST /gateway.do?" + b"a" * 9000], 0),
    "then-long-header": ([post(send_form(1)) + post(send_form(2))[:60] + b"X-A: " + b"a" * 9000], 0),
    "space-before-colon": ([post(send_form(1), extra=b"X-Odd : 1\r\n")], 0),
    "two-lengths": ([post(send_form(1), extra=b"Content-Length: 5\r\n")], 0),
    "bad-length": ([post(send_form(1)).replace(b"Content-Length: ", b"Content-Length: +", 1)], 0),
    "folded-header": ([post(send_form(1), extra=b"X-A: 1\r\n  2\r\n")], 0),
    "control-byte": ([post(send_form(1), extra=b"X-A: \x01\r\n")], 0),
    "upgrade": ([post(send_form(1), extra=b"Connection: upgrade\r\nUpgrade: h2c\r\n")], 0),
    "fragment": ([post(send_form(1), b"/gateway.do?a=1#x")], 0),
    "two-types": ([post(send_form(1), extra=b"Content-Type: application/json\r\n")], 0),
    "raw-bytes-in-query": ([post(b"", "/gateway.do?method=中".encode() + b"&x=\xff")], 0),
    "garbage": ([b"NOT HTTP AT ALL\r\n\r\n"], 0),
}  # fmt: skip


@pytest.mark.parametrize(("pieces", "answered"), CASES.values(), ids=CASES.keys())
def test_the_front_answers_as_aiohttp_does(make_mock, pieces: list[bytes], answered: int) -> None:
    fast, plain = pair(make_mock)
    got, want = exchange(fast, pieces), exchange(plain, pieces)
    assert want.startswith(b"HTTP/1."), want  # a case that gets no answer would prove nothing
    assert DATE_RE.sub(b"", got) == DATE_RE.sub(b"", want)
    front = fast.serving.front
    assert front is not None and front.answered == answered
    assert plain.serving.front is None
    for mock in (fast, plain):
        status, audit = mock.admin("GET", "/admin/audit")
        assert status == 200 and audit["ok"], audit


CLOSE = b"GET /admin/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
PALETTE = [b" ", b"\t", b"\x00", b"\x7f", b"\xff", b":", b"\r", b"\n", b"a", b"#", b"?", b"%", b",", b"/"]
EXTRA_HEADERS = [
    b"Transfer-Encoding: identity",
    b"Connection: close",
    b"Connection: keep-alive",
    b"Expect: 100-continue",
    b"Content-Type: text/plain",
    b"X-Y: z",
    b"content-length: 0",
    b"Upgrade: websocket",
]


def mutate(rng: random.Random, request: bytes) -> bytes:
    """One random change to the head of `request` (the body is kept)."""
    end = request.index(b"\r\n\r\n")
    head, rest = request[:end], request[end:]
    lines = head.split(b"\r\n")
    kind = rng.randrange(5)
    if kind == 0:
        at = rng.randrange(len(head) + 1)
        head = head[:at] + rng.choice(PALETTE) + head[at:]
    elif kind == 1:
        lines.insert(rng.randrange(1, len(lines) + 1), rng.choice(lines[1:]))
        head = b"\r\n".join(lines)
    elif kind == 2:
        i = rng.randrange(1, len(lines))
        name, _, value = lines[i].partition(b":")
        value = rng.choice([value, b"  " + value + b"\t"])
        lines[i] = rng.choice([name.upper(), name.lower()]) + b":" + value
        head = b"\r\n".join(lines)
    elif kind == 3:
        head = head.replace(b" ", rng.choice([b"  ", b"\t", b""]), 1)
    else:
        lines.insert(rng.randrange(1, len(lines) + 1), rng.choice(EXTRA_HEADERS))
        head = b"\r\n".join(lines)
    return head + rest


def test_random_heads_get_the_same_answer_both_ways(make_mock) -> None:
    """200 plain requests, each with one random change to its head, then a request that closes
    the connection: the front answers what it takes as plain exactly as aiohttp does, and hands
    the rest over."""
    fast, plain = pair(make_mock)
    rng = random.Random(20261124)
    for i in range(200):
        request = mutate(rng, post(send_form(i), b"/gateway.do?charset=utf-8"))
        got = exchange(fast, [request, CLOSE], timeout=2.0, pause=0.005)
        want = exchange(plain, [request, CLOSE], timeout=2.0, pause=0.005)
        assert DATE_RE.sub(b"", got) == DATE_RE.sub(b"", want), request
    front = fast.serving.front
    assert front.answered > 50 and front.handed_off > 50  # both sides of the line were exercised


BAD_REQUEST = re.compile(rb"(HTTP/1\.[01] 400 Bad Request\r\n).*?\r\n\r\n([^\n]*)(?:\n.*)?<EOF>$", re.S)


def comparable(raw: bytes) -> bytes:
    """Without the Date header, and with only the first line of a 400's text: aiohttp quotes the
    chunk of input it was parsing, which depends on where the stream was cut."""
    return BAD_REQUEST.sub(rb"\1\2<EOF>", DATE_RE.sub(b"", raw))


def test_random_streams_cut_anywhere_get_the_same_answers_both_ways(make_mock) -> None:
    """150 streams of 1-4 requests, some with a random change to the head or asking to close,
    cut at random places: what aiohttp answers from the pieces, the front answers too. This is
    what the scan of every chunk before answering any of it is for."""
    fast, plain = pair(make_mock)
    rng = random.Random(1124)
    n = 0
    for _ in range(150):
        stream = b""
        for _ in range(rng.randint(1, 4)):
            n += 1
            request = (
                post(send_form(n), b"/gateway.do?charset=utf-8") if rng.random() < 0.5 else post(form("x"))
            )
            if rng.random() < 0.3:
                request = mutate(rng, request)
            if rng.random() < 0.1:
                request = request.replace(b"Host: 127.0.0.1\r\n", b"Host: 127.0.0.1\r\nConnection: close\r\n")
            stream += request
        stream += CLOSE
        cuts = sorted(rng.sample(range(1, len(stream)), k=rng.randint(0, 3)))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        got = exchange(fast, pieces, timeout=2.0, pause=0.005)
        want = exchange(plain, pieces, timeout=2.0, pause=0.005)
        assert comparable(got) == comparable(want), pieces
    front = fast.serving.front
    assert front.answered > 50 and front.handed_off > 50


def test_latency_holds_the_requests_behind_it_in_order(make_mock) -> None:
    mock = latency_mock(make_mock, 150)
    started = time.perf_counter()
    out = exchange(mock, [post(send_form(1)) + post(form("no.such")) + post(send_form(2))])
    elapsed = time.perf_counter() - started
    bodies = re.findall(rb"\r\n\r\n(\{[^\r]*?\})(?=HTTP/|$)", out)
    assert len(bodies) == 3, out
    assert b"voucher_id" in bodies[0] and b"isv.invalid-method" in bodies[1] and b"voucher_id" in bodies[2]
    assert elapsed >= 0.3  # two sends, 150 ms each, one after the other
    stats = mock.admin("GET", "/admin/stats")[1]["methods"][SEND]
    assert stats["calls"] == 2


@pytest.mark.parametrize("front", [True, False], ids=["fast-path", "aiohttp-only"])
def test_half_close_drops_the_late_answer_as_aiohttp_does(make_mock, front: bool) -> None:
    mock = latency_mock(make_mock, 100, front=front)
    with connect(mock) as sock:
        sock.sendall(post(send_form(1)))
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(65536) == b""  # closed, no answer: aiohttp cancels the handler
    assert mock.admin("GET", "/admin/health")[0] == 200  # still serving


@pytest.mark.parametrize("front", [True, False], ids=["fast-path", "aiohttp-only"])
def test_stopping_still_sends_an_answer_waiting_out_its_latency(make_mock, front: bool) -> None:
    mock = latency_mock(make_mock, 300, front=front)
    with connect(mock) as sock:
        sock.sendall(post(send_form(1)))
        time.sleep(0.05)
        stopper = threading.Thread(target=mock.stop)
        stopper.start()
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        stopper.join(10)
    assert out.startswith(b"HTTP/1.1 200 OK") and b"voucher_id" in out


def test_idle_connections_are_closed_after_the_keepalive_timeout(make_mock) -> None:
    mock = make_mock({"limits": {"keepalive_timeout_s": 0.2}})
    with (
        connect(mock) as idle,
        connect(mock) as busy,
    ):
        for sock in (idle, busy):
            sock.sendall(post(form("no.such")))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        started = time.monotonic()
        while time.monotonic() - started < 0.3:  # the busy one keeps talking
            busy.sendall(post(form("no.such")))
            assert busy.recv(65536).startswith(b"HTTP/1.1 200 OK")
            time.sleep(0.05)
        assert idle.recv(65536) == b""  # closed by the server
        assert time.monotonic() - started < 2
        busy.sendall(post(form("no.such")))
        assert busy.recv(65536).startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize("size", [MAX_BODY_BYTES, 400_000], ids=["front-largest", "aiohttp-larger"])
def test_a_large_body_allowed_by_the_limit_is_answered_as_aiohttp_does(make_mock, size: int) -> None:
    """The largest body the front takes, with a long header (so the request is larger than the
    input the front keeps before it stops reading), and a larger one, which aiohttp takes."""
    config = {"seed": SEED, "limits": {"max_body_bytes": 4_000_000}}
    fast, plain = make_mock(config, front=True), make_mock(config, front=False)
    body = send_form(1) + b"&pad="
    body += b"p" * (size - len(body))
    request = post(body, extra=b"X-Pad: " + b"x" * 8000 + b"\r\n")
    assert len(request) > PAUSE_READING_BYTES + 1000
    pieces = [request[i : i + 10_000] for i in range(0, len(request), 10_000)]
    got, want = exchange(fast, pieces), exchange(plain, pieces)
    assert b"voucher_id" in want
    assert DATE_RE.sub(b"", got) == DATE_RE.sub(b"", want)
    assert fast.serving.front.answered == (1 if size <= MAX_BODY_BYTES else 0)


def test_a_client_gone_before_its_late_answer_leaves_the_server_serving(make_mock) -> None:
    mock = latency_mock(make_mock, 200)
    for n in range(5):
        with connect(mock) as sock:
            sock.sendall(post(send_form(n)))
    time.sleep(0.3)
    assert mock.serving.front.connections == set()
    assert mock.admin("GET", "/admin/health")[0] == 200


def test_hang_closes_and_reset_resets(make_mock) -> None:
    mock = make_mock({"seed": SEED, "faults": {SEND: {"outage": {"mode": "hang", "hang_s": 0.2}}}})
    started = time.perf_counter()
    assert exchange(mock, [post(send_form(1))]) == b"<EOF>"  # a FIN, no answer
    assert time.perf_counter() - started >= 0.2
    mock.admin("PUT", "/admin/faults", {SEND: {"outage": {"mode": "reset"}}})
    with pytest.raises(ConnectionResetError):
        exchange(mock, [post(send_form(2))])
    assert mock.serving.front.answered == 2


def test_a_client_that_does_not_read_gets_every_answer_in_the_end(make_mock, app_public_pem) -> None:
    """Megabytes of pipelined requests, read only once all are sent: the front stops writing, then
    reading, and resumes both; nothing is lost or reordered. (A wrong signature answers with the
    whole checked string, so each 8-KB request gets an 8-KB answer.)"""
    mock = make_mock({"seed": {"apps": [{"app_id": "2021000000000001", "public_key": app_public_pem}]}})
    n = 1000
    requests = b"".join(
        post(form(f"m{i}").replace(b"method=m", b"method=" + SEND.encode() + b"&x=m")
             + b"&sign=AAAA&sign_type=RSA2&pad=" + b"p" * 8000)
        for i in range(n)
    )  # fmt: skip
    with connect(mock, 20) as sock:
        sender = threading.Thread(target=sock.sendall, args=(requests,), daemon=True)
        sender.start()
        front = mock.serving.front
        deadline = time.monotonic() + 20
        while not any(c.reading_paused for c in list(front.connections)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert any(c.reading_paused for c in list(front.connections)), "the front never stopped reading"
        out = bytearray()
        while out.count(b"HTTP/1.1 200 OK") < n and time.monotonic() < deadline:
            out += sock.recv(1 << 20)
        sender.join(10)
    names = re.findall(rb"x=m(\d+)", out)
    assert [int(x) for x in names] == list(range(n))
    assert front.answered == n


def test_stopping_closes_idle_front_connections(make_mock) -> None:
    mock = make_mock()
    with connect(mock) as sock:
        sock.sendall(post(form("no.such")))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        mock.stop()
        assert sock.recv(65536) == b""  # EOF: the server closed the idle connection


# ----------------------------------------------------------------------------- the head reader


def read_heads(raw: bytes, limit: int = 65536) -> list:
    reader = HeadReader(limit)
    reader.parser.feed_data(raw)
    return reader.heads


def test_the_head_reader_takes_what_clients_send() -> None:
    raw = post(send_form(1), b"/gateway.do?charset=utf-8", extra=b"Connection: keep-alive, Close\r\n")
    [plain] = read_heads(raw)
    assert plain is not None
    assert (plain.query, plain.length, plain.close) == (b"charset=utf-8", len(send_form(1)), True)
    assert read_heads(raw, len(send_form(1)) - 1) == [None]  # over the limit: aiohttp's 413
    assert read_heads(raw.replace(b"POST", b"PUT", 1)) == [None]
    assert read_heads(raw.replace(b"Host:", b"X-Host:", 1)) == [None]  # aiohttp's 400
    long = post(b"", b"/gateway.do?" + b"a" * MAX_HEAD_BYTES)
    assert read_heads(long) == [None]


def test_real_clients_take_the_fast_path(make_mock) -> None:
    """urllib (what the tests' helpers use) and geventhttpclient (Locust's FastHttpUser, which
    loadkit's users are) both send heads the front answers itself."""
    from geventhttpclient import HTTPClient

    mock = make_mock({"seed": SEED})
    assert mock.gateway(SEND, {"activity_id": ACT, "out_biz_no": "u1", "user_id": "2088000000000001"})
    client = HTTPClient(*mock.serving.address, connection_timeout=5, network_timeout=5)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
        response = client.post("/gateway.do", body=send_form(2), headers=headers)
        assert response.status_code == 200 and b"voucher_id" in response.read()
    finally:
        client.close()
    assert mock.serving.front.answered == 2 and mock.serving.front.handed_off == 0


async def _aiohttp_answer(status: int, headers: dict[str, str], body: bytes) -> bytes:
    """What aiohttp writes for web.Response(status, body, headers) to a client asking to close."""

    async def handler(request: web.BaseRequest) -> web.Response:
        return web.Response(status=status, body=body, headers=headers)

    runner = web.ServerRunner(web.Server(handler), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        reader, writer = await asyncio.open_connection(*runner.addresses[0][:2])
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return raw
    finally:
        await runner.cleanup()


def test_a_replys_own_headers_are_written_as_aiohttp_writes_them() -> None:
    """The gateway's answers carry one Content-Type, encoded once; any other headers a Reply
    carries are written in aiohttp's order too."""
    headers = {"Content-Type": "application/json; charset=utf-8", "Request-ID": "ab12", "Allow": "POST"}
    body = b'{"code":"PARAM_ERROR"}'
    want = asyncio.run(_aiohttp_answer(400, headers, body))
    assert DATE_RE.sub(b"", _head(400, headers, len(body), True) + body) == DATE_RE.sub(b"", want)
