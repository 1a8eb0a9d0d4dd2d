"""loadkit's command-line options, added to Locust's own parser (so `locust --plan ...` works too)."""

from __future__ import annotations

from typing import Any

from locust import events


@events.init_command_line_parser.add_listener
def add_options(parser: Any, **_kw: Any) -> None:
    # Straight on Locust's parser: its extra keywords (is_secret, env_var) are not known to groups.
    parser.add_argument(
        "--plan", env_var="LOADKIT_PLAN", default=None, help="Event plan (YAML) to run and judge"
    )
    parser.add_argument(
        "--report-dir",
        env_var="LOADKIT_REPORT_DIR",
        default=None,
        help="Where summary.json, junit.xml, summary.md and report.html go (default reports/<plan>-<time>)",
    )
    parser.add_argument(
        "--mock-url",
        env_var="LOADKIT_MOCK_URL",
        default=None,
        help="Admin base URL of the mock platform (default: the host, when --mock-admin-token is set)",
    )
    parser.add_argument(
        "--mock-admin-token",
        env_var="LOADKIT_MOCK_ADMIN_TOKEN",
        default=None,
        is_secret=True,
        help="Admin token of the mock platform: seed it from the plan and audit its ledger",
    )
    parser.add_argument(
        "--run-id",
        env_var="LOADKIT_RUN_ID",
        default=None,
        help="Id of this load test: a master refuses workers of another run id (set by `loadkit run`; "
        "give the same to remote workers)",
    )
    parser.add_argument(
        "--baseline",
        env_var="LOADKIT_BASELINE",
        default=None,
        help="Compare with an earlier run of the plan and fail on a regression: a report directory, "
        "last-pass (the newest passing run in the history) or history:<id>",
    )
    parser.add_argument(
        "--max-regression",
        env_var="LOADKIT_MAX_REGRESSION",
        default="10%",
        help="With --baseline: how much worse a figure may get (relative, e.g. 10%%; absolute floors "
        "and the runs' own noise are allowed besides)",
    )
    parser.add_argument(
        "--history-db",
        env_var="LOADKIT_HISTORY_DB",
        default=None,
        help="SQLite run history (default: loadkit-history.sqlite3 beside the report directory)",
    )
