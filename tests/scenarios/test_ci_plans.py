"""Every shipped `-ci` plan, run for real: `loadkit run PLAN --with-mock --headless`, judged clean
(pass, audit ok, reconciliation ok); and the same machinery failing runs when the mock is broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.summary_schema import schema_errors

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PLANS = ROOT / "scenarios" / "plans"
CI_PLANS = sorted(p.name for p in PLANS.glob("*-ci.yaml"))


def loadkit_run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "loadkit", "run", *args, "--headless"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def summary_of(report: Path, code: int, output: str) -> dict:
    """The run's summary.json, valid against the shipped schema; without one, a failure that
    shows loadkit's exit code and its own output."""
    try:
        summary = json.loads((report / "summary.json").read_text())
    except (OSError, ValueError) as exc:
        pytest.fail(f"no readable summary.json in {report} ({exc}); loadkit exited {code}:\n{output[-4000:]}")
    assert schema_errors(summary) == [], "summary.json breaks docs/summary.schema.json"
    return summary


def test_every_scenario_has_a_ci_plan():
    assert {p.split("-ci")[0] for p in CI_PLANS} == {
        "jifenbao",
        "flash_sale",
        "follow_gift",
        "red_envelope_rain",
        "event_mixed",
        "wechat_share_coupon",
    }


@pytest.mark.parametrize("plan", CI_PLANS)
def test_ci_plan_passes_against_the_mock(plan: str, tmp_path: Path):
    report = tmp_path / "report"
    code, output = loadkit_run(str(PLANS / plan), "--with-mock", "--report-dir", str(report), cwd=tmp_path)
    summary = summary_of(report, code, output)
    assert summary["audit"]["ok"] is True, summary["audit"]
    assert summary["reconciliation"]["ok"] is True, summary["reconciliation"]
    assert (code, summary["verdict"]) == (0, "pass"), (summary["reasons"], output[-3000:])
    if plan.startswith("flash_sale"):
        stock = summary["audit"]["totals"]["vouchers"]["FLASH-SALE"]
        assert stock["issued"] == stock["stock"], stock  # sold out exactly, never oversold
        assert summary["outcomes"], "latecomers must have met the sold-out outcome"
    if plan.startswith("jifenbao"):
        assert summary["endpoints"]["points.send"]["qps_held"] >= 200
    if plan.startswith("wechat_share_coupon"):  # three tiers: the service's records and the ledger agree
        recon = summary["reconciliation"]
        issued = summary["audit"]["totals"]["wechat_coupons"]["9856000"]["issued"]
        assert recon["mode"] == "three-way", recon
        assert recon["told"] == recon["records"] == recon["effects"] == issued, recon
        assert issued > 100 and summary["service"]["ok"], recon
        assert summary["outcomes"].get("limit_reached", 0) > 0  # friends who already held the coupon


def test_injected_errors_fail_the_run_with_the_reason(tmp_path: Path):
    config = tmp_path / "mock.yaml"
    config.write_text(
        yaml.safe_dump(
            {"faults": {"*": {"error": {"rate": 0.05, "code": "20000", "sub_code": "isp.unknow-error"}}}}
        )
    )
    report = tmp_path / "report"
    code, output = loadkit_run(
        str(PLANS / "jifenbao-ci.yaml"),
        "--with-mock",
        "--mock-config",
        str(config),
        "--report-dir",
        str(report),
        cwd=tmp_path,
    )
    summary = summary_of(report, code, output)
    assert code == 1 and summary["verdict"] == "fail", output[-3000:]
    assert 0.02 < summary["error_rate"] < 0.10
    assert any("error" in reason.lower() for reason in summary["reasons"]), summary["reasons"]
    assert any("isp.unknow-error" in e["error"] for e in summary["errors"]), summary["errors"]


def _admin(url: str, token: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"X-Admin-Token": token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_an_oversold_stock_fails_the_run(tmp_path: Path):
    token = "test-token"
    mock = subprocess.Popen(
        [sys.executable, "-m", "mock_platform", "--port", "0", "--admin-token", token, "--debug-hooks"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    forced: list[str] = []
    try:
        assert mock.stdout is not None
        url = ""
        deadline = time.monotonic() + 20
        while not url and time.monotonic() < deadline:
            line = mock.stdout.readline()
            if "listening on " in line:
                url = line.split("listening on ", 1)[1].strip()
        assert url, "mock did not start"
        threading.Thread(target=lambda: [None for _ in mock.stdout], daemon=True).start()

        def oversell() -> None:  # once the run has sold the stock out, issue one voucher past every check
            end = time.monotonic() + 60
            while time.monotonic() < end:
                stock = _admin(url, token, "/admin/audit")["totals"].get("vouchers", {}).get("FLASH-SALE")
                if stock and stock["issued"] >= stock["stock"]:  # sold out: one more is an oversell
                    forced.append(
                        _admin(
                            url,
                            token,
                            "/admin/debug/force_issue",
                            {"activity_id": "FLASH-SALE", "user_id": "2088999999999999"},
                        )["voucher_id"]
                    )
                    return
                time.sleep(0.2)

        helper = threading.Thread(target=oversell, daemon=True)
        helper.start()
        env = {**os.environ, "LOADKIT_MOCK_ADMIN_TOKEN": token, "LOADKIT_MOCK_URL": url}
        report = tmp_path / "report"
        code, output = loadkit_run(
            str(PLANS / "flash_sale-ci.yaml"),
            "--host",
            url,
            "--report-dir",
            str(report),
            cwd=tmp_path,
            env=env,
        )
        helper.join(timeout=5)
    finally:
        mock.terminate()
        try:
            mock.wait(timeout=10)
        except subprocess.TimeoutExpired:
            mock.kill()
    assert forced, "the test hook never ran"
    summary = summary_of(report, code, output)
    assert code == 1 and summary["verdict"] == "fail", output[-3000:]
    assert summary["audit"]["ok"] is False
    assert any("FLASH-SALE" in v for v in summary["audit"]["violations"]), summary["audit"]
