"""The service under test's lifecycle, with a stand-in service: placeholders, readiness, the
death watch, stopping the whole group, and the watchdogs for a Locust that dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from loadkit.plan import parse_plan
from loadkit.rehearsal.service import ServiceCommandError, ServiceProcess, reap_leftover

pytestmark = pytest.mark.timeout(60)
FAKE = Path(__file__).with_name("fake_service.py")


class FakeMock:
    base_url = "http://127.0.0.1:9"

    def __init__(self) -> None:
        self.apps: list[tuple[str, str]] = []
        self.merchants: list[tuple[str, str, str]] = []

    def register_app(self, app_id: str, pem: str) -> None:
        self.apps.append((app_id, pem))

    def public_key(self) -> str:
        return "-----BEGIN PUBLIC KEY-----\nMOCK\n-----END PUBLIC KEY-----\n"

    def register_wx_merchant(self, mchid: str, serial_no: str, pem: str) -> None:
        self.merchants.append((mchid, serial_no, pem))

    def wx_platform(self) -> tuple[str, str]:
        return "-----BEGIN PUBLIC KEY-----\nWXMOCK\n-----END PUBLIC KEY-----\n", "PUB_KEY_ID_0123"


def service(tmp_path: Path, mode: str = "ok", **extra) -> ServiceProcess:
    setup = {
        "command": ["{python}", str(FAKE), "{port}", mode],
        "env": {"FAKE_KEY": "{app_private_key_file}", "FAKE_PLATFORM": "{platform_public_key_file}",
                "FAKE_MOCK": "{mock_url}/gateway.do", "FAKE_TOKEN": "{service_token}"},
        "ready": "http://127.0.0.1:{port}/healthz",
        "ready_timeout": "5s",
        "stop_timeout": "2s",
        **extra,
    }  # fmt: skip
    plan = parse_plan({"name": "t", "stages": [{"duration": "5s", "qps": 1}], "service": setup})
    assert plan.service is not None
    return ServiceProcess(plan.service, mock=FakeMock(), run_dir=tmp_path / "run")  # type: ignore[arg-type]


def test_starts_ready_with_placeholders_filled_and_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("LOADKIT_MOCK_ADMIN_TOKEN", "secret")  # never handed to the service
    svc = service(tmp_path)
    svc.prepare("http://127.0.0.1:7777/")
    assert svc.mock.apps[0][0] == "2021000000000001" and "BEGIN PUBLIC KEY" in svc.mock.apps[0][1]
    key_dir = svc.key_dir
    assert key_dir is not None and oct(key_dir.stat().st_mode & 0o777) == "0o700"
    key = Path(svc.env["FAKE_KEY"])
    assert oct(key.stat().st_mode & 0o777) == "0o600" and b"PRIVATE KEY" in key.read_bytes()
    assert b"MOCK" in Path(svc.env["FAKE_PLATFORM"]).read_bytes()
    assert svc.env["FAKE_MOCK"] == "http://127.0.0.1:7777/gateway.do"
    assert svc.host == f"http://127.0.0.1:{svc.values['port']}"
    assert svc.start(), svc.problem
    assert svc.ready_s is not None and svc.exited() is None
    pid = svc.proc.pid
    info = json.loads((tmp_path / "run" / "service.pid").read_text())
    assert info["pid"] == pid == os.getpgid(pid)
    log = (tmp_path / "run" / "service.log").read_text()
    assert "FAKE_TOKEN" in log and "secret" not in log and "LOADKIT_" not in log
    svc.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not key_dir.exists() and not (tmp_path / "run" / "service.pid").exists()
    doc = svc.doc()
    assert doc["ok"] and doc["exit_code"] is None and doc["pid"] == pid and doc["log"].endswith("service.log")


def test_exit_before_ready_is_a_problem_with_the_log_tail(tmp_path):
    svc = service(tmp_path, "exit")
    svc.prepare("http://127.0.0.1:9")
    assert not svc.start()
    assert "exited with code 4 before it was ready" in svc.problem
    assert "cannot start: no database" in svc.problem
    assert svc.doc()["ok"] is False and svc.doc()["exit_code"] == 4


def test_never_ready_is_stopped_after_the_timeout(tmp_path):
    svc = service(tmp_path, "never-ready", ready_timeout="1s")
    svc.prepare("http://127.0.0.1:9")
    assert not svc.start()
    assert "not ready within 1 s" in svc.problem and "/healthz never answered 200" in svc.problem
    assert svc.proc.poll() is not None


def test_a_command_that_cannot_run_is_a_usage_error(tmp_path):
    svc = service(tmp_path, command=["/nonexistent/service-binary", "{port}"])
    svc.prepare("http://127.0.0.1:9")
    with pytest.raises(ServiceCommandError, match="nonexistent"):
        svc.start()
    svc.stop()


def test_death_watch_reports_once_with_the_signal(tmp_path):
    svc = service(tmp_path)
    svc.prepare("http://127.0.0.1:9")
    assert svc.start()
    os.kill(svc.proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while svc.exited() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert svc.exited() == -9
    reason = svc.death_reason(time.time() - 12)
    assert (
        reason.startswith("the service under test was killed by signal 9 at ")
        and "12 s into the run" in reason
    )
    assert not svc.doc()["ok"] and svc.doc()["died_at"]
    svc.stop()


def test_stop_ends_the_whole_group_even_a_stubborn_one(tmp_path):
    svc = service(tmp_path, "child")
    svc.prepare("http://127.0.0.1:9")
    assert svc.start()
    time.sleep(0.3)
    children = psutil.Process(svc.proc.pid).children()
    assert children
    svc.stop()
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive
    stubborn = service(tmp_path / "s", "stubborn")
    stubborn.prepare("http://127.0.0.1:9")
    assert stubborn.start()
    started = time.monotonic()
    stubborn.stop()  # SIGTERM ignored: SIGKILL after stop_timeout (2 s)
    assert stubborn.proc.poll() is not None and 1.5 < time.monotonic() - started < 6


def test_a_killed_parent_takes_its_service_along_and_the_cli_reaps_leftovers(tmp_path):
    """The parent-death signal: the process that started the service dies by SIGKILL."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parents[3])!r})
        from tests.loadkit.rehearsal.test_service import service
        from pathlib import Path
        svc = service(Path({str(tmp_path)!r}))
        svc.prepare("http://127.0.0.1:9")
        assert svc.start()
        print(svc.proc.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    child = psutil.Process(pid)
    parent.kill()
    parent.wait(timeout=5)
    child.wait(timeout=10)  # SIGTERM from the kernel when its parent died
    # the CLI's last resort: a pid file whose group is still alive is ended
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    run_dir = tmp_path / "reap"
    run_dir.mkdir()
    created = psutil.Process(leftover.pid).create_time()
    (run_dir / "service.pid").write_text(
        json.dumps({"pid": leftover.pid, "pgid": leftover.pid, "create_time": created})
    )
    assert reap_leftover(run_dir, timeout_s=2) == leftover.pid
    assert leftover.wait(timeout=5) is not None and not (run_dir / "service.pid").exists()
    # a pid file of a process that is gone, or of a reused pid, is only removed
    (run_dir / "service.pid").write_text(
        json.dumps({"pid": leftover.pid, "pgid": leftover.pid, "create_time": 1.0})
    )
    assert reap_leftover(run_dir) is None and not (run_dir / "service.pid").exists()


WX_ENV = {
    "FAKE_WX_MCHID": "{wx_mchid}",
    "FAKE_WX_SERIAL": "{wx_serial_no}",
    "FAKE_WX_KEY": "{wx_private_key_file}",
    "FAKE_WX_PLATFORM": "{wx_platform_public_key_file}",
    "FAKE_WX_KEY_ID": "{wx_public_key_id}",
}


def test_wechat_placeholders_register_a_merchant_again_after_each_seed(tmp_path):
    svc = service(tmp_path, env={**WX_ENV, "FAKE_TOKEN": "{service_token}"}, wx_mchid=1900000042)
    svc.prepare("http://127.0.0.1:9")
    try:
        ((mchid, serial, pem),) = svc.mock.merchants
        assert (mchid, svc.env["FAKE_WX_MCHID"]) == ("1900000042", "1900000042")
        assert serial == svc.env["FAKE_WX_SERIAL"] and len(serial) == 40 and serial == serial.upper()
        assert "BEGIN PUBLIC KEY" in pem and pem != svc.mock.apps[0][1]  # its own key pair
        key = Path(svc.env["FAKE_WX_KEY"])
        assert oct(key.stat().st_mode & 0o777) == "0o600" and b"PRIVATE KEY" in key.read_bytes()
        assert b"WXMOCK" in Path(svc.env["FAKE_WX_PLATFORM"]).read_bytes()
        assert svc.env["FAKE_WX_KEY_ID"] == "PUB_KEY_ID_0123"
        assert svc.effect_scopes() == ("2021000000000001", "1900000042")
        svc.register_again()  # after a seed: the app and the merchant, with the same keys
        assert svc.mock.merchants == [(mchid, serial, pem)] * 2 and len(svc.mock.apps) == 2
    finally:
        svc.stop()


def test_without_wechat_placeholders_no_merchant_is_registered(tmp_path):
    svc = service(tmp_path)
    svc.prepare("http://127.0.0.1:9")
    try:
        svc.register_again()
        assert svc.mock.merchants == [] and svc.effect_scopes() == ("2021000000000001",)
        assert not any("wx" in name for name in svc.values)
    finally:
        svc.stop()
