"""Event plans: the frozen model (`model`), loading and validation (`load`), durations, safety rails."""

from loadkit.plan.load import load_plan, parse_plan
from loadkit.plan.model import (
    ARRIVALS,
    PERCENTILE_KEYS,
    AbortRule,
    Budgets,
    EndpointBudget,
    LatencyBudget,
    MockSetup,
    Plan,
    PlanError,
    Safety,
    Stage,
)

__all__ = [
    "ARRIVALS",
    "PERCENTILE_KEYS",
    "AbortRule",
    "Budgets",
    "EndpointBudget",
    "LatencyBudget",
    "MockSetup",
    "Plan",
    "PlanError",
    "Safety",
    "Stage",
    "load_plan",
    "parse_plan",
]
