"""`python -m mock_platform` as a subprocess: ready line, token, clean stop, config errors."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mock_platform.cli import build_parser, config_from_args, main

READY = re.compile(r"^mock_platform listening on (http://127\.0\.0\.1:\d+)$")
TOKEN = re.compile(r"^mock_platform admin token: (\S+)$")
START_TIMEOUT_S = 20.0


def run_cli(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mock_platform", *args], capture_output=True, text=True, timeout=timeout
    )


@contextmanager
def started(*args: str) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """The mock started with `args` on port 0: (process, url, admin token); always stopped."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mock_platform", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        url = token = None
        while (url is None or token is None) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if m := READY.match(line.rstrip("\n")):
                url = m.group(1)
            elif m := TOKEN.match(line.rstrip("\n")):
                token = m.group(1)
        assert url and token, (
            f"no ready line; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        )
        yield proc, url, token
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"X-Admin-Token": token})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_starts_serves_and_stops_cleanly(sig) -> None:
    with started("--admin-token", "tok-1") as (proc, url, token):
        assert token == "tok-1"
        assert get(url + "/admin/health", token)["status"] == "ok"
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read().strip() == "mock_platform stopped"
        assert "Traceback" not in proc.stderr.read()


def test_generated_token_works_and_config_seed_and_switches(tmp_path: Path) -> None:
    config = tmp_path / "mock.yaml"
    config.write_text(
        "seed:\n  point_budgets:\n    - {budget_code: JFB1, total_amount: 1000}\n"
        "limits: {max_body_bytes: 2048}\n",
        encoding="utf-8",
    )
    with started("--config", str(config), "--strict", "--profile", "production") as (proc, url, token):
        assert len(token) >= 20
        health = get(url + "/admin/health", token)
        assert health["strict"] is True and health["profile"] == "production"
        assert get(url + "/admin/audit", token)["totals"]["points"]["JFB1"] == {"budget": 1000, "sent": 0}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_timeouts_come_from_the_file_and_the_flags_win(tmp_path: Path) -> None:
    config = tmp_path / "mock.yaml"
    config.write_text("limits: {head_timeout_s: 5, body_timeout_s: 6.5, keepalive_timeout_s: 7}\n")
    args = build_parser().parse_args(["--config", str(config), "--body-timeout", "2"])
    got = config_from_args(args)
    assert (got.head_timeout_s, got.body_timeout_s, got.keepalive_timeout_s) == (5.0, 2.0, 7.0)
    default = config_from_args(build_parser().parse_args([]))
    assert (default.head_timeout_s, default.body_timeout_s, default.keepalive_timeout_s) == (
        60.0,
        60.0,
        3630.0,
    )


@pytest.mark.parametrize(
    ("content", "suffix", "expected"),
    [
        ("seed:\n  activities:\n    - {activity_id: A}\n", ".yaml", "seed.activities[0]"),
        ("bogus: 1\n", ".yaml", "unknown key 'bogus'"),
        ("faults:\n  '*':\n    latency: {dist: nope}\n", ".yaml", "faults"),
        ("limits: {max_body_bytes: 1}\n", ".yaml", "limits.max_body_bytes"),
        ("limits: {head_timeout_s: 0}\n", ".yaml", "limits.head_timeout_s"),
        ("limits: {body_timeout_s: yes}\n", ".yaml", "limits.body_timeout_s"),
        ("limits: {keepalive_timeout_s: 1e9}\n", ".yaml", "limits.keepalive_timeout_s"),
        ("limits: {read_timeout_s: 5}\n", ".yaml", "limits.read_timeout_s: unknown key"),
        ("codes: {sold_out: 5}\n", ".yaml", "codes.sold_out"),
        ("seed: [unclosed\n", ".yaml", "not valid YAML"),
        ('{"seed": ', ".json", "not valid JSON"),
        ("- 1\n", ".yaml", "top level must be a mapping"),
    ],
)
def test_bad_config_exits_3_naming_the_key(
    tmp_path: Path, capsys, content: str, suffix: str, expected: str
) -> None:
    config = tmp_path / f"bad{suffix}"
    config.write_text(content, encoding="utf-8")
    assert main(["--config", str(config), "--port", "0"]) == 3
    out, err = capsys.readouterr()
    assert expected in err
    assert str(config) in err
    assert out == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--config", "/nonexistent/mock.yaml"), "cannot read"),
        (("--profile", "no-such-profile"), "no-such-profile"),
        (("--port", "99999"), "port must be 0-65535"),
        (("--head-timeout", "0"), "--head-timeout"),
        (("--keepalive-timeout", "soon"), "--keepalive-timeout"),
        (("--bogus",), "unrecognized arguments"),
    ],
)
def test_usage_errors_exit_3(capsys, args: tuple[str, ...], expected: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(list(args)))
    assert exit_info.value.code == 3
    assert expected in capsys.readouterr().err


def test_bad_config_from_the_real_entry_point_has_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("bogus: 1\n", encoding="utf-8")
    result = run_cli("--config", str(config))
    assert result.returncode == 3
    assert "unknown key 'bogus'" in result.stderr and "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error() -> None:
    with started() as (_, url, _token):
        port = url.rsplit(":", 1)[1]
        result = run_cli("--port", port)
        assert result.returncode == 1
        assert "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_sigterm_does_not_wait_for_a_hung_request(tmp_path: Path) -> None:
    config = tmp_path / "hang.yaml"
    config.write_text("faults:\n  alipay.user.info.share: {outage: {mode: hang}}\n", encoding="utf-8")
    outcome: list[str] = []

    def hang(url: str) -> None:
        req = urllib.request.Request(url + "/gateway.do", data=b"method=alipay.user.info.share&app_id=1")
        try:
            urllib.request.urlopen(req, timeout=20).read()
            outcome.append("answered")
        except OSError as exc:  # http.client's RemoteDisconnected is one
            outcome.append(type(exc).__name__)

    with started("--config", str(config)) as (proc, url, _token):
        client = threading.Thread(target=hang, args=(url,))
        client.start()
        time.sleep(0.5)
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - stopping < 5.0
        client.join(timeout=10)
    assert outcome and outcome[0] != "answered"
