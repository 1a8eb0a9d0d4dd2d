"""The judging role's part of a three-tier rehearsal (Locust users -> the service -> the mock).

One `Rehearsal` per judging process (local or master), made by the plugin at `init` when the
plan has a `service:`, `drills:` or `reconcile:` section. In order:

1. `start()` (init, before any test): check the drills with the mock, start the service
   (`rehearsal.service`), which registers its fresh key pair with the mock.
2. `test_started()`: register the key (and the WeChat Pay merchant) again (the plan's seed may
   have replaced them) and schedule the drills at their absolute times.
3. `watch()` (the role's monitor, every second): the service's death, once.
4. `books()` at the end of a test, after the users stopped: let the ledger settle, judge the
   drills, note the service, remove the drills' layers; then `reconcile()` matches by id what
   users were told, the service's records and the ledger's effects.
5. `stop()` at quit: the service is stopped (SIGTERM to its group, then SIGKILL).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from loadkit.engine.session import RunSession
from loadkit.measure.drills import judge_drills
from loadkit.measure.reconcile import Record, reconcile_by_id
from loadkit.plan import Plan
from loadkit.rehearsal import drills as drill_layers
from loadkit.rehearsal.ledger import RecordsError, read_effects, read_records, settle
from loadkit.rehearsal.mock_admin import MockAdmin, MockAdminError
from loadkit.rehearsal.service import ServiceProcess

log = logging.getLogger("loadkit")


class RehearsalSetupError(Exception):
    """A configuration problem found before any test: exit 3 with this sentence."""


class Rehearsal:
    def __init__(self, plan: Plan, *, mock: MockAdmin | None, run_dir: Path) -> None:
        self.plan = plan
        self.mock = mock
        self.service = (
            ServiceProcess(plan.service, mock=mock, run_dir=run_dir) if plan.service is not None else None
        )
        self._death_seen = False

    @staticmethod
    def wanted(plan: Plan) -> bool:
        return plan.service is not None or bool(plan.drills) or plan.reconcile is not None

    # --- before any test ----------------------------------------------------------------------

    def start(self) -> None:
        """Drills checked, service started; RehearsalSetupError for what only a person can fix.
        A service that starts but exits or is never ready is not raised: it fails the run."""
        needs_mock = [name for name, on in (("service:", self.service), ("drills:", self.plan.drills)) if on]
        if needs_mock and self.mock is None:
            raise RehearsalSetupError(
                f"the plan's {' and '.join(needs_mock)} section needs the mock platform: run it with "
                "`loadkit run PLAN --with-mock`, or give --mock-url and --mock-admin-token"
            )
        try:
            if self.mock is not None and self.plan.drills:
                drill_layers.check(self.mock, self.plan.drills)
            if self.service is not None:
                assert self.mock is not None
                self.service.prepare(self.mock.base_url)
        except MockAdminError as exc:
            raise RehearsalSetupError(str(exc)) from None
        if self.service is not None and self.service.start():
            log.info("loadkit: the service under test is ready at %s", self.service.host)

    @property
    def host(self) -> str | None:
        return self.service.host if self.service is not None else None

    @property
    def failed_to_start(self) -> str | None:
        return self.service.problem if self.service is not None else None

    # --- during a test ------------------------------------------------------------------------

    def test_started(self, session: RunSession) -> None:
        if self.mock is None or session.t0 is None:
            return
        try:
            if self.service is not None:
                self.service.register_again()
            drill_layers.schedule(self.mock, self.plan.drills, session.t0)
        except MockAdminError as exc:
            session.setup_problem = f"could not prepare the rehearsal on the mock platform: {exc}"
            log.error("loadkit: %s", session.setup_problem)

    def watch(self, session: RunSession) -> str | None:
        """The reason to stop the run, the first time the service is found dead."""
        if self.service is None or self._death_seen or self.service.exited() is None:
            return None
        self._death_seen = True
        return self.service.death_reason(session.t0)

    def live(self, session: RunSession, now: float) -> dict[str, Any]:
        """The service and each drill so far, for the web UI tab (no verdict: that comes at the end)."""
        out: dict[str, Any] = {}
        if self.service is not None:
            out["service"] = self.service.doc(session.t0)
        if self.plan.drills and session.t0 is not None:
            rel = now - session.t0
            rows = []
            for drill in self.plan.drills:
                end = drill.at_s + drill.for_s
                state = "scheduled" if rel < drill.at_s else "active" if rel < end else "over"
                figures = session.recorder.window(drill.at_s, min(rel, end)) if rel > drill.at_s else None
                rows.append(
                    {
                        "name": drill.name,
                        "at": drill.at_s,
                        "for": drill.for_s,
                        "state": state,
                        "error_rate": figures["error_rate"] if figures else None,
                        "p99_ms": figures["p99_ms"] if figures else None,
                        "recovery_budget_s": self.plan.recovery_s(drill),
                    }
                )
            out["drills"] = rows
        return out

    # --- the end of a test --------------------------------------------------------------------

    def books(self, session: RunSession, evidence: dict[str, Any], finished: float) -> None:
        """Settle the ledger; the service's and the drills' part of the evidence."""
        alive = self.service is not None and self.service.exited() is None
        if self.mock is not None and alive:
            assert self.service is not None
            try:
                settled, waited = settle(self.mock, self.service.setup.settle_timeout_s)
                if not settled:
                    log.warning(
                        "loadkit: the ledger was still changing after %.0f s; judging it as it is", waited
                    )
            except MockAdminError as exc:
                log.warning("loadkit: could not watch the ledger settle: %s", exc)
        if self.service is not None:
            evidence["service"] = self.service.doc(session.t0)
        if self.plan.drills and session.t0 is not None:
            ts = evidence.get("timeseries") or session.recorder.figures(until=finished)["timeseries"]
            evidence["drills"] = judge_drills(self.plan, session.recorder.window, ts, finished - session.t0)
            if self.mock is not None:
                try:
                    drill_layers.remove(self.mock, self.plan.drills)
                except MockAdminError as exc:
                    log.warning("loadkit: could not remove the drills' fault layers: %s", exc)

    def reconcile(self, session: RunSession, evidence: dict[str, Any]) -> None:
        """By id, when there is something to match by id (told rows or the service's records);
        otherwise the count-based reconciliation already in `evidence` stands."""
        service = self.service
        records_url = service.records_url if service is not None else None
        told = session.told.rows
        if self.mock is None or (not told and records_url is None):
            return
        scopes = service.effect_scopes() if service is not None else None
        try:
            effects, bad = read_effects(self.mock, scopes)
        except MockAdminError as exc:
            evidence["reconciliation"] = _unavailable(f"the ledger's effects could not be read: {exc}")
            return
        records: list[Record] | None = None
        problem = None
        if records_url is not None:
            try:
                records, bad_records = read_records(records_url, service.records_token if service else None)
                bad += bad_records
            except RecordsError as exc:
                if service is not None and service.exited() is not None:
                    log.warning("loadkit: the dead service's records are gone; reconciling two ways")
                else:
                    problem = f"the service's records could not be read: {exc}"
        pool = max(self.plan.users_for(i) for i in range(len(self.plan.stages)))
        names = {row[0] for row in told}
        seen = session.recorder.seen()
        errors = sum(seen[name]["errors"] for name in names if name in seen)
        limits = self.plan.reconcile.per_user_limit if self.plan.reconcile is not None else None
        result = reconcile_by_id(
            told, effects, records, per_user_limit=limits, in_flight=pool + errors, bad_lines=bad
        )
        if problem is not None:
            result = {**result, "ok": False, "problems": [problem, *result["problems"]]}
        evidence["reconciliation"] = result

    # --- quit ---------------------------------------------------------------------------------

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


def _unavailable(problem: str) -> dict[str, Any]:
    return {"ok": False, "mode": "unavailable", "problems": [problem]}
