"""Fixtures that run a real mock platform on 127.0.0.1 (port 0) in a background OS thread.

`mock_server` gives a default mock; `make_mock(config)` starts more (a MockConfig, or a mapping in
the config-file format). Every server is stopped at teardown. Helpers on `RunningMock` speak
plain urllib so sync tests (and Locust-side code) can use them.
"""

from __future__ import annotations

import _thread
import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import uvloop
from aiohttp import web

from mock_platform.app import STATE, MockState, create_app
from mock_platform.config import MockConfig
from mock_platform.serving import Serving, start_serving

START_TIMEOUT_S = 15.0
ADMIN_TOKEN = "test-admin-token"


@dataclass
class RunningMock:
    url: str
    admin_token: str
    app: web.Application
    serving: Serving  # its `front` counts what the gateway front answered itself
    stop: Callable[[], None]  # stop the server now (teardown does it otherwise)

    @property
    def state(self) -> MockState:
        """Direct access to the ledger, faults and metrics (read from tests only between calls)."""
        return self.app[STATE]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for one HTTP call; HTTP errors are returned, not raised."""
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def admin(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """(status, parsed JSON answer, or the text of a non-JSON one such as aiohttp's 404)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {
            "X-Admin-Token": self.admin_token if token is None else token,
            "Content-Type": "application/json",
        }
        status, resp_headers, raw = self.request(method, path, data, headers)
        if resp_headers.get("Content-Type", "").startswith("application/json"):
            return status, json.loads(raw)
        return status, raw.decode("utf-8", "replace")

    def sim(self, path: str, body: Any) -> tuple[int, Any]:
        status, _, raw = self.request(
            "POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        return status, json.loads(raw)

    def gateway_raw(self, params: Mapping[str, str], query: Mapping[str, str] | None = None) -> bytes:
        """POST the form (and optional query) to /gateway.do; the raw response bytes (HTTP 200 asserted)."""
        path = "/gateway.do" + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
        status, _, raw = self.request("POST", path, urllib.parse.urlencode(params).encode(), headers)
        assert status == 200, raw
        return raw

    def gateway(self, method: str, biz: Mapping[str, Any] | None = None, **params: str) -> tuple[str, dict]:
        """Call `method` unsigned; (node name, node object)."""
        form = {
            "app_id": "2021000000000001",
            "method": method,
            "charset": "utf-8",
            "version": "1.0",
            **params,
        }
        if biz is not None:
            form["biz_content"] = json.dumps(biz)
        doc = json.loads(self.gateway_raw(form))
        node = next(k for k in doc if k != "sign")
        return node, doc[node]


def _os_thread_api() -> tuple[Callable[..., Any], Callable[[], Any]]:
    """`_thread.start_new_thread` and `allocate_lock` as the OS provides them.

    Importing Locust monkey-patches threading with gevent, which turns threads into greenlets of
    the main thread: an event loop there would clash with any other. The originals still give a
    real thread, where uvloop runs the server without touching gevent's patched modules.
    """
    try:
        from gevent import monkey
    except ImportError:
        return _thread.start_new_thread, _thread.allocate_lock
    start, lock = monkey.get_original("_thread", ["start_new_thread", "allocate_lock"])
    return start, lock


class _ServerThread:
    """One mock on its own OS thread and uvloop event loop."""

    def __init__(self, config: MockConfig, front: bool) -> None:
        self.config = config
        self.front = front
        self._start_thread, allocate_lock = _os_thread_api()
        self._ready = allocate_lock()  # released once serving (or failed)
        self._done = allocate_lock()  # released when the thread ends
        self._ready.acquire()
        self._done.acquire()
        self.mock: RunningMock | None = None
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self._stopped = False

    def _run(self) -> None:
        try:
            uvloop.run(self._serve())
        except BaseException as exc:  # reported to the test through start_and_wait()
            self.error = exc
        finally:
            if self._ready.locked():
                self._ready.release()
            self._done.release()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        app = create_app(self.config)
        serving = await start_serving(app, "127.0.0.1", self.config.port, front=self.front)
        try:
            self.mock = RunningMock(serving.url, app[STATE].admin_token, app, serving, self.stop)
            self._ready.release()
            await self.stop_event.wait()
        finally:
            await serving.stop()

    def start_and_wait(self) -> RunningMock:
        self._start_thread(self._run, ())
        if not self._ready.acquire(timeout=START_TIMEOUT_S):
            raise RuntimeError("the mock platform did not start in time")
        if self.error is not None:
            raise self.error
        assert self.mock is not None
        return self.mock

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.loop is not None and self.stop_event is not None and self.error is None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        if not self._done.acquire(timeout=10):
            raise RuntimeError("the mock platform did not stop in time")


@pytest.fixture
def make_mock() -> Iterator[Any]:
    """Factory: `make_mock(config=None, front=True, **options)` -> RunningMock; `config` is a
    MockConfig or a config-file mapping, `options` are MockConfig switches (strict=True, ...);
    `front=False` serves the gateway through aiohttp alone (timeouts: the config's `limits`).
    It binds 127.0.0.1 on port 0 unless `port=` says otherwise; a failed bind raises OSError."""
    threads: list[_ServerThread] = []

    def start(
        config: MockConfig | Mapping[str, Any] | None = None,
        *,
        front: bool = True,
        **options: Any,
    ) -> RunningMock:
        if not isinstance(config, MockConfig):
            options.setdefault("admin_token", ADMIN_TOKEN)
            config = MockConfig.from_mapping(config or {}, **options)
        thread = _ServerThread(config, front)
        threads.append(thread)
        return thread.start_and_wait()

    yield start
    for thread in threads:
        thread.stop()


@pytest.fixture
def mock_server(make_mock: Any) -> RunningMock:
    """A default mock platform: no seed, no faults, not strict."""
    return make_mock()
