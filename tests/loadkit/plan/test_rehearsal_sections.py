"""The three-tier sections of a plan: service, drills, reconcile, budgets.recovery_s."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from loadkit.plan import PlanError, parse_plan
from loadkit.plan.model import DEFAULT_RECOVERY_S


def base() -> dict[str, Any]:
    return {
        "name": "t",
        "stages": [
            {"name": "warmup", "duration": "10s", "qps": 10},
            {"name": "hold", "duration": "50s", "qps": 30, "gate": True},
        ],
        "budgets": {"qps_min": 25, "recovery_s": 12},
        "service": {
            "command": ["{python}", "-m", "campaign_service", "--port", "{port}"],
            "env": {
                "CAMPAIGN_GATEWAY_URL": "{mock_url}/gateway.do",
                "CAMPAIGN_ADMIN_TOKEN": "{service_token}",
            },
            "ready": "http://127.0.0.1:{port}/healthz",
            "records": "http://127.0.0.1:{port}/admin/grants",
            "records_token_env": "CAMPAIGN_ADMIN_TOKEN",
            "app_id": 2021000000000001,
        },
        "drills": [
            {"name": "slow", "at": "20s", "for": "10s", "faults": {"*": {"latency": {"scale": 3}}}},
            {
                "name": "outage",
                "at": "40s",
                "for": "5s",
                "faults": {"*": {"outage": {"mode": "error"}}},
                "recovery_s": 4,
            },
        ],
        "reconcile": {"per_user_limit": {"alipay.user.alipaypoint.send": 1, "FLASH-SALE": 2}},
    }


def test_sections_load():
    plan = parse_plan(base())
    service = plan.service
    assert service is not None
    assert service.command == ("{python}", "-m", "campaign_service", "--port", "{port}")
    assert service.host == "http://127.0.0.1:{port}"  # the origin of `ready`
    assert service.app_id == "2021000000000001"  # an unquoted YAML number becomes the string
    assert (service.ready_timeout_s, service.stop_timeout_s, service.settle_timeout_s) == (30, 10, 15)
    assert service.records_token_env == "CAMPAIGN_ADMIN_TOKEN"
    slow, outage = plan.drills
    assert (slow.name, slow.at_s, slow.for_s, slow.recovery_s) == ("slow", 20, 10, None)
    assert plan.recovery_s(slow) == 12 and plan.recovery_s(outage) == 4
    assert plan.reconcile is not None and plan.reconcile.per_user_limit["FLASH-SALE"] == 2


def test_defaults_without_the_sections():
    plan = parse_plan({"name": "t", "stages": [{"duration": "5s", "qps": 1}]})
    assert plan.service is None and plan.drills == () and plan.reconcile is None
    drill_plan = base()
    del drill_plan["budgets"]["recovery_s"]
    assert parse_plan(drill_plan).recovery_s(parse_plan(drill_plan).drills[0]) == DEFAULT_RECOVERY_S


def test_command_as_a_string_is_split():
    doc = base()
    doc["service"]["command"] = "{python} -m campaign_service --port '{port}'"
    assert parse_plan(doc).service.command[-1] == "{port}"


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (
            lambda d: d["service"].update(ready="http://127.0.0.1:{prot}/healthz"),
            "service.ready",
            "did you mean {port}",
        ),
        (lambda d: d["service"]["env"].update(X="{mock}"), "service.env.X", "unknown placeholder {mock}"),
        (lambda d: d["service"]["command"].append("{port:d}"), "service.command", "unknown placeholder"),
        (lambda d: d["service"]["command"].append("{port"), "service.command", "placeholders"),
        (lambda d: d["service"].update(ready="127.0.0.1:{port}"), "service.ready", "http://"),
        (lambda d: d["service"].update(comand=["x"]), "service.comand", "did you mean 'command'"),
        (lambda d: d["service"].update(command=[]), "service.command", "expected"),
        (lambda d: d["service"].update(records_token_env="NOPE"), "service.records_token_env", "service.env"),
        (lambda d: d["service"].update(stop_timeout="soon"), "service.stop_timeout", "duration"),
        (lambda d: d["service"].pop("ready"), "service.ready", "required"),
        (lambda d: d["drills"][0].update(at="2m"), "drills[0].at", "before the plan's end"),
        (lambda d: d["drills"][0].update(name="a b"), "drills[0].name", "letters"),
        (lambda d: d["drills"][1].update(name="slow"), "drills[1].name", "unique"),
        (
            lambda d: d["drills"][0].update(faults={"*": {"latncy": {}}}),
            "drills[0].faults.*.latncy",
            "did you mean 'latency'",
        ),
        (lambda d: d["drills"][0].update(faults={}), "drills[0].faults", "expected"),
        (lambda d: d["drills"][0].update(fro="1s"), "drills[0].fro", "did you mean 'for'"),
        (lambda d: d["drills"][0].update(recovery_s=0), "drills[0].recovery_s", "> 0"),
        (lambda d: d["budgets"].update(recovery_s=-1), "budgets.recovery_s", "> 0"),
        (
            lambda d: d["reconcile"]["per_user_limit"].update(X=0),
            "reconcile.per_user_limit.X",
            "whole number",
        ),
        (lambda d: d["reconcile"].update(per_user=1), "reconcile.per_user", "did you mean 'per_user_limit'"),
        (lambda d: d.update(drill=[]), "drill", "did you mean 'drills'"),
    ],
)
def test_mistakes_name_the_key(change, key, words):
    doc = copy.deepcopy(base())
    change(doc)
    with pytest.raises(PlanError) as err:
        parse_plan(doc, source="p.yaml")
    assert err.value.key == key, str(err.value)
    assert words in str(err.value)
    assert str(err.value).startswith("p.yaml: ")


def test_validate_shows_the_sections(tmp_path, capsys):
    import yaml

    from loadkit.cli import main

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(base()))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "service: {python} -m campaign_service --port {port}" in out
    assert "drill slow: 20s + 10s" in out and "recovery within 12 s" in out
    assert "drill outage" in out and "recovery within 4 s" in out
    assert "alipay.user.alipaypoint.send ≤ 1" in out


def test_wechat_placeholders_and_the_merchant_id():
    doc = base()
    assert parse_plan(doc).service.uses_wechat is False
    assert parse_plan(doc).service.wx_mchid == "1900000001"
    doc["service"]["env"]["CAMPAIGN_WX_PUBLIC_KEY_ID"] = "{wx_public_key_id}"
    doc["service"]["wx_mchid"] = 1900000002  # YAML reads it as a number
    service = parse_plan(doc).service
    assert service.uses_wechat and service.wx_mchid == "1900000002"
    assert "wx_public_key_id" in service.placeholders and "port" in service.placeholders
    doc["service"]["wx_mchid"] = "19-00"
    with pytest.raises(PlanError, match=r"service\.wx_mchid"):
        parse_plan(doc)
    doc = base()
    doc["service"]["env"]["X"] = "{wx_private_key}"
    with pytest.raises(PlanError, match=r"did you mean \{wx_private_key_file\}"):
        parse_plan(doc)
