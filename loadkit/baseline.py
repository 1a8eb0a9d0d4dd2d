"""Find the run a new run is compared with (`--baseline RUN_DIR|last-pass|history:ID`).

Used by the CLI (to refuse a missing baseline before anything starts, and for a run whose
generator died) and by the plugin (plain `locust --baseline`). A baseline of another plan is
refused: its figures answer another question.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loadkit import history
from loadkit.measure.figures import BaselineInput, BaselineRun
from loadkit.measure.summary import Summary, load_summary

LAST_PASS = "last-pass"
HISTORY_PREFIX = "history:"


class BaselineError(Exception):
    """The baseline cannot be used; the message says why (a usage error: exit 3)."""


def resolve(spec: str, plan: str, db_path: str | Path | None, max_regression: float) -> BaselineInput:
    """The baseline `spec` names, for a run of the plan named `plan` (history in `db_path`)."""
    try:
        return _resolve(spec, plan, db_path, max_regression)
    except history.HistoryError as exc:
        raise BaselineError(f"--baseline {spec}: {exc}") from None


def _resolve(spec: str, plan: str, db_path: str | Path | None, max_regression: float) -> BaselineInput:
    run_dir: str | None = None
    history_id: int | None = None
    if spec == LAST_PASS:
        found = history.last_pass(db_path, plan)
        if found is None:
            known = history.plans(db_path)
            have = f"; the history has runs of: {', '.join(known)}" if known else ""
            raise BaselineError(
                f"--baseline last-pass: no passing run of plan {plan!r} in {_db_name(db_path)}{have}"
            )
        summary, history_id, run_dir = _checked(found["summary"], spec), int(found["id"]), found["run_dir"]
    elif spec.startswith(HISTORY_PREFIX):
        try:
            history_id = int(spec.removeprefix(HISTORY_PREFIX))
        except ValueError:
            raise BaselineError(f"--baseline {spec}: expected history:<run id>, e.g. history:12") from None
        found = history.get_run(db_path, history_id)
        if found is None:
            raise BaselineError(f"--baseline {spec}: no run {history_id} in {_db_name(db_path)}")
        summary, run_dir = _checked(found["summary"], spec), found["run_dir"]
    else:
        summary, run_dir = _read_dir(spec), spec
    if summary["plan"]["name"] != plan:
        raise BaselineError(
            f"--baseline {spec}: that run is of plan {summary['plan']['name']!r}, not {plan!r}: "
            "compare runs of the same plan"
        )
    run: BaselineRun = {
        "source": spec,
        "run_dir": run_dir,
        "history_id": history_id,
        "plan": summary["plan"]["name"],
        "started_at": summary["started_at"],
        "verdict": summary["verdict"],
    }
    return {"run": run, "summary": dict(summary), "max_regression": max_regression}


def read_summary(run_dir: str | Path) -> Summary:
    """The summary.json of a report directory (or the file itself); BaselineError if unusable."""
    return _read_dir(str(run_dir))


def _read_dir(spec: str) -> Summary:
    path = Path(spec)
    if path.is_dir():
        path = path / "summary.json"
    try:
        return _checked(json.loads(path.read_text()), spec)
    except FileNotFoundError:
        raise BaselineError(f"{spec}: no summary.json here (is this a loadkit report directory?)") from None
    except (OSError, ValueError) as exc:
        raise BaselineError(f"{path}: not readable JSON: {exc}") from None


def _checked(doc: Any, spec: str) -> Summary:
    try:
        return load_summary(doc)
    except ValueError as exc:
        raise BaselineError(f"{spec}: {exc}") from None


def _db_name(db_path: str | Path | None) -> str:
    return str(db_path) if db_path is not None else f"./{history.DB_NAME}"
