"""The three-tier rehearsal with WeChat: loadkit registers a WeChat Pay merchant for the service
from the plan's `{wx_...}` placeholders, and the WeChat books (told out_request_nos, the service's
coupon records, the mock's wechat.coupon.send effects) are reconciled like Alipay's: a planted
bug that renumbers a retried send is caught as paid twice."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.loadkit.e2e.conftest import run_loadkit, write_plan  # noqa: F401  (fixture)
from tests.summary_schema import schema_errors

from .conftest import processes_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"


def wechat_plan(**service_env: str) -> dict:
    """The shipped -ci plan, self-contained (locustfile and seed inlined) and shortened."""
    plan = yaml.safe_load((SCENARIOS / "plans" / "wechat_share_coupon-ci.yaml").read_text())
    plan["locustfile"] = str(SCENARIOS / "wechat_share_coupon.py")
    plan["mock"]["seed"] = yaml.safe_load((SCENARIOS / "seeds" / "wechat_share_coupon.yaml").read_text())
    plan["service"]["env"].update(service_env)
    plan["stages"] = [
        {"name": "warmup", "duration": "2s", "qps": 8, "users": 80},
        {"name": "hold", "duration": "7s", "qps": 8, "users": 80, "gate": True},
    ]
    return plan


def test_a_renumbered_wechat_retry_is_caught_as_paid_twice(tmp_path, run_loadkit):  # noqa: F811
    plan = wechat_plan(CAMPAIGN_PLATFORM_TIMEOUT_S="0.3", CAMPAIGN_REQUEST_DEADLINE_S="1.5")
    plan["service"]["command"] += ["--bug", "new-biz-no-on-retry"]
    # the stock lets a user hold two coupons, so the renumbered retry is a second coupon (with one,
    # the platform's RULE_LIMIT would refuse it and the first send would be the orphan)
    plan["mock"]["seed"]["wechat"]["stocks"][0]["max_coupons_per_user"] = 2
    plan["drills"] = [
        {
            "name": "slow-wechat-pay",
            "at": "3s",
            "for": "3s",
            "recovery_s": 5,
            "faults": {"wechat.coupon.send": {"latency": {"dist": "constant", "ms": 600}}},
        }
    ]
    result = run_loadkit("run", str(write_plan(tmp_path, plan)), "--with-mock", "--headless", timeout=120)
    summary = result.summary
    assert not processes_of(result.report_dir), result.output
    assert schema_errors(summary) == [], result.output
    assert result.code == 1, result.output
    recon = summary["reconciliation"]
    assert recon["mode"] == "three-way" and not recon["ok"], recon
    assert recon["paid_twice"]["count"] > 0 and recon["over_limit"]["count"] > 0, recon
    doubled = recon["paid_twice"]["first"][0]
    assert doubled.startswith("1900000001"), recon  # an out_request_no: the mchid, date, serial
    assert any(doubled in reason for reason in summary["reasons"]), summary["reasons"]
    assert summary["audit"]["ok"], summary["audit"]  # within the stock's rules: only the books show it
