"""Clients that send slowly or never finish: they must not cost the mock its CPU, and they are
closed after the configured timeouts (limits.head_timeout_s, body_timeout_s, keepalive_timeout_s).

The drip test runs the mock as its own process, so its CPU time (psutil) is the mock's alone.
"""

from __future__ import annotations

import itertools
import logging
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

import psutil
import pytest

from mock_platform import serving
from mock_platform.front import TESTED_AIOHTTP, aiohttp_supported
from tests.processes import stop_process

SEND = "alipay.marketing.activity.voucher.send"
FORM = urllib.parse.urlencode(
    {"app_id": "2021000000000001", "method": "no.such", "charset": "utf-8"}
).encode()
CTYPE = b"Content-Type: application/x-www-form-urlencoded;charset=utf-8\r\n"


def post(body: bytes = FORM, extra: bytes = b"") -> bytes:
    return (
        b"POST /gateway.do HTTP/1.1\r\nHost: 127.0.0.1\r\n" + CTYPE + extra
        + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip


# A plain head of ~30 KB (30 header lines of ~1 KB), never finished: the front keeps reading it.
DRIP_HEAD = b"POST /gateway.do HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(
    b"X-Pad-%02d: %s\r\n" % (i, b"a" * 1000) for i in range(30)
)
DRIPPERS = 200
DRIP_AT_ONCE = 28_000  # sent at once; the rest one byte per connection every DRIP_EVERY_S
DRIP_EVERY_S = 0.01
DRIP_FOR_S = 10.0


def start_mock(*args: str) -> tuple[subprocess.Popen, tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mock_platform", "--port", "0", "--admin-token", "t", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    for line in proc.stdout:
        match = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if match:
            return proc, (match.group(1), int(match.group(2)))
        if time.monotonic() > deadline:
            break
    stop_process(proc)
    raise RuntimeError("the mock did not start")


def call(address: tuple[str, int]) -> float:
    """One gateway call on a new connection; seconds until its whole answer."""
    started = time.perf_counter()
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(post(extra=b"Connection: close\r\n"))
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    assert out.startswith(b"HTTP/1.1 200 OK") and b"isv.invalid-method" in out, out
    return time.perf_counter() - started


def test_heads_dripped_byte_by_byte_cost_little_cpu_and_normal_calls_stay_fast() -> None:
    """200 connections drip a 30 KB head (28 KB at once, then a byte every 10 ms each) for 10 s
    while normal calls are made: the mock stays well under a core, the normal calls stay fast.
    The front as it was (re-scanning the whole partial head for every byte) held the core 99 %
    busy here, and the normal calls' p50 went from 0.2 to 35 ms (this front: 17 %, 0.9 ms)."""
    proc, address = start_mock()
    socks: list[socket.socket] = []
    stop = threading.Event()
    try:
        baseline = statistics.median(call(address) for _ in range(20))
        for _ in range(DRIPPERS):
            sock = socket.create_connection(address, timeout=5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(DRIP_HEAD[:DRIP_AT_ONCE])
            socks.append(sock)

        def drip() -> None:
            at = DRIP_AT_ONCE
            next_tick = time.monotonic()
            while not stop.is_set() and at < len(DRIP_HEAD):
                for sock in socks:
                    sock.send(DRIP_HEAD[at : at + 1])
                at += 1
                next_tick += DRIP_EVERY_S
                time.sleep(max(0.0, next_tick - time.monotonic()))

        dripper = threading.Thread(target=drip, daemon=True)
        mock = psutil.Process(proc.pid)
        time.sleep(0.5)  # the first 28 KB read
        cpu0, started = mock.cpu_times(), time.monotonic()
        dripper.start()
        latencies = []
        while time.monotonic() - started < DRIP_FOR_S:
            latencies.append(call(address))
            time.sleep(0.05)
        cpu1, elapsed = mock.cpu_times(), time.monotonic() - started
        stop.set()
        dripper.join(5)
        busy = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed
        p50, worst = statistics.median(latencies), max(latencies)
        print(
            f"busy {busy:.0%}, p50 {p50 * 1e3:.1f} ms (before {baseline * 1e3:.1f}), max {worst * 1e3:.0f} ms"
        )
        assert busy < 0.5, f"the mock was {busy:.0%} busy reading dripped heads"
        assert p50 < max(5 * baseline, 0.008), f"normal calls slowed: p50 {p50 * 1e3:.1f} ms"
        assert worst < 0.15, f"a normal call took {worst * 1e3:.0f} ms"
        assert len(latencies) > 50
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        stop_process(proc)


# ------------------------------------------------------------------------- the timeouts


def closed_after(sock: socket.socket, limit: float = 5.0) -> float:
    """Seconds until the server closes `sock` (reading and dropping what it sends)."""
    started = time.monotonic()
    sock.settimeout(limit)
    while sock.recv(65536):
        pass
    return time.monotonic() - started


TIMEOUTS = {"limits": {"head_timeout_s": 0.3, "body_timeout_s": 0.3, "keepalive_timeout_s": 1.5}}


CHUNKED = b"POST /gateway.do HTTP/1.1\r\nHost: x\r\n" + CTYPE + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab"


@pytest.mark.parametrize(
    "sent",
    [DRIP_HEAD[:100], post()[: -len(FORM) - 2], post()[:-5]],
    ids=["head-never-ends", "head-without-its-blank-line", "body-never-ends"],
)
def test_a_request_that_never_completes_is_closed_after_its_timeout(make_mock, sent: bytes) -> None:
    mock = make_mock(TIMEOUTS)
    with socket.create_connection(mock.serving.address, timeout=5) as sock:
        sock.sendall(sent)
        waited = closed_after(sock)
    assert 0.25 <= waited < 1.2, waited  # the head or body timeout, not the keep-alive one
    assert mock.serving.front.timed_out == 1
    assert mock.admin("GET", "/admin/health")[0] == 200


@pytest.mark.parametrize(
    ("front", "sent", "expected"),
    [(False, post()[:-5], 0.3), (True, CHUNKED, 0.3), (False, DRIP_HEAD[:100], 1.5)],
    ids=["body-aiohttp-only", "chunked-body-handed-to-aiohttp", "head-aiohttp-only"],
)
def test_aiohttp_closes_a_request_that_never_completes_too(
    make_mock, front: bool, sent: bytes, expected: float
) -> None:
    """A body read by the gateway's aiohttp route gets the body timeout; a head aiohttp reads,
    its keep-alive timeout (aiohttp has no head timeout)."""
    mock = make_mock(TIMEOUTS, front=front)
    with socket.create_connection(mock.serving.address, timeout=5) as sock:
        sock.sendall(sent)
        waited = closed_after(sock)
    assert expected - 0.05 <= waited < expected + 0.9, waited
    assert mock.admin("GET", "/admin/health")[0] == 200


def test_a_slow_request_that_completes_in_time_is_answered(make_mock) -> None:
    mock = make_mock({"limits": {"head_timeout_s": 1.0, "body_timeout_s": 1.0}})
    request = post()
    with socket.create_connection(mock.serving.address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cuts = [len(request) * i // 5 for i in range(6)]
        for start, end in itertools.pairwise(cuts):  # 5 pieces, 50 ms apart
            sock.sendall(request[start:end])
            time.sleep(0.05)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    assert mock.serving.front.timed_out == 0


@pytest.mark.parametrize("front", [True, False], ids=["fast-path", "aiohttp-only"])
def test_an_idle_connection_is_closed_after_the_keepalive_timeout(make_mock, front: bool) -> None:
    """After an answer, and on a connection that never sent anything: on both paths, within a
    fraction of the timeout (the front once counted up to twice its figure)."""
    mock = make_mock(TIMEOUTS, front=front)
    with (
        socket.create_connection(mock.serving.address, timeout=5) as used,
        socket.create_connection(mock.serving.address, timeout=5) as silent,
    ):
        used.sendall(post())
        assert used.recv(65536).startswith(b"HTTP/1.1 200 OK")
        waited = closed_after(used)
        assert 1.45 <= waited < 2.4, waited
        assert closed_after(silent) < 1.0  # already open 1.5 s and more


def test_a_nul_byte_in_a_head_logs_one_line_and_no_traceback(make_mock, caplog) -> None:
    mock = make_mock()
    with caplog.at_level(logging.DEBUG, logger="aiohttp"):
        with socket.create_connection(mock.serving.address, timeout=5) as sock:
            sock.sendall(post(extra=b"X-A: a\x00b\r\n"))
            assert b" 400 Bad Request" in sock.recv(65536)
        time.sleep(0.1)
    records = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert len(records) <= 1, [r.getMessage() for r in records]
    for record in records:
        assert record.exc_info is None and "\n" not in record.getMessage()
        assert "Invalid header value char" in record.getMessage()


# ------------------------------------------------------------------ the aiohttp version


def test_the_front_knows_the_aiohttp_version_it_was_tested_with() -> None:
    assert aiohttp_supported("3.14.5") and aiohttp_supported("3.14")
    assert not aiohttp_supported("3.15.0") and not aiohttp_supported("3.140.1")
    assert not aiohttp_supported("4.0.0a1")


def test_another_aiohttp_version_serves_everything_through_aiohttp(make_mock, monkeypatch, caplog) -> None:
    monkeypatch.setattr(serving, "aiohttp_supported", lambda: False)
    with caplog.at_level(logging.WARNING, logger="mock_platform.serving"):
        mock = make_mock()
    assert mock.serving.front is None
    [record] = [r for r in caplog.records if r.name == "mock_platform.serving"]
    assert "gateway front off" in record.getMessage() and TESTED_AIOHTTP in record.getMessage()
    with socket.create_connection(mock.serving.address, timeout=5) as sock:
        sock.sendall(post())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
