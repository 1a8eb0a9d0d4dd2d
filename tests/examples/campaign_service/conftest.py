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


# --------------------------------------------------------------------------- WeChat

WX_APPID = "wx5f2b8c1d9e3a4b6c"
WX_SECRET = "campaign-tests-wx-secret"
WX_MCHID = "1900000001"
WX_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
WX_STOCK = "9856000"
WX_SEND = "wechat.coupon.send"
WX_LOGIN = "wechat.jscode2session"


@dataclass(frozen=True)
class WxKeys:
    """The merchant's API key pair (files), and a stranger's public key (to distrust answers)."""

    merchant_private: Path
    merchant_public_pem: str
    other_public: Path


@pytest.fixture(scope="session")
def wx_keys(tmp_path_factory: pytest.TempPathFactory, keys: KeyFiles) -> WxKeys:
    folder = tmp_path_factory.mktemp("wx-keys")
    merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "merchant.pem").write_bytes(
        merchant.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return WxKeys(folder / "merchant.pem", pem_public(merchant), keys.other_public)


def wx_seed(max_coupons: int = 1000, per_user: int = 1) -> dict[str, Any]:
    return {
        "wechat": {
            "apps": [{"appid": WX_APPID, "secret": WX_SECRET}],
            "stocks": [
                {
                    "stock_id": WX_STOCK,
                    "max_coupons": max_coupons,
                    "max_coupons_per_user": per_user,
                    "coupon_value": 500,
                    "stock_creator_mchid": WX_MCHID,
                }
            ],
        }
    }


@dataclass
class WxMock:
    """The session's mock, seeded for WeChat too, with the merchant registered."""

    mock: Mock
    platform_public_key: Path
    public_key_id: str

    def env(self, keys: WxKeys, **overrides: str) -> dict[str, str]:
        env = {
            "CAMPAIGN_WX_BASE_URL": self.mock.url,
            "CAMPAIGN_WX_APPID": WX_APPID,
            "CAMPAIGN_WX_SECRET": WX_SECRET,
            "CAMPAIGN_WX_MCHID": WX_MCHID,
            "CAMPAIGN_WX_SERIAL_NO": WX_SERIAL,
            "CAMPAIGN_WX_PRIVATE_KEY_FILE": str(keys.merchant_private),
            "CAMPAIGN_WX_PLATFORM_PUBLIC_KEY_FILE": str(self.platform_public_key),
            "CAMPAIGN_WX_PUBLIC_KEY_ID": self.public_key_id,
        }
        env.update(overrides)
        return env

    def effects(self) -> list[dict[str, Any]]:
        status, _, raw = http("GET", self.mock.url + "/admin/effects", headers={"X-Admin-Token": MOCK_TOKEN})
        assert status == 200, raw
        return [json.loads(line) for line in raw.splitlines() if line.strip()]


@pytest.fixture
def wx_mock(mock: Mock, wx_keys: WxKeys, tmp_path: Path) -> WxMock:
    mock.admin("POST", "/admin/seed", wx_seed())
    mock.admin(
        "POST",
        "/admin/wechat/merchants",
        {"mchid": WX_MCHID, "serial_no": WX_SERIAL, "public_key": wx_keys.merchant_public_pem},
    )
    platform = mock.admin("GET", "/admin/wechat/platform")
    key_file = tmp_path / "wx_platform_public.pem"
    key_file.write_text(platform["public_key"])
    return WxMock(mock, key_file, platform["public_key_id"])


class WxService:
    """A service with WeChat on, and the visitor's side of it (the phone's wx.login through the
    mock's client simulator)."""

    def __init__(self, svc: Service, wx: WxMock) -> None:
        self.svc = svc
        self.wx = wx
        self.sessions: dict[str, str] = {}
        self.openids: dict[str, str] = {}

    def code(self, user_id: str) -> str:
        return self.wx.mock.auth_code(user_id)

    def login(self, user_id: str) -> str:
        """A WeChat session for the phone of `user_id`; its openid in `openids`."""
        if user_id not in self.sessions:
            status, _, body = self.svc.request("POST", "/api/wx/login", {"code": self.code(user_id)})
            assert status == 200, body
            assert body["user_id"] == body["openid"] and body["openid"].startswith("o")
            self.sessions[user_id] = body["session"]
            self.openids[user_id] = body["openid"]
        return self.sessions[user_id]

    def claim(self, user_id: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
        return self.svc.request("POST", "/api/wx/coupons/claim", body, session=self.login(user_id))
