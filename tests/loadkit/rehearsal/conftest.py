"""Three-tier rehearsal runs: `loadkit run PLAN --with-mock --headless` with the real mock, the
real campaign service (started by loadkit from the plan) and a tiny JsonUser locustfile."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).parent

SERVICE: dict[str, Any] = {
    "command": [
        "{python}", "-m", "campaign_service", "--host", "127.0.0.1", "--port", "{port}",
        "--db", "{run_dir}/campaign.sqlite3",
    ],
    "env": {
        "CAMPAIGN_GATEWAY_URL": "{mock_url}/gateway.do",
        "CAMPAIGN_APP_ID": "{app_id}",
        "CAMPAIGN_APP_PRIVATE_KEY_FILE": "{app_private_key_file}",
        "CAMPAIGN_PLATFORM_PUBLIC_KEY_FILE": "{platform_public_key_file}",
        "CAMPAIGN_ADMIN_TOKEN": "{service_token}",
    },
    "ready": "http://127.0.0.1:{port}/healthz",
    "records": "http://127.0.0.1:{port}/admin/grants",
    "records_token_env": "CAMPAIGN_ADMIN_TOKEN",
}  # fmt: skip
SEED = {
    "point_budgets": [
        {
            "budget_code": "JFB-CHANNEL",
            "total_amount": 100_000_000,
            "start_time": "NowTime",
            "end_time": "2030-12-31 23:59:59",
            "enabled": True,
        }
    ]
}


def rehearsal_plan(
    name: str,
    hold_s: int,
    qps: int,
    *,
    service_env: dict[str, str] | None = None,
    service_args: list[str] | None = None,
    drills: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    service = copy.deepcopy(SERVICE)
    service["env"].update(service_env or {})
    service["command"] += service_args or []
    plan: dict[str, Any] = {
        "name": name,
        "locustfile": str(HERE / "campaign_locustfile.py"),
        "stages": [
            {"name": "warmup", "duration": "2s", "qps": qps, "users": 40},
            {"name": "hold", "duration": f"{hold_s}s", "qps": qps, "users": 40, "gate": True},
        ],
        "budgets": {"latency_ms": {"p99": 1000}, "error_rate_max": 0.01},
        "mock": {"seed": SEED},
        "service": service,
        "reconcile": {"per_user_limit": {"alipay.user.alipaypoint.send": 1}},
    }
    if drills:
        plan["drills"] = drills
    return plan


def processes_of(run_dir: Path) -> list[psutil.Process]:
    """Processes still running with the run directory on their command line (the service's --db)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(run_dir) in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
