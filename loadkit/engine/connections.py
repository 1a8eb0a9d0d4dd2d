"""Keep-alive that still holds when a Locust process has more than 1,024 open files.

Before reusing an idle connection, geventhttpclient's pool (2.6) checks it with ``select()``,
which refuses descriptors of 1,024 and above (FD_SETSIZE); the pool takes that refusal for a dead
connection. With more than ~1,000 users in one process (each holds its own connection), every
user whose socket got such a descriptor closed it and opened a new one on every request, with a
``getaddrinfo`` through gevent's thread pool each time: ~360 new connections/s at 300 arrivals/s
with the mixed-event plan's 1,500 users, and a quarter more generator CPU (BENCHMARKS.md).

`KeepAliveClientPool` makes the same check with ``poll()``, which takes any descriptor. It
changes the class of each connection pool it creates (the only way in: HTTPClient builds its
pool inline), and nothing else.

This reaches into geventhttpclient's private parts (`HTTPClient._connection_pool`,
`ConnectionPool._is_socket_alive`), so pyproject pins the minor range it was tested on and
`check_internals()` runs at import: a release that renames them fails loudly here rather than
silently bringing the reconnect storms back. tests/loadkit/engine/test_connections.py holds a
canary that fails once upstream fixes the defect, so this work-around can then be removed.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from typing import Any

from gevent.monkey import get_original
from geventhttpclient.client import HTTPClient, HTTPClientPool
from geventhttpclient.connectionpool import ConnectionPool, SSLConnectionPool

TESTED = "2.6"  # the geventhttpclient minor release this module was written against (pyproject pins it)


class UnsupportedGeventHttpClient(ImportError):
    """geventhttpclient no longer has the internals the keep-alive fix relies on."""


def check_internals() -> None:
    """Raise if geventhttpclient lacks what `KeepAliveClientPool` replaces or reads."""
    problems = []
    if not callable(getattr(ConnectionPool, "_is_socket_alive", None)):
        problems.append("ConnectionPool._is_socket_alive is gone")
    elif list(inspect.signature(ConnectionPool._is_socket_alive).parameters) != ["self", "sock"]:
        problems.append("ConnectionPool._is_socket_alive(self, sock) changed its signature")
    if "_connection_pool" not in inspect.getsource(HTTPClient.__init__):
        problems.append("HTTPClient no longer keeps its pool in _connection_pool")
    if not issubclass(SSLConnectionPool, ConnectionPool):
        problems.append("SSLConnectionPool is no longer a ConnectionPool")
    if problems:
        raise UnsupportedGeventHttpClient(
            f"loadkit's keep-alive fix (loadkit/engine/connections.py, tested on geventhttpclient "
            f"{TESTED}.x) cannot work with geventhttpclient {version('geventhttpclient')}: "
            + "; ".join(problems)
        )


check_internals()

# gevent's monkey-patching swaps select.poll for a cooperative one; a zero-timeout poll never
# blocks, so the original (no greenlet switch) is enough here.
_poll, _POLLIN, _POLLPRI, _POLLERR, _POLLHUP = get_original(
    "select", ["poll", "POLLIN", "POLLPRI", "POLLERR", "POLLHUP"]
)
_NOT_IDLE = _POLLIN | _POLLPRI | _POLLERR | _POLLHUP


def idle_and_open(sock: Any) -> bool:
    """True when a pooled connection can be reused: nothing to read, since data, EOF or an error
    on an idle keep-alive connection mean it is dirty or closed. Any descriptor number."""
    if sock is None:
        return False
    try:
        fd = sock.fileno()
        if fd < 0:
            return False
        poller = _poll()
        poller.register(fd, _NOT_IDLE)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


class _PollAliveCheck:
    def _is_socket_alive(self, sock: Any) -> bool:
        return idle_and_open(sock)


class _Pool(_PollAliveCheck, ConnectionPool):
    pass


class _SSLPool(_PollAliveCheck, SSLConnectionPool):
    pass


_POLL_CHECKED = {ConnectionPool: _Pool, SSLConnectionPool: _SSLPool}


class KeepAliveClientPool(HTTPClientPool):
    """geventhttpclient's client pool, whose connections are checked with poll() (see above)."""

    def get_client(self, url: Any) -> HTTPClient:
        client = super().get_client(url)
        pool = client._connection_pool  # private: check_internals() vouches for it
        fixed = _POLL_CHECKED.get(type(pool))
        if fixed is not None:  # once per client: afterwards its type is the fixed one
            pool.__class__ = fixed
        return client


def keep_alive_above_fd_setsize(user: Any) -> None:
    """Give a FastHttpUser's session a `KeepAliveClientPool` with the same settings, unless the
    user class chose its own `client_pool` (a pool its users share: it stays as it is)."""
    agent = user.client.client
    if user.client_pool is None and type(agent.clientpool) is HTTPClientPool:
        agent.clientpool = KeepAliveClientPool(**agent.clientpool.client_args)
