"""junit.xml: valid XML, one test case per check, failures typed fail / inconclusive."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from loadkit.measure.summary import build_summary
from loadkit.plan import parse_plan
from loadkit.reports.junit import render_junit
from tests.loadkit.generator_figures import generator

PLAN = parse_plan(
    {
        "name": "flash<sale>&co",
        "stages": [{"name": "hold", "duration": "60s", "qps": 200, "gate": True}],
        "budgets": {"qps_min": 200, "latency_ms": {"p95": 250, "p99": 500}, "error_rate_max": 0.001},
    },
    source="plans/flash.yaml",
)


def summary(**res):
    base = {
        "qps": {"target": 200.0, "held": 142.3},
        "latency_ms": {"p95": 120.0, "p99": 300.0},
        "error_rate": 0.0,
        "requests": {"count": 8538},
        "arrivals": {"scheduled": 12000, "sent": 11000, "late": 200, "dropped": 1000},
        "generator": generator(late={"generator": 1200, "users": 0, "target": 0}),
        "host": "http://127.0.0.1:8080",
    }
    base.update(res)
    host = base.pop("host")
    return build_summary(PLAN, base, started_at=1795507200.0, finished_at=1795507260.0, host=host)


def parse(doc):
    xml = render_junit(doc)
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(xml.split("\n", 1)[1])
    suites = root.findall("testsuite")
    assert root.tag == "testsuites" and len(suites) == 1
    return root, suites[0]


def test_one_testcase_per_check_with_counts():
    doc = summary()
    root, suite = parse(doc)
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c["name"] for c in doc["checks"]]
    assert suite.get("name") == "loadkit.flash<sale>&co"  # escaped on the way out, intact on the way in
    assert all(c.get("classname") == "loadkit.flash<sale>&co" for c in cases)
    failed = [c for c in doc["checks"] if not c["ok"]]
    assert suite.get("tests") == str(len(doc["checks"])) == root.get("tests")
    assert suite.get("failures") == str(len(failed)) == root.get("failures")
    assert suite.get("errors") == "0" and suite.get("time") == "60.000"
    assert suite.get("timestamp") == "2026-11-24T08:00:00+00:00"


def test_failures_carry_observed_vs_limit_and_their_type():
    doc = summary(error_rate=0.01)
    assert doc["verdict"] == "fail"
    _, suite = parse(doc)
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    errors = cases["error_rate_max"].find("failure")
    assert errors is not None and errors.get("type") == "fail"
    assert "observed 1.00%, limit 0.10%" in errors.get("message")
    # the generator was the limit: the QPS budget it missed is doubtful, not failed
    qps = cases["qps_min"].find("failure")
    assert qps is not None and qps.get("type") == "inconclusive"
    assert "Held 142.3 QPS, below the 200 QPS budget" in qps.get("message")
    assert "observed 142.3 req/s, limit 200 req/s" in qps.get("message")
    late = cases["arrivals_late_by_generator"].find("failure")
    assert late is not None and late.get("type") == "inconclusive"
    assert late.get("message").startswith("inconclusive: ")
    assert "limit 1.00%" in late.get("message")
    assert cases["latency_p99"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert (
        props["verdict"] == "fail" and props["exit_code"] == "1" and props["host"] == "http://127.0.0.1:8080"
    )
    out = suite.find("system-out").text
    assert "verdict: fail" in out and "Held 142.3 QPS" in out


def test_a_passing_run_has_no_failures():
    doc = summary(
        qps={"target": 200.0, "held": 201.0},
        arrivals={"scheduled": 100, "sent": 100, "late": 0},
        generator=generator(),
    )
    assert doc["verdict"] == "pass"
    _, suite = parse(doc)
    assert suite.get("failures") == "0" and not suite.findall(".//failure")


def test_control_characters_and_missing_fields_still_give_valid_xml():
    doc = {
        "plan": {},
        "checks": [{"name": "x\x01y", "ok": False, "reason": "bad\x07 byte"}],
        "reasons": ["\x00"],
    }
    _, suite = parse(doc)
    case = suite.find("testcase")
    assert case.get("name") == "x?y"
    assert case.find("failure").get("type") == "fail"
    assert suite.get("time") == "0"
