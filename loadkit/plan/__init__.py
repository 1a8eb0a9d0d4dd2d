"""Event plans: the frozen model (`model`), loading and validation (`load`), durations, safety rails."""

from loadkit.plan.load import load_plan, parse_plan
from loadkit.plan.model import (
    ARRIVALS,
    PERCENTILE_KEYS,
    PLACEHOLDERS,
    WECHAT_PLACEHOLDERS,
    AbortRule,
    Budgets,
    Drill,
    EndpointBudget,
    LatencyBudget,
    MockSetup,
    Plan,
    PlanError,
    ReconcileSetup,
    Safety,
    ServiceSetup,
    Stage,
)

__all__ = [
    "ARRIVALS",
    "PERCENTILE_KEYS",
    "PLACEHOLDERS",
    "WECHAT_PLACEHOLDERS",
    "AbortRule",
    "Budgets",
    "Drill",
    "EndpointBudget",
    "LatencyBudget",
    "MockSetup",
    "Plan",
    "PlanError",
    "ReconcileSetup",
    "Safety",
    "ServiceSetup",
    "Stage",
    "load_plan",
    "parse_plan",
]
