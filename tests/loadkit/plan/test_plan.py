"""Event plans: the DESIGN.md example loads, derived figures are exact, and every mistake is
reported with the file, the key path and what was expected."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from loadkit.plan import LatencyBudget, PlanError, load_plan, parse_plan

DESIGN_EXAMPLE = """\
name: jifenbao-channel
locustfile: scenarios/jifenbao.py
host: http://127.0.0.1:8080          # --host overrides
stages:                               # open model: arrivals per second, not users
  - {name: warmup, duration: 30s, qps: 50}
  - {name: ramp,   duration: 60s, qps: [50, 240]}
  - {name: hold,   duration: 10m, qps: 240, gate: true}
budgets:                              # judged on the gate stages only
  qps_min: 200
  latency_ms: {p50: 80, p95: 250, p99: 500}
  error_rate_max: 0.001
  endpoints:
    points.send: {latency_ms: {p99: 400}}
safety:
  allow_hosts: [127.0.0.1, localhost]
  max_qps: 2000
  abort_on: {error_rate: 0.2, for: 30s}
"""


def base() -> dict[str, Any]:
    return {
        "name": "t",
        "stages": [
            {"name": "warmup", "duration": "10s", "qps": 10},
            {"name": "ramp", "duration": "10s", "qps": [10, 30]},
            {"name": "hold", "duration": "20s", "qps": 30, "gate": True},
        ],
        "budgets": {"qps_min": 25, "latency_ms": {"p99": 200}, "error_rate_max": 0.01},
    }


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_design_example_loads(tmp_path):
    path = write(tmp_path, DESIGN_EXAMPLE)
    plan = load_plan(path)
    assert plan.name == "jifenbao-channel"
    assert plan.locustfile == tmp_path / "scenarios" / "jifenbao.py"
    assert plan.host == "http://127.0.0.1:8080"
    assert [s.name for s in plan.stages] == ["warmup", "ramp", "hold"]
    assert (plan.stages[1].qps_from, plan.stages[1].qps_to) == (50.0, 240.0)
    assert plan.stages[2].duration_s == 600.0 and plan.stages[2].gate
    assert plan.duration_s == 690.0
    assert plan.budgets.qps_min == 200
    assert plan.budgets.latency_ms == LatencyBudget(p50=80, p95=250, p99=500)
    assert plan.budgets.error_rate_max == 0.001
    assert plan.budgets.endpoints["points.send"].latency_ms.p99 == 400
    assert plan.budgets.endpoints["points.send"].qps_min is None
    assert plan.safety.allow_hosts == ("127.0.0.1", "localhost")
    assert plan.safety.max_qps == 2000
    assert plan.safety.abort_on is not None
    assert (plan.safety.abort_on.error_rate, plan.safety.abort_on.for_s) == (0.2, 30.0)
    assert plan.arrivals == "constant"
    assert plan.mock is None
    assert plan.source == path
    assert plan.raw["stages"][0]["duration"] == "30s"
    assert plan.gate_stages() == [2] and plan.gate_seconds() == 600.0
    assert plan.peak_qps() == 240.0


def test_defaults_of_a_minimal_plan():
    plan = parse_plan({"name": "m", "stages": [{"duration": 5, "qps": 3}]})
    assert plan.stages[0].name == "stage1"
    assert plan.locustfile is None and plan.host is None and plan.mock is None
    assert plan.budgets.qps_min is None and plan.budgets.latency_ms.items() == []
    assert plan.budgets.endpoints == {}
    assert plan.safety.allow_hosts is None and plan.safety.max_qps is None and plan.safety.abort_on is None
    assert plan.source is None


def test_without_gate_the_last_stage_is_judged():
    data = base()
    del data["stages"][2]["gate"]
    plan = parse_plan(data)
    assert plan.gate_stages() == [2]
    assert plan.gate_seconds() == 20.0


def test_several_consecutive_gates():
    data = base()
    data["stages"][1]["gate"] = True
    plan = parse_plan(data)
    assert plan.gate_stages() == [1, 2]
    assert plan.gate_seconds() == 30.0


def test_stage_at_and_starts():
    plan = parse_plan(base())
    assert [plan.stage_start(i) for i in range(3)] == [0.0, 10.0, 20.0]
    assert plan.stage_at(-0.1) is None
    assert plan.stage_at(0)[0] == 0
    assert plan.stage_at(9.999)[0] == 0
    assert plan.stage_at(10)[0] == 1
    assert plan.stage_at(39.99)[1].name == "hold"
    assert plan.stage_at(40) is None


def test_qps_at_ramps_linearly():
    plan = parse_plan(base())
    assert plan.qps_at(5) == 10
    assert plan.qps_at(10) == 10
    assert plan.qps_at(15) == pytest.approx(20)
    assert plan.qps_at(17.5) == pytest.approx(25)
    assert plan.qps_at(25) == 30
    assert plan.qps_at(40) == 0 and plan.qps_at(-1) == 0


def test_ramp_down():
    plan = parse_plan({"name": "d", "stages": [{"duration": "4s", "qps": [100, 0]}]})
    assert plan.qps_at(1) == pytest.approx(75)
    assert plan.arrivals_between(0, 4) == pytest.approx(200)
    assert plan.arrivals_between(2, 4) == pytest.approx(50)


@pytest.mark.parametrize(
    ("t0", "t1", "expected"),
    [
        (0, 10, 100.0),  # constant 10 qps
        (10, 20, 200.0),  # ramp 10 -> 30: mean 20
        (10, 15, 75.0),  # first half of the ramp: 10 -> 20
        (15, 20, 125.0),  # second half: 20 -> 30
        (20, 40, 600.0),
        (0, 40, 900.0),
        (5, 25, 50 + 200 + 150),  # across three stages
        (-100, 1000, 900.0),  # clipped to the plan
        (12.5, 12.5, 0.0),
        (30, 20, 0.0),
        (40, 50, 0.0),
    ],
)
def test_arrivals_between_is_the_exact_integral(t0, t1, expected):
    plan = parse_plan(base())
    assert plan.arrivals_between(t0, t1) == pytest.approx(expected)


def test_arrivals_between_matches_a_fine_riemann_sum():
    plan = parse_plan(base())
    step = 0.001
    riemann = sum(plan.qps_at(7 + (i + 0.5) * step) for i in range(int(26 / step))) * step
    assert plan.arrivals_between(7, 33) == pytest.approx(riemann, rel=1e-6)


def test_users_for_explicit_and_derived():
    data = base()
    data["stages"][0]["users"] = 7
    plan = parse_plan(data)
    assert plan.users_for(0) == 7
    # 30 qps x 0.2 s p99 budget x 2 + 2
    assert plan.users_for(2) == 14
    # the ramp's peak (30) sizes it
    assert plan.users_for(1) == 14


def test_users_for_without_p99_budget_uses_half_a_second():
    plan = parse_plan({"name": "u", "stages": [{"duration": 1, "qps": 100}]})
    assert plan.users_for(0) == 102


def test_users_for_floors_latency_and_has_spare_users():
    data = {"name": "u", "stages": [{"duration": 1, "qps": 0}, {"duration": 1, "qps": 10}]}
    data["budgets"] = {"latency_ms": {"p99": 5}}
    plan = parse_plan(data)
    assert plan.users_for(0) == 2  # zero rate still has a pool
    assert plan.users_for(1) == 4  # 10 x max(0.005, 0.1) x 2 + 2


def test_poisson_arrivals_and_https_host():
    data = base() | {"arrivals": "poisson", "host": "https://localhost:8443/"}
    plan = parse_plan(data)
    assert plan.arrivals == "poisson"
    assert plan.host == "https://localhost:8443"


def test_worker_subset_of_a_plan_parses():
    """The master ships name/stages/arrivals/budgets of `raw` to workers, who parse them again."""
    plan = parse_plan(base() | {"safety": {"max_qps": 100}, "host": "http://127.0.0.1:1"})
    subset = {k: plan.raw[k] for k in ("name", "stages", "arrivals", "budgets") if k in plan.raw}
    again = parse_plan(json.loads(json.dumps(subset)))
    assert again.stages == plan.stages and again.budgets == plan.budgets


def _mutate(path: str, value: Any) -> dict[str, Any]:
    """base() with the value at a dotted path (list indices as numbers) set, or deleted if ...."""
    data = copy.deepcopy(base())
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    node: Any = data
    for k in keys[:-1]:
        node = node.setdefault(k, {}) if isinstance(node, dict) else node[k]
    if value is ...:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "key", "fragment"),
    [
        ("name", ..., "name", "required"),
        ("name", "", "name", "non-empty string"),
        ("name", 5, "name", "non-empty string"),
        ("stages", ..., "stages", "required"),
        ("stages", [], "stages", "non-empty list"),
        ("stages", {"a": 1}, "stages", "non-empty list"),
        ("stages.0", "warmup", "stages[0]", "a mapping"),
        ("stages.2.qps", "fast", "stages[2].qps", "expected a number ≥ 0 or [from, to]"),
        ("stages.2.qps", -1, "stages[2].qps", "≥ 0"),
        ("stages.2.qps", [1, 2, 3], "stages[2].qps", "[from, to]"),
        ("stages.1.qps", [10, "x"], "stages[1].qps", "[from, to]"),
        ("stages.2.qps", True, "stages[2].qps", "number"),
        ("stages.2.qps", ..., "stages[2].qps", "required"),
        ("stages.0.duration", ..., "stages[0].duration", "required"),
        ("stages.0.duration", "10 parsecs", "stages[0].duration", "units"),
        ("stages.0.duration", "0s", "stages[0].duration", "> 0"),
        ("stages.0.duration", "-5s", "stages[0].duration", "≥ 0"),
        ("stages.0.users", 0, "stages[0].users", "whole number ≥ 1"),
        ("stages.0.users", 2.5, "stages[0].users", "whole number"),
        ("stages.0.gate", "yes please", "stages[0].gate", "true or false"),
        ("stages.1.name", "warmup", "stages[1].name", "unique"),
        ("stages.0.name", None, "stages[0].name", "non-empty string"),
        ("budgets", [1], "budgets", "mapping"),
        ("budgets.qps_min", "lots", "budgets.qps_min", "number ≥ 0"),
        ("budgets.qps_min", -5, "budgets.qps_min", "number ≥ 0"),
        ("budgets.latency_ms.p99", 0, "budgets.latency_ms.p99", "number > 0"),
        ("budgets.latency_ms.p99", "500ms", "budgets.latency_ms.p99", "number > 0"),
        ("budgets.latency_ms", 500, "budgets.latency_ms", "mapping"),
        ("budgets.error_rate_max", 1.5, "budgets.error_rate_max", "from 0 to 1"),
        ("budgets.error_rate_max", "1%", "budgets.error_rate_max", "from 0 to 1"),
        ("budgets.endpoints", [1], "budgets.endpoints", "mapping of request name"),
        ("budgets.endpoints.login", 5, "budgets.endpoints.login", "mapping"),
        ("safety", "on", "safety", "mapping"),
        ("safety.allow_hosts", "127.0.0.1", "safety.allow_hosts", "list of host names"),
        ("safety.allow_hosts", [], "safety.allow_hosts", "list of host names"),
        ("safety.allow_hosts", ["localhost", 7], "safety.allow_hosts[1]", "non-empty string"),
        ("safety.max_qps", 0, "safety.max_qps", "number > 0"),
        ("safety.abort_on", {"error_rate": 0.5}, "safety.abort_on.for", "required"),
        ("safety.abort_on", {"error_rate": 2, "for": "5s"}, "safety.abort_on.error_rate", "from 0 to 1"),
        ("safety.abort_on", {"error_rate": 0.5, "for": "soon"}, "safety.abort_on.for", "duration"),
        ("arrivals", "bursty", "arrivals", "constant or poisson"),
        ("host", "127.0.0.1:8080", "host", "http:// or https:// URL"),
        ("host", "ftp://127.0.0.1", "host", "http:// or https://"),
        ("host", "http://127.0.0.1:99999", "host", "URL"),
        ("locustfile", 3, "locustfile", "non-empty string"),
        ("mock", True, "mock", "mapping"),
        ("mock.audit", "no", "mock.audit", "true or false"),
        ("mock.seed", 5, "mock.seed", "mapping or the path"),
    ],
)
def test_every_mistake_names_its_key(path, value, key, fragment):
    data = _mutate(path, value)
    with pytest.raises(PlanError) as info:
        parse_plan(data, source="plans/t.yaml")
    message = str(info.value)
    assert message.startswith("plans/t.yaml: "), message
    assert f": {key}:" in message, message
    assert fragment in message, message
    assert info.value.key == key


def test_messages_without_a_file_say_plan():
    with pytest.raises(
        PlanError, match=r"^plan: stages\[2\]\.qps: expected a number ≥ 0 or \[from, to\], got 'fast'$"
    ):
        parse_plan(_mutate("stages.2.qps", "fast"))


@pytest.mark.parametrize(
    ("path", "value", "key", "suggestion"),
    [
        ("budgets.qps_mni", 5, "budgets.qps_mni", "qps_min"),
        ("budgets.latency_ms.p999", 5, "budgets.latency_ms.p999", "p99"),
        ("stages.0.qsp", 5, "stages[0].qsp", "qps"),
        ("budget", {}, "budget", "budgets"),
        ("safety.allowed_hosts", ["x"], "safety.allowed_hosts", "allow_hosts"),
        ("safety.abort_on", {"error_rate": 0.1, "for": "1s", "fro": 1}, "safety.abort_on.fro", "for"),
        ("budgets.endpoints.x", {"latency": {}}, "budgets.endpoints.x.latency", "latency_ms"),
    ],
)
def test_unknown_keys_are_errors_with_a_suggestion(path, value, key, suggestion):
    with pytest.raises(PlanError) as info:
        parse_plan(_mutate(path, value), source="p.yaml")
    message = str(info.value)
    assert f"p.yaml: {key}: unknown key" in message
    assert f"did you mean {suggestion!r}" in message


def test_unknown_key_without_close_match_lists_the_allowed_ones():
    with pytest.raises(PlanError) as info:
        parse_plan(_mutate("zzz", 1))
    assert "did you mean" not in str(info.value)
    assert "expected one of: name, locustfile, host, stages" in str(info.value)


def test_max_qps_names_the_stage():
    data = base() | {"safety": {"max_qps": 20}}
    with pytest.raises(PlanError) as info:
        parse_plan(data, source="p.yaml")
    message = str(info.value)
    assert "stages[1].qps" in message and "'ramp'" in message and "30" in message and "max_qps 20" in message


def test_max_qps_equal_to_peak_is_allowed():
    assert parse_plan(base() | {"safety": {"max_qps": 30}}).safety.max_qps == 30


def test_gate_stages_must_be_consecutive():
    data = base()
    data["stages"][0]["gate"] = True
    with pytest.raises(PlanError, match=r"stages\[1\]\.gate: expected gate stages to be consecutive"):
        parse_plan(data)


def test_yaml_syntax_error_gives_the_line(tmp_path):
    path = write(tmp_path, "name: x\nstages:\n  - {name: a, duration: 1s, qps: [1, 2}\n")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 3")
    assert "invalid YAML" in message


def test_duplicate_keys_are_refused(tmp_path):
    path = write(tmp_path, "name: x\nstages: [{duration: 1, qps: 1}]\nname: y\n")
    with pytest.raises(PlanError, match=r"line 3.*duplicate key 'name'"):
        load_plan(path)


def test_missing_file(tmp_path):
    with pytest.raises(PlanError, match="no such file") as info:
        load_plan(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)


def test_empty_and_non_mapping_documents(tmp_path):
    with pytest.raises(PlanError, match="the document is empty"):
        load_plan(write(tmp_path, "# nothing\n"))
    with pytest.raises(PlanError, match="expected a mapping"):
        load_plan(write(tmp_path, "- a\n- b\n", "list.yaml"))


def test_timestamps_stay_as_written(tmp_path):
    path = write(
        tmp_path,
        """\
        name: t
        stages: [{duration: 1s, qps: 1}]
        mock:
          seed:
            activities: [{activity_id: A, publish_start_time: 2026-01-01 00:00:00, day: 2026-01-02}]
        """,
    )
    plan = load_plan(path)
    activity = plan.mock.seed["activities"][0]
    assert activity["publish_start_time"] == "2026-01-01 00:00:00"
    assert activity["day"] == "2026-01-02"
    assert plan.mock.audit is True
    json.dumps(plan.raw)  # raw stays JSON-safe


def test_seed_from_files_relative_to_the_plan(tmp_path):
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "s.json").write_text(json.dumps({"point_budgets": [{"budget_code": "JFB1"}]}))
    (tmp_path / "seeds" / "config.yaml").write_text("seed: {users: [{user_id: '2088'}]}\nfaults: {}\n")
    plan_json = load_plan(
        write(tmp_path, "name: a\nstages: [{duration: 1, qps: 1}]\nmock: {seed: seeds/s.json}\n")
    )
    assert plan_json.mock.seed == {"point_budgets": [{"budget_code": "JFB1"}]}
    plan_cfg = load_plan(
        write(
            tmp_path,
            "name: b\nstages: [{duration: 1, qps: 1}]\nmock: {seed: seeds/config.yaml, audit: false}\n",
        )
    )
    assert plan_cfg.mock.seed == {"users": [{"user_id": "2088"}]}
    assert plan_cfg.mock.audit is False


def test_missing_or_bad_seed_file_is_a_plan_error(tmp_path):
    path = write(tmp_path, "name: a\nstages: [{duration: 1, qps: 1}]\nmock: {seed: seeds/none.yaml}\n")
    with pytest.raises(PlanError, match=r"mock\.seed.*none\.yaml: no such file"):
        load_plan(path)
    (tmp_path / "list.yaml").write_text("- 1\n")
    path = write(tmp_path, "name: a\nstages: [{duration: 1, qps: 1}]\nmock: {seed: list.yaml}\n")
    with pytest.raises(PlanError, match=r"mock\.seed: expected a seed file holding a mapping"):
        load_plan(path)
    (tmp_path / "broken.json").write_text('{"a": ')
    path = write(tmp_path, "name: a\nstages: [{duration: 1, qps: 1}]\nmock: {seed: broken.json}\n")
    with pytest.raises(PlanError, match="invalid YAML"):
        load_plan(path)


def test_absolute_locustfile_is_kept(tmp_path):
    target = tmp_path / "elsewhere.py"
    plan = parse_plan(base() | {"locustfile": str(target)}, source=tmp_path / "sub" / "p.yaml")
    assert plan.locustfile == target
    rel = parse_plan(base() | {"locustfile": "f.py"}, source=tmp_path / "sub" / "p.yaml")
    assert rel.locustfile == tmp_path / "sub" / "f.py"


def test_unhashable_yaml_key_is_a_plan_error(tmp_path):
    path = write(tmp_path, "name: x\n? [a]\n: 1\nstages: [{duration: 1, qps: 1}]\n")
    with pytest.raises(PlanError, match=r"line 2.*unhashable key"):
        load_plan(path)


def test_missing_required_key_says_what_was_expected():
    with pytest.raises(
        PlanError, match=r"^p\.yaml: stages\[0\]\.duration: required key is missing \(expected a dur"
    ):
        parse_plan({"name": "x", "stages": [{"qps": 1}]}, source="p.yaml")


def test_mock_expect_is_read_and_checked():
    from loadkit.plan import PlanError, parse_plan

    base = {"name": "x", "stages": [{"duration": "1s", "qps": 1}]}
    plan = parse_plan({**base, "mock": {"expect": {"vouchers.A.issued": 3}}})
    assert plan.mock.expect == {"vouchers.A.issued": 3}
    with pytest.raises(PlanError, match=r"mock\.expect"):
        parse_plan({**base, "mock": {"expect": ["vouchers.A.issued"]}})
