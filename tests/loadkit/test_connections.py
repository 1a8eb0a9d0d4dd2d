"""One keep-alive connection per user, even when the user's socket descriptor is above 1,023."""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Iterator

import gevent
import pytest
from gevent.pywsgi import WSGIServer
from gevent.server import StreamServer
from locust import FastHttpUser, task
from locust.env import Environment

from loadkit.connections import KeepAliveClientPool, idle_and_open
from loadkit.user import PlatformUser

REQUESTS = 12
FILLER = 1100  # descriptors held open so that the client's socket gets one above 1023


class Server:
    """Answers every request; remembers the client port of each, i.e. which connection it came on."""

    def __init__(self) -> None:
        self.ports: list[str] = []
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None, error_log=None)

    def app(self, environ, start_response):
        self.ports.append(environ["REMOTE_PORT"])
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
    """Hold FILLER descriptors open (raising the soft limit if it is lower), so new sockets get
    descriptors above 1023."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FILLER + 200
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} open files, the hard limit here is {hard}")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(FILLER)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def connections_used(user_class: type[FastHttpUser], url: str, server: Server) -> int:
    user_class.host = url
    user = user_class(Environment())
    server.ports.clear()
    for _ in range(REQUESTS):
        with user.client.get("/", catch_response=True) as response:
            assert response.status_code == 200, response.error
    user.client.client.close()
    assert len(server.ports) == REQUESTS
    return len(set(server.ports))


class PlainUser(FastHttpUser):
    @task
    def noop(self) -> None:  # never run: the test drives the client directly
        pass


class Visitor(PlatformUser):
    @task
    def noop(self) -> None:
        pass


def test_plain_fast_http_user_reconnects_on_every_request_above_fd_setsize(
    server: Server, high_descriptors: None
) -> None:
    # the defect the fix is for; if geventhttpclient fixes it, this fails and the fix can go
    assert connections_used(PlainUser, server.url, server) == REQUESTS


def test_platform_user_keeps_one_connection_above_fd_setsize(server: Server, high_descriptors: None) -> None:
    assert connections_used(Visitor, server.url, server) == 1


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
    ports: list[int] = []

    def answer_then_close(sock, address) -> None:  # an idle timeout right after the answer
        ports.append(address[1])
        sock.recv(65536)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        sock.close()

    server = StreamServer(("127.0.0.1", 0), answer_then_close)
    server.start()
    try:
        Visitor.host = f"http://127.0.0.1:{server.server_port}"
        user = Visitor(Environment())
        for _ in range(3):
            with user.client.get("/", catch_response=True) as response:
                assert response.status_code == 200, response.error
            gevent.sleep(0.05)  # the FIN arrives while the connection is idle in the pool
        user.client.client.close()
    finally:
        server.stop(timeout=1)
    assert len(set(ports)) == 3


def test_idle_and_open_tells_a_reusable_connection(high_descriptors: None) -> None:
    client, peer = socket.socketpair()
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
