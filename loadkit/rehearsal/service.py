"""The service under test, started and owned by loadkit for a three-tier rehearsal.

`ServiceProcess` turns a plan's `service:` section into a running process: it makes a fresh RSA
key pair for the service's app and registers it with the mock (and, when the plan names a
`{wx_...}` placeholder, another for a WeChat Pay merchant, registered the same way, with the
mock's WeChat Pay public key beside it), writes the keys into a private directory (0700, files
0600), fills the placeholders, starts the command in its own process group with its output in
`{run_dir}/service.log`, and polls `ready` until it answers 200. `exited()` is
the death watch; `stop()` sends SIGTERM to the whole group, waits `stop_timeout`, then SIGKILL.

Nothing is left behind, however loadkit ends: `stop()` runs at Locust's quit and at exit; on
Linux the service is started with a parent-death signal (it gets SIGTERM if the Locust process
dies, even by SIGKILL); and its pid, group and start time go to `{run_dir}/service.pid`, which the
`loadkit` CLI reads after Locust exits to end a group still there (`reap_leftover`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import TypedDict

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from loadkit.plan import ServiceSetup
from loadkit.rehearsal.mock_admin import MockAdmin

LOG_NAME = "service.log"
PID_NAME = "service.pid"
TAIL_LINES = 15
POLL_S = 0.1
PR_SET_PDEATHSIG = 1
# the service's environment is the Locust process's, less loadkit's own secrets
HIDDEN_ENV_PREFIXES = ("LOADKIT_",)


class ServiceCommandError(RuntimeError):
    """The command cannot be executed at all (not found, not executable): a usage error."""


class ServiceDoc(TypedDict):
    """summary.json `service`: the system under test and what became of it."""

    command: list[str]
    host: str
    pid: int | None
    ready_s: float | None  # seconds from start to the first 200 of `ready`
    exit_code: int | None  # set when it exited before loadkit stopped it
    died_at: str | None  # ISO time it was found dead
    log: str
    ok: bool
    problem: str | None  # why it is not ok: did not start, did not become ready, died


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_public(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _die_with_parent() -> None:  # runs in the child between fork and exec
    """Linux: SIGTERM this process when the process that started it dies (even by SIGKILL)."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class ServiceProcess:
    def __init__(self, setup: ServiceSetup, *, mock: MockAdmin | None, run_dir: Path) -> None:
        self.setup = setup
        self.mock = mock
        self.run_dir = Path(run_dir)
        self.log_path = self.run_dir / LOG_NAME
        self.pid_path = self.run_dir / PID_NAME
        self.proc: subprocess.Popen | None = None
        self.key_dir: Path | None = None
        self.public_pem = b""
        self.wx_public_pem = b""  # the WeChat Pay merchant's key, when the plan uses WeChat
        self.wx_serial_no = ""
        self.values: dict[str, str] = {}
        self.command: list[str] = []
        self.env: dict[str, str] = {}
        self.host = ""
        self.ready_url = ""
        self.records_url: str | None = None
        self.records_token: str | None = None
        self.started_at: float | None = None
        self.ready_s: float | None = None
        self.problem: str | None = None
        self.exit_code: int | None = None
        self.died_at: float | None = None
        self._stopping = False
        atexit.register(self.stop)

    # --- start ------------------------------------------------------------------------------

    def prepare(self, mock_url: str) -> None:
        """Keys (registered with the mock), a port, the placeholders filled."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_dir = Path(tempfile.mkdtemp(prefix="loadkit-service-"))  # 0700
        private_file = self.key_dir / "app_private_key.pem"
        public_file = self.key_dir / "app_public_key.pem"
        platform_file = self.key_dir / "platform_public_key.pem"
        self.public_pem = _pem_public(key)
        platform_pem = b""
        if self.mock is not None:
            self.mock.register_app(self.setup.app_id, self.public_pem.decode())
            platform_pem = self.mock.public_key().encode()
        self._write(private_file, _pem_private(key))
        self._write(public_file, self.public_pem)
        self._write(platform_file, platform_pem)
        self.values = {
            "python": sys.executable,
            "port": str(free_port()),
            "mock_url": mock_url.rstrip("/"),
            "app_id": self.setup.app_id,
            "app_private_key_file": str(private_file),
            "app_public_key_file": str(public_file),
            "platform_public_key_file": str(platform_file),
            "service_token": secrets.token_urlsafe(24),
            "run_dir": str(self.run_dir),
        }
        if self.setup.uses_wechat:
            self.values.update(self._wechat_merchant())
        fill = self.fill
        self.command = [fill(word) for word in self.setup.command]
        self.env = {name: fill(value) for name, value in self.setup.env.items()}
        self.host = fill(self.setup.host).rstrip("/")
        self.ready_url = fill(self.setup.ready)
        self.records_url = fill(self.setup.records) if self.setup.records else None
        if self.setup.records_token_env:
            self.records_token = self.env.get(self.setup.records_token_env)

    def _wechat_merchant(self) -> dict[str, str]:
        """A WeChat Pay merchant for the service: a fresh API key pair and certificate serial,
        registered with the mock (POST /admin/wechat/merchants); the mock's WeChat Pay public key
        and its id (GET /admin/wechat/platform) to verify the answers with."""
        assert self.key_dir is not None
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.wx_public_pem = _pem_public(key)
        self.wx_serial_no = secrets.token_hex(20).upper()  # a merchant API certificate's serial: 40 hex
        platform_pem, key_id = "", ""
        if self.mock is not None:
            self.mock.register_wx_merchant(
                self.setup.wx_mchid, self.wx_serial_no, self.wx_public_pem.decode()
            )
            platform_pem, key_id = self.mock.wx_platform()
        private_file = self.key_dir / "wx_private_key.pem"
        platform_file = self.key_dir / "wx_platform_public_key.pem"
        self._write(private_file, _pem_private(key))
        self._write(platform_file, platform_pem.encode())
        return {
            "wx_mchid": self.setup.wx_mchid,
            "wx_serial_no": self.wx_serial_no,
            "wx_private_key_file": str(private_file),
            "wx_platform_public_key_file": str(platform_file),
            "wx_public_key_id": key_id,
        }

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    def fill(self, text: str) -> str:
        return text.format(**self.values)

    def register_again(self) -> None:
        """Seeding the mock may have replaced the app's key (a seed's `apps` entry without one) or
        the WeChat Pay merchant (a seed's `wechat.merchants` entry with its mchid): register them
        again after every seed."""
        if self.mock is None:
            return
        if self.public_pem:
            self.mock.register_app(self.setup.app_id, self.public_pem.decode())
        if self.wx_public_pem:
            self.mock.register_wx_merchant(
                self.setup.wx_mchid, self.wx_serial_no, self.wx_public_pem.decode()
            )

    def effect_scopes(self) -> tuple[str, ...]:
        """The ledger scopes whose effects are this service's: its Alipay app, and its WeChat Pay
        merchant when it has one (the scope of out_request_no)."""
        return (self.setup.app_id, self.setup.wx_mchid) if self.wx_public_pem else (self.setup.app_id,)

    def start(self) -> bool:
        """Start the command and wait until `ready` answers 200. False (with `problem` set)
        when it exits or is not ready within ready_timeout; ServiceCommandError when it cannot
        be executed at all."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(HIDDEN_ENV_PREFIXES)}
        env.update(self.env)
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: stopped as a whole
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            raise ServiceCommandError(
                f"cannot run the service command {self.command[0]!r}: {exc.strerror or exc}"
            ) from None
        finally:
            log.close()
        self.started_at = time.time()
        self._write_pid_file()
        deadline = time.monotonic() + self.setup.ready_timeout_s
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.exit_code = code
                self.problem = (
                    f"the service under test exited with code {code} before it was ready{self._tail_text()}"
                )
                self._forget()
                return False
            if self._answers_ready():
                self.ready_s = round(time.time() - self.started_at, 3)
                return True
            time.sleep(POLL_S)
        self.problem = (
            f"the service under test was not ready within {self.setup.ready_timeout_s:g} s "
            f"({self.ready_url} never answered 200){self._tail_text()}"
        )
        self.stop()
        return False

    def _answers_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=1.0) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    # --- watch --------------------------------------------------------------------------------

    def exited(self) -> int | None:
        """The exit code when the service died on its own (once found, it stays found)."""
        if self.exit_code is not None:
            return self.exit_code
        if self.proc is None or self._stopping:
            return None
        code = self.proc.poll()
        if code is not None:
            self.exit_code = code
            self.died_at = time.time()
            self._forget()
        return code

    def death_reason(self, t0: float | None) -> str:
        """The sentence a run that lost its service ends with."""
        code = self.exit_code
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        when = ""
        if self.died_at is not None:
            clock = time.strftime("%H:%M:%S", time.localtime(self.died_at))
            into = f", {self.died_at - t0:.0f} s into the run" if t0 is not None else ""
            when = f" at {clock}{into}"
        return f"the service under test {how}{when}{self._tail_text()}"

    def log_tail(self, lines: int = TAIL_LINES) -> list[str]:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 16384))
                tail = deque(fh.read().decode("utf-8", "replace").splitlines(), maxlen=lines)
        except OSError:
            return []
        return [line for line in tail if line.strip()]

    def _tail_text(self) -> str:
        tail = self.log_tail()
        return f"; the last lines of {self.log_path}:\n  " + "\n  ".join(tail) if tail else ""

    # --- stop ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM the process group, wait stop_timeout, SIGKILL; remove the keys. Idempotent."""
        self._stopping = True
        proc = self.proc
        if proc is not None:
            stop_group(proc.pid, self.setup.stop_timeout_s, proc)
            self._forget()
        if self.key_dir is not None:
            shutil.rmtree(self.key_dir, ignore_errors=True)
            self.key_dir = None

    def _forget(self) -> None:
        """The process is gone: its group may still hold children (a shell's), end them too."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.pid_path.unlink(missing_ok=True)

    def _write_pid_file(self) -> None:
        assert self.proc is not None
        created = _create_time(self.proc.pid)
        self.pid_path.write_text(
            json.dumps({"pid": self.proc.pid, "pgid": self.proc.pid, "create_time": created})
        )

    # --- summary ------------------------------------------------------------------------------

    def doc(self, t0: float | None = None) -> ServiceDoc:
        from loadkit.measure.figures import iso

        died = self.died_at is not None
        return {
            "command": list(self.command),
            "host": self.host,
            "pid": self.proc.pid if self.proc is not None else None,
            "ready_s": self.ready_s,
            "exit_code": self.exit_code,
            "died_at": iso(self.died_at) if self.died_at is not None else None,
            "log": str(self.log_path),
            "ok": self.problem is None and not died,
            "problem": self.problem or (self.death_reason(t0) if died else None),
        }


def stop_group(pgid: int, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM the group, wait up to `timeout_s` for its leader, then SIGKILL the group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                break
        elif not _group_alive(pgid):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _create_time(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # psutil comes with Locust; without it the check is by pid only
        return None


def reap_leftover(run_dir: Path, timeout_s: float = 10.0) -> int | None:
    """The CLI's last resort after Locust exits: end the service group recorded in `run_dir`
    if that very process is still there (same start time). Returns its pid when it had to."""
    path = Path(run_dir) / PID_NAME
    try:
        info = json.loads(path.read_text())
        pid, pgid, created = int(info["pid"]), int(info["pgid"]), info.get("create_time")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        if created is not None and _create_time(pid) not in (None, created):
            return None  # the pid was reused by another process
        if not _group_alive(pgid):
            return None
        stop_group(pgid, timeout_s)
        return pid
    finally:
        path.unlink(missing_ok=True)
