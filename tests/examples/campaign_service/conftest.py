"""Real processes on 127.0.0.1: the mock platform (`python -m mock_platform`, one per session,
reset and seeded for every test) and the campaign service (`python -m campaign_service`, one or
more per test), with a throwaway RSA key pair per session. Every process is stopped at teardown,
with timeouts.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from campaign_service.ready import parse_ready_line
from tests.processes import stop_process

ROOT = Path(__file__).resolve().parents[3]
SEEDS = ROOT / "scenarios" / "seeds"
APP_ID = "2021000000000001"
MOCK_TOKEN = "campaign-tests-mock-token"
SERVICE_ADMIN_TOKEN = "campaign-tests-admin"
START_TIMEOUT_S = 20.0
MOCK_READY = "mock_platform listening on "


@dataclass(frozen=True)
class KeyFiles:
    """PEM files: the app's key pair, a stranger's key pair (for forgeries), the mock's public key."""

    app_private: Path
    app_public_pem: str
    other_private: rsa.RSAPrivateKey
    other_public: Path


def pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def pem_public(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    folder = tmp_path_factory.mktemp("keys")
    app = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "app.pem").write_bytes(pem_private(app))
    (folder / "other_pub.pem").write_text(pem_public(other))
    return KeyFiles(folder / "app.pem", pem_public(app), other, folder / "other_pub.pem")


def http(
    method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None, timeout: float = 15.0
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, raw body); HTTP errors are returned, not raised. `body`: JSON-able or bytes."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json"} if data is not None else {}
    all_headers.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _lines(stream: Any) -> queue.Queue[str | None]:
    """The lines of `stream`, read on a daemon thread (None at EOF), so a wait can time out."""
    out: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            out.put(line)
        out.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return out


def wait_for_line(lines: queue.Queue[str | None], prefix: str, proc: subprocess.Popen, what: str) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            break
        if line.startswith(prefix):
            return line
    raise AssertionError(f"{what} did not print its ready line (exit code {proc.poll()})")


@dataclass
class Mock:
    url: str
    proc: subprocess.Popen

    @property
    def gateway(self) -> str:
        return self.url + "/gateway.do"

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        status, _, raw = http(method, self.url + path, body, {"X-Admin-Token": MOCK_TOKEN})
        assert status == 200, (path, status, raw)
        return json.loads(raw)

    def faults(self, spec: Mapping[str, Any]) -> None:
        self.admin("PUT", "/admin/faults", spec)

    def audit(self) -> dict[str, Any]:
        return self.admin("GET", "/admin/audit")

    def method_totals(self, method: str) -> dict[str, int]:
        totals = self.audit()["totals"]["methods"]
        return totals.get(method, {"ok": 0, "effects": 0, "replays": 0, "business_failures": 0})

    def auth_code(self, user_id: str) -> str:
        status, _, raw = http("POST", self.url + "/sim/auth_code", {"user_id": user_id})
        assert status == 200, raw
        return json.loads(raw)["auth_code"]

    def follow(self, user_id: str) -> None:
        status, _, raw = http("POST", self.url + "/sim/follow", {"user_id": user_id})
        assert status == 200, raw

    def gateway_call(self, method: str, biz: Mapping[str, Any]) -> dict[str, Any]:
        """An unsigned call straight to the mock (the app's key is registered, but unsigned calls
        are still accepted when the mock is not --strict): the node's object."""
        form = urllib.parse.urlencode(
            {
                "app_id": APP_ID,
                "method": method,
                "charset": "utf-8",
                "version": "1.0",
                "biz_content": json.dumps(biz),
            }
        ).encode()
        status, _, raw = http(
            "POST", self.gateway, form, {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
        )
        assert status == 200, raw
        doc = json.loads(raw)
        return doc[next(k for k in doc if k != "sign")]


@pytest.fixture(scope="session")
def mock_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mock]:
    log = (tmp_path_factory.mktemp("mock") / "mock.err").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mock_platform",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--admin-token",
            MOCK_TOKEN,
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        line = wait_for_line(_lines(proc.stdout), MOCK_READY, proc, "mock_platform")
        yield Mock(line.strip()[len(MOCK_READY) :], proc)
    finally:
        stop_process(proc)
        log.close()


def seed() -> dict[str, Any]:
    """Everything the shipped seeds give: the mixed event's seed (points, follow gift, flash sale,
    red envelopes)."""
    return yaml.safe_load((SEEDS / "event_mixed.yaml").read_text())


@pytest.fixture
def mock(mock_process: Mock, keys: KeyFiles, tmp_path: Path) -> Mock:
    """The session's mock, reset, with no faults, seeded, the app's key registered."""
    mock_process.admin("POST", "/admin/reset")
    mock_process.faults({})
    mock_process.admin("POST", "/admin/seed", seed())
    mock_process.admin("POST", "/admin/apps", {"app_id": APP_ID, "public_key": keys.app_public_pem})
    return mock_process


@dataclass
class Service:
    url: str
    proc: subprocess.Popen
    db: Path
    stderr_path: Path
    mock: Mock | None = None
    sessions: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        session: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, parsed JSON or raw text)."""
        all_headers = dict(headers or {})
        if session is not None:
            all_headers["Authorization"] = f"Bearer {session}"
        status, resp_headers, raw = http(method, self.url + path, body, all_headers)
        if resp_headers.get("Content-Type", "").startswith("application/json"):
            return status, resp_headers, json.loads(raw)
        return status, resp_headers, raw.decode("utf-8", "replace")

    def login(self, user_id: str) -> str:
        """A session for `user_id`, logging in through the mock's simulator once."""
        if user_id not in self.sessions:
            assert self.mock is not None
            status, _, body = self.request("POST", "/api/login", {"auth_code": self.mock.auth_code(user_id)})
            assert status == 200, body
            assert body["user_id"] == user_id
            self.sessions[user_id] = body["session"]
        return self.sessions[user_id]

    def claim(self, path: str, user_id: str) -> tuple[int, dict[str, str], Any]:
        return self.request("POST", path, session=self.login(user_id))

    def grants(self, since: float | None = None) -> list[dict[str, Any]]:
        path = "/admin/grants" + ("" if since is None else f"?since={since}")
        status, headers, text = self.request("GET", path, headers={"X-Admin-Token": SERVICE_ADMIN_TOKEN})
        assert status == 200, text
        assert headers["Content-Type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in text.splitlines() if line]

    def stderr(self) -> str:
        return self.stderr_path.read_text()


def base_env(keys: KeyFiles, mock: Mock | None, gateway: str | None = None) -> dict[str, str]:
    """The environment for a service: the test's own, less any CAMPAIGN_* it may carry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(
        {
            "CAMPAIGN_GATEWAY_URL": gateway or (mock.gateway if mock else "http://127.0.0.1:9/gateway.do"),
            "CAMPAIGN_APP_ID": APP_ID,
            "CAMPAIGN_APP_PRIVATE_KEY_FILE": str(keys.app_private),
            "CAMPAIGN_ADMIN_TOKEN": SERVICE_ADMIN_TOKEN,
        }
    )
    if mock is not None:
        env["CAMPAIGN_PLATFORM_PUBLIC_KEY"] = mock.admin("GET", "/admin/keys")["alipay_public_key"]
    return env


StartService = Callable[..., Service]


@pytest.fixture
def start_service(keys: KeyFiles, tmp_path: Path) -> Iterator[StartService]:
    """`start_service(mock, env={...}, args=[...], gateway=None)`: a running service; all are stopped
    at teardown (SIGTERM, then kill)."""
    started: list[subprocess.Popen] = []

    def start(
        mock: Mock | None,
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        gateway: str | None = None,
    ) -> Service:
        n = len(started)
        db = tmp_path / f"service{n}.sqlite3"
        err_path = tmp_path / f"service{n}.err"
        full_env = base_env(keys, mock, gateway)
        full_env.update(env or {})
        with err_path.open("w") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "campaign_service",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--db",
                    str(db),
                ]
                + (args or []),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=full_env,
            )
        started.append(proc)
        line = wait_for_line(_lines(proc.stdout), "campaign_service listening on ", proc, "campaign_service")
        ready = parse_ready_line(line)
        assert ready is not None, line
        return Service(ready.url, proc, db, err_path, mock)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        stop_process(proc)
