"""junit.xml: one test case per check, so CI systems list each budget as a passing or failing test.

Scheme (chosen because Jenkins, GitLab and GitHub test-report actions all show `<failure>` with its
message, while `<skipped>` would read as "fine, not run" beside a red exit code):
- a check that holds is a plain `<testcase>`;
- a failing check whose effect is fail (a budget the target missed, integrity) is `<failure type="fail">`;
- a failing check whose effect is inconclusive (generator health; a latency or QPS budget missed
  while the generator was the limit) is `<failure type="inconclusive">` whose message starts with
  "inconclusive:" (the target was not judged unfit, but the run cannot vouch for it).
The verdict, exit code and plan are `<properties>` of the suite; the reasons go to `<system-out>`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from loadkit.reports.markdown import effect_of, measure

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: Any) -> str:
    return _INVALID_XML.sub("?", str(value))


def _seconds(summary: Mapping[str, Any]) -> str:
    seconds = (summary.get("window") or {}).get("seconds")
    ok = isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0
    return f"{seconds:.3f}" if ok else "0"


def render_junit(summary: Mapping[str, Any]) -> str:
    plan = summary.get("plan") or {}
    suite_name = f"loadkit.{plan.get('name') or 'plan'}"
    checks = list(summary.get("checks") or [])
    failures = sum(1 for c in checks if not c.get("ok"))
    time = _seconds(summary)
    counts = {
        "tests": str(len(checks)),
        "failures": str(failures),
        "errors": "0",
        "skipped": "0",
        "time": time,
    }
    root = ET.Element("testsuites", {"name": "loadkit", **counts})
    attrs = {"name": _text(suite_name), **counts}
    if summary.get("started_at"):
        attrs["timestamp"] = _text(summary["started_at"])
    suite = ET.SubElement(root, "testsuite", attrs)
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("verdict", summary.get("verdict")),
        ("exit_code", summary.get("exit_code")),
        ("plan_file", plan.get("file")),
        ("host", plan.get("host")),
        ("finished_at", summary.get("finished_at")),
    ):
        if value is not None:
            ET.SubElement(props, "property", {"name": key, "value": _text(value)})
    for check in checks:
        case = ET.SubElement(
            suite, "testcase", {"classname": _text(suite_name), "name": _text(check.get("name")), "time": "0"}
        )
        if check.get("ok"):
            continue
        unit = check.get("unit")
        figures = (
            f"observed {measure(check.get('observed'), unit)}, limit {measure(check.get('limit'), unit)}"
        )
        inconclusive = effect_of(check) == "inconclusive"
        prefix = "inconclusive: " if inconclusive else ""
        message = f"{prefix}{check.get('reason') or check.get('name')} ({figures})"
        failure = ET.SubElement(
            case, "failure", {"message": _text(message), "type": "inconclusive" if inconclusive else "fail"}
        )
        failure.text = _text(message)
    reasons = summary.get("reasons") or []
    out = ET.SubElement(suite, "system-out")
    out.text = _text("\n".join([f"verdict: {summary.get('verdict')}", *reasons]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
