"""One keep-alive connection per user, even when the user's socket descriptor is above 1,023."""

from __future__ import annotations

import gc
import json
import os
import resource
import socket
import subprocess
import sys
from collections.abc import Iterator

import gevent
import gevent.event
import pytest
from gevent.monkey import get_original
from gevent.pywsgi import WSGIServer
from gevent.server import StreamServer
from geventhttpclient.client import HTTPClientPool
from geventhttpclient.connectionpool import ConnectionPool
from locust import FastHttpUser, task
from locust.env import Environment

from loadkit.engine import connections
from loadkit.engine.connections import KeepAliveClientPool, idle_and_open
from loadkit.platform.user import PlatformUser

REQUESTS = 12
SOCKETPAIR = get_original("socket", "socketpair")
LOWEST_FREE = 1030  # while the descriptors below are held, the client's socket gets one above 1023


class CountingServer(WSGIServer):
    """Counts the connections it accepts (client ports are no count: loopback reuses them at once)."""

    accepted = 0

    def handle(self, sock, address) -> None:
        self.accepted += 1
        super().handle(sock, address)


class Server:
    """Answers every request with a small JSON body."""

    def __init__(self) -> None:
        self.requests = 0
        self.server = CountingServer(("127.0.0.1", 0), self.app, log=None, error_log=None)

    def app(self, environ, start_response):
        self.requests += 1
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.server.start()
    try:
        yield srv
    finally:
        srv.server.stop(timeout=1)


@pytest.fixture
def high_descriptors() -> Iterator[None]:
    """Hold every free descriptor below 1030 (raising the soft limit if needed), so new sockets get
    descriptors above 1023."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = LOWEST_FREE + 200
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} open files, the hard limit here is {hard}")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    # sockets of earlier tests still waiting to be closed (garbage, or a close queued in gevent's hub)
    # would free low descriptors during the test
    gc.collect()
    gevent.sleep(0.1)
    held = [os.open(os.devnull, os.O_RDONLY)]
    while held[-1] < LOWEST_FREE:
        held.append(os.open(os.devnull, os.O_RDONLY))
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def connections_used(user_class: type[FastHttpUser], url: str, server: Server) -> int:
    user_class.host = url
    user = user_class(Environment())
    before, server.requests = server.server.accepted, 0
    for _ in range(REQUESTS):
        with user.client.get("/", catch_response=True) as response:
            assert response.status_code == 200, response.error
    user.client.client.close()
    assert server.requests == REQUESTS
    return server.server.accepted - before


class PlainUser(FastHttpUser):
    @task
    def noop(self) -> None:  # never run: the test drives the client directly
        pass


class Visitor(PlatformUser):
    @task
    def noop(self) -> None:
        pass


# In a fresh process: in this one, sockets that earlier tests left to gevent's hub can close at
# any moment and free a low descriptor, which the next socket would take.
ABOVE_FD_SETSIZE = """
import json, os, resource, sys
from gevent.monkey import get_original
from gevent.pywsgi import WSGIServer
from locust import FastHttpUser, task
from geventhttpclient.client import HTTPClientPool
from locust.env import Environment
from loadkit.platform.user import PlatformUser

class Counting(WSGIServer):
    accepted = 0
    def handle(self, sock, address):
        self.accepted += 1
        super().handle(sock, address)

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]

class Plain(FastHttpUser):
    @task
    def noop(self): pass

class Visitor(PlatformUser):
    @task
    def noop(self): pass

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < 1300:
    print(json.dumps({"skip": f"the hard limit of open files here is {hard}"}))
    sys.exit()
if soft != resource.RLIM_INFINITY and soft < 1300:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1300, hard))
server = Counting(("127.0.0.1", 0), app, log=None, error_log=None)
server.start()
held = [os.open(os.devnull, os.O_RDONLY)]
while held[-1] < 1030:
    held.append(os.open(os.devnull, os.O_RDONLY))
out = {}
for cls in (Plain, Visitor):
    cls.host = f"http://127.0.0.1:{server.server_port}"
    user, before = cls(Environment()), server.accepted
    for _ in range(int(sys.argv[1])):
        with user.client.get("/", catch_response=True) as response:
            assert response.status_code == 200, response.error
    out[cls.__name__] = server.accepted - before
out["lowest_free"] = os.open(os.devnull, os.O_RDONLY)  # every descriptor below was in use
server.stop(timeout=1)
print(json.dumps(out))
"""


def test_one_connection_per_user_above_fd_setsize() -> None:
    run = subprocess.run(
        [sys.executable, "-c", ABOVE_FD_SETSIZE, str(REQUESTS)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    if "skip" in counts:
        pytest.skip(counts["skip"])
    assert counts["lowest_free"] > 1024  # so the users' sockets had descriptors above 1023
    assert counts["Visitor"] == 1  # PlatformUser keeps its one connection
    # The canary: Locust's plain FastHttpUser reconnects on every request while geventhttpclient
    # has the defect. When this fails with Plain == 1, a release fixed it: remove the work-around
    # (loadkit/engine/connections.py) and this test.
    assert counts["Plain"] == REQUESTS, "geventhttpclient fixed the select() defect: drop the work-around"


def test_platform_user_keeps_one_connection_below_fd_setsize(server: Server) -> None:
    assert connections_used(Visitor, server.url, server) == 1


def test_pool_keeps_the_users_settings(server: Server) -> None:
    Visitor.host = server.url
    pool = Visitor(Environment()).client.client.clientpool
    assert isinstance(pool, KeepAliveClientPool)
    assert pool.client_args["network_timeout"] == Visitor.network_timeout
    assert pool.client_args["connection_timeout"] == Visitor.connection_timeout
    assert pool.client_args["concurrency"] == Visitor.concurrency


def test_a_connection_the_server_closed_is_replaced() -> None:
    accepted = 0
    closed = gevent.event.Event()

    def answer_then_close(sock, address) -> None:  # an idle timeout right after the answer
        nonlocal accepted
        accepted += 1
        sock.recv(65536)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        sock.shutdown(socket.SHUT_RDWR)  # the FIN now (gevent may close the descriptor later)
        sock.close()
        closed.set()

    server = StreamServer(("127.0.0.1", 0), answer_then_close)
    server.start()
    try:
        Visitor.host = f"http://127.0.0.1:{server.server_port}"
        user = Visitor(Environment())
        for _ in range(3):
            closed.clear()
            # POST, as gateway calls are: geventhttpclient retries an idempotent GET on a dead
            # connection by itself, which would hide a check that took it for a live one
            with user.client.post("/", data=b"x=1", catch_response=True) as response:
                assert response.status_code == 200, response.error
            assert closed.wait(5)  # the connection is idle in the pool, closed by the server
        user.client.client.close()
    finally:
        server.stop(timeout=1)
    assert accepted == 3


def test_idle_and_open_tells_a_reusable_connection(high_descriptors: None) -> None:
    client, peer = SOCKETPAIR()  # plain sockets: gevent's may close their descriptor later
    try:
        assert client.fileno() >= 1024  # where select() would have refused it
        assert idle_and_open(client)
        peer.sendall(b"x")  # unread data: dirty
        assert not idle_and_open(client)
        client.recv(1)
        assert idle_and_open(client)
        peer.close()  # EOF: closed by the other side
        assert not idle_and_open(client)
    finally:
        client.close()
        peer.close()
    assert not idle_and_open(client)  # closed here: fileno() is -1
    assert not idle_and_open(None)


def test_a_shared_client_pool_the_user_class_chose_is_kept(server: Server) -> None:
    shared = HTTPClientPool(concurrency=5)

    class Sharing(PlatformUser):
        client_pool = shared
        host = server.url

        @task
        def noop(self) -> None:
            pass

    users = [Sharing(Environment()) for _ in range(2)]
    assert all(user.client.client.clientpool is shared for user in users)


def test_check_internals_fails_loudly_when_geventhttpclient_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    connections.check_internals()  # the installed, pinned release has what the fix needs
    monkeypatch.delattr(ConnectionPool, "_is_socket_alive")
    with pytest.raises(connections.UnsupportedGeventHttpClient, match="_is_socket_alive is gone"):
        connections.check_internals()
