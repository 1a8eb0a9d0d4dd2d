"""`python -m campaign_service` as a process: refusals (exit 2, one clear line on stderr), the
planted-bug warning, and a graceful stop that finishes the request under way."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from campaign_service.cli import main
from tests.examples.campaign_service.conftest import KeyFiles, Mock, StartService, base_env, http


def run(env: dict[str, str], *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "campaign_service", "--port", "0", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def refused(env: dict[str, str], *args: str) -> str:
    """The one stderr line of a refusal; checks exit code 2 and that nothing was served."""
    proc = run(env, *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("change", "args", "expected"),
    [
        ({"CAMPAIGN_GATEWAY_URL": ""}, (), "CAMPAIGN_GATEWAY_URL is required"),
        ({"CAMPAIGN_GATEWAY_URL": "https://openapi.alipay.com/gateway.do"}, (), "is not loopback"),
        (
            {"CAMPAIGN_PLATFORM_PUBLIC_KEY": ""},
            (),
            "CAMPAIGN_PLATFORM_PUBLIC_KEY_FILE (or CAMPAIGN_PLATFORM_PUBLIC_KEY)",
        ),
        ({}, ("--bug", "off-by-one"), "unknown bug 'off-by-one'"),
    ],
)
def test_refuses_to_start(
    keys: KeyFiles, mock: Mock, change: dict[str, str], args: tuple[str, ...], expected: str
) -> None:
    env = base_env(keys, mock)
    env.update(change)
    line = refused(env, *args)
    assert line.startswith("campaign_service: ")
    assert expected in line


@pytest.mark.parametrize(
    ("change", "args", "expected"),
    [
        ({"CAMPAIGN_GATEWAY_URL": "http://10.0.0.8:8080/gateway.do"}, (), "is not loopback"),
        ({"CAMPAIGN_GATEWAY_URL": "http://gateway.example/gateway.do"}, (), "is not loopback"),
        ({"CAMPAIGN_GATEWAY_URL": "ftp://127.0.0.1/gateway.do"}, (), "must be an http(s) URL"),
        ({"CAMPAIGN_GATEWAY_URL": "http://127.0.0.1:99999/gateway.do"}, (), "not a URL"),
        (
            {"CAMPAIGN_PLATFORM_PUBLIC_KEY_FILE": "", "CAMPAIGN_PLATFORM_PUBLIC_KEY": "not a key"},
            (),
            "not an RSA public key",
        ),
        (
            {"CAMPAIGN_APP_PRIVATE_KEY_FILE": ""},
            (),
            "CAMPAIGN_APP_PRIVATE_KEY_FILE (or CAMPAIGN_APP_PRIVATE_KEY)",
        ),
        ({"CAMPAIGN_APP_PRIVATE_KEY_FILE": "/nonexistent/app.pem"}, (), "cannot read /nonexistent/app.pem"),
        ({"CAMPAIGN_BUG": "off-by-one"}, (), "unknown bug 'off-by-one'"),
        ({"CAMPAIGN_PLATFORM_TIMEOUT_S": "fast"}, (), "CAMPAIGN_PLATFORM_TIMEOUT_S: must be a number"),
        ({"CAMPAIGN_PLATFORM_RETRIES": "-1"}, (), "CAMPAIGN_PLATFORM_RETRIES: must be between 0 and 10"),
        ({"CAMPAIGN_ADMIN_TOKEN": "short"}, (), "CAMPAIGN_ADMIN_TOKEN: use at least 8 characters"),
    ],
)
def test_refusals_in_process(
    keys: KeyFiles,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    args: tuple[str, ...],
    expected: str,
) -> None:
    """More refusals, through main() without a process each."""
    env = base_env(keys, None)
    env["CAMPAIGN_PLATFORM_PUBLIC_KEY_FILE"] = str(keys.other_public)
    env.update(change)
    for name in [k for k in os.environ if k.startswith("CAMPAIGN_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("CAMPAIGN_"):
            monkeypatch.setenv(name, value)
    assert main(["--port", "0", *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("campaign_service: ")
    assert expected in err


def test_a_bad_campaign_file_or_database_is_refused(keys: KeyFiles, mock: Mock, tmp_path: Path) -> None:
    env = base_env(keys, mock)
    bad = tmp_path / "campaigns.yaml"
    bad.write_text("coupons:\n  flash-sale: {activity_id: FLASH-SALE, per_user_limit: 0}\n")
    line = refused(env, "--config", str(bad))
    assert "coupons.flash-sale.per_user_limit" in line and str(bad) in line
    env["CAMPAIGN_CONFIG"] = str(bad)
    assert "coupons.flash-sale.per_user_limit" in refused(env)
    del env["CAMPAIGN_CONFIG"]
    assert "cannot open the database" in refused(env, "--db", str(tmp_path))  # a directory


def test_usage_errors_exit_2(keys: KeyFiles, mock: Mock) -> None:
    proc = run(base_env(keys, mock), "--port", "70000")
    assert proc.returncode == 2 and "port must be 0-65535" in proc.stderr


def test_insecure_no_verify_starts_with_a_warning(start_service: StartService) -> None:
    svc = start_service(None, env={"CAMPAIGN_INSECURE_NO_VERIFY": "1"})
    status, _, body = svc.request("GET", "/healthz")
    assert (status, body) == (200, {"ok": True})
    assert "responses are NOT verified" in svc.stderr()


def test_sigterm_finishes_the_request_under_way_and_exits_0(mock: Mock, start_service: StartService) -> None:
    svc = start_service(mock)
    session = svc.login("2088000000000301")
    mock.faults({"alipay.user.alipaypoint.send": {"latency": {"dist": "constant", "ms": 800}}})
    answers: list[tuple[int, dict]] = []

    def claim() -> None:
        status, _, body = svc.request("POST", "/api/jifenbao/claim", session=session)
        answers.append((status, body))

    worker = threading.Thread(target=claim)
    worker.start()
    time.sleep(0.3)  # the claim is at the platform now
    svc.proc.send_signal(signal.SIGTERM)
    assert svc.proc.wait(timeout=10) == 0
    worker.join(timeout=5)
    assert answers and answers[0][0] == 200 and answers[0][1]["result"] == "granted"
    with sqlite3.connect(svc.db) as db:
        assert db.execute("SELECT status FROM grants").fetchall() == [("granted",)]
    with pytest.raises(OSError):
        http("GET", svc.url + "/healthz", timeout=2)  # no longer listening
    assert "Traceback" not in svc.stderr()


def test_sigint_stops_an_idle_service(start_service: StartService, mock: Mock) -> None:
    svc = start_service(mock)
    started = time.monotonic()
    svc.proc.send_signal(signal.SIGINT)
    assert svc.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 3
