"""Every shipped plan loads, points at an existing locustfile, seeds the mock validly, and its
`-ci` variant fits a CI run; every scenario documents itself and expects codes the mock uses."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from loadkit.engine.clock import PlanClock

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
PLANS = sorted((SCENARIOS / "plans").glob("*.yaml"))
LOCUSTFILES = sorted(p for p in SCENARIOS.glob("*.py") if p.name != "__init__.py")
CI_MAX_S = 60.0

plan_mod = pytest.importorskip("loadkit.plan")


def test_every_scenario_has_a_full_and_a_ci_plan():
    names = {p.stem for p in PLANS}
    assert len(LOCUSTFILES) >= 5
    for locustfile in LOCUSTFILES:
        assert locustfile.stem in names, f"{locustfile.name}: no plans/{locustfile.stem}.yaml"
        assert f"{locustfile.stem}-ci" in names, f"{locustfile.name}: no plans/{locustfile.stem}-ci.yaml"


@pytest.mark.parametrize("path", PLANS, ids=[p.name for p in PLANS])
def test_plan_loads_and_is_runnable(path: Path):
    plan = plan_mod.load_plan(path)
    assert plan.locustfile is not None and plan.locustfile.is_file(), f"{path.name}: locustfile missing"
    assert plan.gate_stages(), f"{path.name}: nothing is judged"
    assert plan.safety.allow_hosts is None, f"{path.name}: shipped plans target loopback only"
    assert plan.mock is not None and plan.mock.audit and plan.mock.seed, f"{path.name}: must seed and audit"
    if path.stem.endswith("-ci"):
        assert plan.duration_s <= CI_MAX_S, f"{path.name}: {plan.duration_s:g} s is too long for CI"
    else:
        # a full plan is the real rehearsal: the platform's mixed-link runs last >= 10 minutes
        if path.stem in ("jifenbao", "event_mixed", "follow_gift"):
            assert plan.gate_seconds() >= 600


def test_gates_follow_the_events_requirements():
    jfb = plan_mod.load_plan(SCENARIOS / "plans" / "jifenbao.yaml")
    ci = plan_mod.load_plan(SCENARIOS / "plans" / "jifenbao-ci.yaml")
    for plan in (jfb, ci):
        assert plan.budgets.endpoints["points.send"].qps_min >= 200
        assert min(plan.qps_at(plan.stage_start(i)) for i in plan.gate_stages()) >= 240
    for name in ("flash_sale.yaml", "flash_sale-ci.yaml"):
        plan = plan_mod.load_plan(SCENARIOS / "plans" / name)
        assert plan.budgets.error_rate_max == 0
        opens = [i for i, s in enumerate(plan.stages) if s.name.startswith("open")]
        assert opens and opens[0] in plan.gate_stages() and opens[0] > 0, "needs a gather stage, then open"
    mixed = plan_mod.load_plan(SCENARIOS / "plans" / "event_mixed.yaml")
    assert mixed.gate_seconds() >= 600


@pytest.mark.parametrize("path", PLANS, ids=[p.name for p in PLANS])
def test_seed_is_accepted_by_the_mock_ledger(path: Path):
    ledger_mod = pytest.importorskip("mock_platform.ledger")
    plan = plan_mod.load_plan(path)
    counts = ledger_mod.Ledger().seed(plan.mock.seed)
    assert counts["apps"] >= 1


@pytest.mark.parametrize("path", LOCUSTFILES, ids=[p.name for p in LOCUSTFILES])
def test_scenario_docstring_and_expected_codes(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc, f"{path.name}: needs a module docstring"
    first, _, rest = doc.partition("\n")
    assert first.strip() and len(first) <= 110 and rest.startswith("\n"), "first line: one-line summary"
    for section in ("Event:", "Traffic:", "Gated:", "Your own service:"):
        assert section in doc, f"{path.name}: docstring lacks {section!r}"
    codes_mod = pytest.importorskip("mock_platform.codes")
    known = {entry["sub_code"] for entry in codes_mod.BusinessCodes().as_dict().values()}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "EXPECTED" for t in node.targets):
            expected = ast.literal_eval(node.value)
            assert set(expected) <= known, f"{path.name}: EXPECTED has codes the mock never sends"


def test_flash_sale_opens_at_the_open_stage_and_rounds_stay_inside_the_plan(monkeypatch):
    monkeypatch.syspath_prepend(str(SCENARIOS))
    flash_sale = pytest.importorskip("flash_sale")
    event_mixed = pytest.importorskip("event_mixed")
    plan = plan_mod.load_plan(SCENARIOS / "plans" / "flash_sale-ci.yaml")
    t0 = 1_000_000.0
    clock = PlanClock(plan, t0)
    for module in (flash_sale, event_mixed):
        monkeypatch.setattr(module, "plan_clock", lambda: clock)
    assert flash_sale.plan_opening() == t0 + plan.stage_start(1)  # "open" follows "gather"
    assert event_mixed.next_round(t0 + 0.5) == t0 + event_mixed.FLASH_ROUND_S
    assert event_mixed.next_round(t0 + plan.duration_s - 0.5) is None  # no round left: claim at once
    clock = None
    assert flash_sale.plan_opening() is None and event_mixed.next_round() is None
