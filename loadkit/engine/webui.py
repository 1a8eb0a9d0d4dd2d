"""The "Event readiness" tab in Locust's web UI, built only on Locust's own extension points.

Locust's React UI shows an extra tab from `template_args["extended_tabs"]`, lays out its table from
`template_args["extended_tables"]`, and fills the rows from `extended_stats` in the `/stats/requests`
JSON it polls every 2 s while a test runs. So the rows ride along on that response (an
`after_request` hook), and the same rows are also served as JSON and CSV. The tab only presents
what `live()` says (figures shaped like summary.json); it computes no figures of its own.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Response, request

from loadkit.measure.attribution import CPU_LIMIT, LAG_MAX_LIMIT_MS, LAG_P99_LIMIT_MS
from loadkit.reports.html import as_list, as_map, fmt_measure, fmt_ms, fmt_num, fmt_pct
from loadkit.reports.markdown import effect_of
from loadkit.reports.progress import gate_countdown

log = logging.getLogger("loadkit")

TAB_KEY = "event_readiness"
TAB_TITLE = "Event readiness"
COLUMNS = (
    ("item", "Item"),
    ("observed", "Observed"),
    ("limit", "Limit"),
    ("status", "Status"),
    ("note", "Note"),
)
CSV_PATH = "/loadkit/readiness.csv"
LIVE_PATH = "/loadkit/live"
CHECK_KINDS = {"budget": "Budget", "integrity": "Integrity", "health": "Generator"}
# no-break spaces: the Status column is narrow and a mark must not wrap
MARKS = {True: "✔\u00a0PASS", False: "✘\u00a0FAIL"}
EFFECT_MARKS = {"pass": MARKS[True], "fail": MARKS[False], "inconclusive": "?\u00a0DOUBTFUL"}
VERDICT_MARKS = {"pass": MARKS[True], "fail": MARKS[False], "inconclusive": "?\u00a0INCONCLUSIVE"}
VERDICT_WORDS = {"pass": "ready so far", "fail": "not ready so far", "inconclusive": "inconclusive so far"}
_STATE = "loadkit_readiness"  # key in app.extensions: the current live() callable


def _row(item: str, observed: str = "", limit: str = "", status: str = "", note: str = "") -> dict[str, str]:
    return {"item": item, "observed": observed, "limit": limit, "status": status, "note": note}


def rows(live: Mapping[str, Any]) -> list[dict[str, str]]:
    """Table rows for one live() snapshot, in display order.

    Before the gate window starts, figures are over the run so far and say so, checks get no
    mark and the verdict row says when the gate starts: warm-up is not meant to meet the budgets.
    """
    stage = live.get("stage")
    if not isinstance(stage, Mapping):
        return [_row("Event readiness", "waiting for the test to start")]
    countdown = gate_countdown(live)
    judged = countdown is None
    scope = "gate window so far" if judged else "run so far (gate not started)"
    aside = "" if judged else f"; {scope}"  # labels figures whose notes otherwise name no window
    out = [_stage_row(stage)]
    qps = as_map(live.get("qps"))
    out.append(_row("Arrivals/s planned now", _qps(stage.get("qps_planned")), note="the plan's arrival rate"))
    out.append(_row("Requests/s now", _qps(live.get("qps_now")), note="successful requests, last 5 s"))
    out.append(
        _row(
            "Arrivals/s sent / planned",
            _qps(qps.get("arrivals_held")),
            _qps(qps.get("target")),
            note=f"journeys started, {scope}",
        )
    )
    out.append(_row("Requests/s held", _qps(qps.get("held")), note=f"successful requests, {scope}"))
    for check in as_list(live.get("checks")):
        if isinstance(check, Mapping):
            out.append(_check_row(check, judged=judged))
    lat = as_map(live.get("latency_ms"))
    out.append(
        _row(
            "Latency p50 / p95 / p99",
            " / ".join(fmt_ms(lat.get(p)) for p in ("p50", "p95", "p99")),
            note=f"corrected for coordinated omission{aside}",
        )
    )
    out.append(_row("Error rate", fmt_pct(live.get("error_rate")), note=_errors_note(live) + aside))
    out.extend(_arrival_rows(as_map(live.get("arrivals"))))
    out.extend(_generator_rows(as_map(live.get("generator")), aside))
    audit = live.get("audit")
    if isinstance(audit, Mapping):
        violations = [str(v) for v in as_list(audit.get("violations"))]
        ok = audit.get("ok")
        out.append(
            _row(
                "Mock audit",
                f"{len(violations)} violations",
                "0",
                MARKS.get(ok, "?") if isinstance(ok, bool) else "?",
                "; ".join(violations)[:300],
            )
        )
    out.extend(_rehearsal_rows(live))
    abort = live.get("abort")
    if isinstance(abort, Mapping) and abort.get("reason"):
        out.append(_row("Aborted", status=MARKS[False], note=str(abort["reason"])))
    if not judged:
        out.append(_row("Verdict so far", f"gate not started (starts in {countdown})"))
        return out
    verdict = str(live.get("verdict") or "")
    out.append(
        _row(
            "Verdict so far",
            VERDICT_WORDS.get(verdict, verdict or "not judged yet"),
            status=VERDICT_MARKS.get(verdict, ""),
        )
    )
    out.extend(_row("Reason", note=str(reason)) for reason in as_list(live.get("reasons")))
    return out


def _rehearsal_rows(live: Mapping[str, Any]) -> list[dict[str, str]]:
    """The service under test, and a row per drill: its window, state and figures so far."""
    out = []
    service = live.get("service")
    if isinstance(service, Mapping):
        ok = service.get("ok")
        out.append(
            _row(
                "Service under test",
                str(service.get("host") or ""),
                status=MARKS.get(ok, "?") if isinstance(ok, bool) else "?",
                note=str(service.get("problem") or f"pid {service.get('pid')}")[:300],
            )
        )
    for drill in as_list(live.get("drills")):
        if not isinstance(drill, Mapping):
            continue
        at, length = drill.get("at") or 0, drill.get("for") or 0
        judged = drill.get("ok")
        status = MARKS.get(judged, "?") if isinstance(judged, bool) else str(drill.get("state") or "")
        observed = f"errors {fmt_pct(drill.get('error_rate'))}, p99 {fmt_ms(drill.get('p99_ms'))}"
        note = f"{fmt_num(at)}–{fmt_num(at + length)} s of the plan"
        if drill.get("recovery_s") is not None:
            note += f"; recovered in {fmt_num(drill.get('recovery_s'))} s"
        out.append(
            _row(
                f"Drill: {drill.get('name', '?')}",
                observed,
                f"recovery ≤ {fmt_num(drill.get('recovery_budget_s'))} s",
                status,
                note,
            )
        )
    return out


def _check_row(check: Mapping[str, Any], *, judged: bool) -> dict[str, str]:
    """A budget or health check: observed against its limit, marked only once the gate has begun."""
    known = isinstance(check.get("ok"), bool) or check.get("effect") is not None
    status = (EFFECT_MARKS[effect_of(check)] if known else "?") if judged else ""
    return _row(
        f"{CHECK_KINDS.get(str(check.get('kind')), 'Check')}: {check.get('name', '?')}",
        fmt_measure(check.get("observed"), check.get("unit")),
        fmt_measure(check.get("limit"), check.get("unit")),
        status,
        "" if judged else "not judged before the gate",
    )


def _stage_row(stage: Mapping[str, Any]) -> dict[str, str]:
    index, count = stage.get("index"), stage.get("count")
    position = f" ({index + 1} of {count})" if isinstance(index, int) and count else ""
    elapsed, remaining = stage.get("elapsed_s"), stage.get("remaining_s")
    return _row(
        "Stage",
        f"{stage.get('name', '?')}{position}",
        status="gate" if stage.get("gate") else "",
        note=f"{fmt_num(_round(elapsed))} s elapsed, {fmt_num(_round(remaining))} s left",
    )


def _qps(value: Any) -> str:
    """QPS to one decimal: 238.9 against a 240 target says more than 239."""
    return (
        f"{value:.1f}" if isinstance(value, int | float) and not isinstance(value, bool) else fmt_num(value)
    )


def _round(value: Any) -> Any:
    return round(value) if isinstance(value, int | float) else value


def _errors_note(live: Mapping[str, Any]) -> str:
    req = as_map(live.get("requests"))
    return f"{fmt_num(req.get('errors'))} errors in {fmt_num(req.get('count'))} requests"


def _arrival_rows(arrivals: Mapping[str, Any]) -> list[dict[str, str]]:
    scheduled = arrivals.get("scheduled")
    out = []
    for key, label in (("late", "Arrivals late"), ("dropped", "Arrivals dropped")):
        value = arrivals.get(key)
        share = value / scheduled if isinstance(value, int | float) and scheduled else None
        out.append(_row(label, fmt_num(value), note=f"{fmt_pct(share)} of {fmt_num(scheduled)} scheduled"))
    return out


def _generator_rows(gen: Mapping[str, Any], aside: str) -> list[dict[str, str]]:
    """The generator's own health: loop lag, CPU, late arrivals by cause, and each process."""
    limits = f"{fmt_num(LAG_P99_LIMIT_MS)} ms / {fmt_num(LAG_MAX_LIMIT_MS)} ms"
    out = [
        _row(
            "Generator loop lag p99 / max",
            f"{fmt_ms(gen.get('lag_p99_ms'))} / {fmt_ms(gen.get('lag_max_ms'))}",
            limits,
            note=f"how late a 10-ms sleep woke, worst pacing process; a second above: unhealthy{aside}",
        ),
        _row(
            "Generator CPU max / avg",
            f"{fmt_num(gen.get('cpu_max'))}% / {fmt_num(gen.get('cpu_avg'))}%",
            f"{CPU_LIMIT:g}%",
            note=f"per second, CPU ran + waited for a core above the limit is unhealthy{aside}",
        ),
        _row(
            "Generator unhealthy",
            f"{fmt_num(gen.get('unhealthy_s'))} s",
            note=f"the longest any pacing process was unhealthy{aside}; for long: inconclusive",
        ),
    ]
    late = [as_map(gen.get("late")), as_map(gen.get("unsent"))]
    if any(late):
        by = {key: sum(int(c.get(key) or 0) for c in late) for key in ("generator", "users", "target")}
        out.append(
            _row(
                "Late arrivals by cause",
                " / ".join(f"{key} {fmt_num(n)}" for key, n in by.items()),
                note="the generator's loop or CPU / too few free users / every user waiting on the target",
            )
        )
    out.append(_row("Workers", fmt_num(gen.get("workers")), note=f"lost: {fmt_num(gen.get('workers_lost'))}"))
    processes = [as_map(p) for p in as_list(gen.get("processes"))]
    if len(processes) > 1:
        for process in processes:
            wait = process.get("cpu_wait_max")
            waited = f", waited for a core ≤ {fmt_num(wait)}%" if wait is not None else ""
            free = f"; fewest free users {fmt_num(process.get('free_min'))}" if process.get("paces") else ""
            out.append(
                _row(
                    f"Process {process.get('name', '?')}",
                    f"lag {fmt_ms(process.get('lag_p99_ms'))} / {fmt_ms(process.get('lag_max_ms'))}",
                    note=(
                        f"CPU max {fmt_num(process.get('cpu_max'))}%, avg {fmt_num(process.get('cpu_avg'))}%"
                        f"{waited}; unhealthy {fmt_num(process.get('unhealthy_s'))} s{free}"
                    ),
                )
            )
    return out


def safe_rows(live: Callable[[], Mapping[str, Any]]) -> list[dict[str, str]]:
    """Rows with a hidden `name` that keeps their order (the UI's table sorts rows by `name`).

    live() may fail or be partial early in a run; that must never break the UI's stats poll.
    """
    try:
        data = live()
        table = rows(data) if isinstance(data, Mapping) else [_row("Event readiness", "waiting for data")]
    except Exception as exc:  # the UI poll must survive whatever live() does
        log.debug("loadkit: live() failed for the web UI", exc_info=True)
        table = [_row("Event readiness", "waiting for data", note=f"{type(exc).__name__}: {exc}"[:200])]
    return [{"name": f"{i:03d}", **row} for i, row in enumerate(table)]


def _base_path(app: Any) -> str:
    """The `--web-base-path` prefix, read from where Locust mounted its own /stats/requests."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "locust.request_stats":
            return rule.rule[: -len("/stats/requests")]
    return ""


def _merge_by_key(existing: Any, ours: dict[str, Any]) -> list[Any]:
    others = [e for e in existing or [] if not (isinstance(e, Mapping) and e.get("key") == ours.get("key"))]
    return [*others, ours]


def install(environment: Any, live: Callable[[], Mapping[str, Any]]) -> None:
    """Add the tab, its routes and its rows to the web UI; nothing when there is no web UI
    (headless runs and workers). Installing again only replaces the live() source."""
    web_ui = environment.web_ui
    if web_ui is None:
        return
    app = web_ui.app
    already = _STATE in app.extensions
    app.extensions[_STATE] = live
    args = web_ui.template_args
    args["extended_tabs"] = _merge_by_key(args.get("extended_tabs"), {"title": TAB_TITLE, "key": TAB_KEY})
    structure = [{"key": key, "title": title} for key, title in COLUMNS]
    args["extended_tables"] = _merge_by_key(
        args.get("extended_tables"), {"key": TAB_KEY, "structure": structure}
    )
    csv_link = {"href": f".{CSV_PATH}", "title": "Download event readiness CSV"}
    others = [f for f in as_list(args.get("extended_csv_files")) if as_map(f).get("href") != csv_link["href"]]
    args["extended_csv_files"] = [*others, csv_link]
    if already:
        return

    def current_rows() -> list[dict[str, str]]:
        return safe_rows(app.extensions[_STATE])

    blueprint = Blueprint("loadkit", __name__, url_prefix=_base_path(app) or None)

    @blueprint.route(LIVE_PATH)
    @web_ui.auth_required_if_enabled
    def live_json() -> Response:
        try:
            data = app.extensions[_STATE]()
            return app.json.response(data)
        except Exception as exc:  # report, don't 500 with a traceback page
            log.debug("loadkit: live() failed for /loadkit/live", exc_info=True)
            response = app.json.response({"error": f"live status unavailable: {type(exc).__name__}: {exc}"})
            response.status_code = 503
            return response

    @blueprint.route(CSV_PATH)
    @web_ui.auth_required_if_enabled
    def readiness_csv() -> Response:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([title for _, title in COLUMNS])
        for row in current_rows():
            writer.writerow([row[key] for key, _ in COLUMNS])
        return Response(
            buffer.getvalue(),
            mimetype="text/csv",
            headers={"Content-Disposition": "attachment; filename=event_readiness.csv"},
        )

    app.register_blueprint(blueprint)

    @app.after_request
    def add_readiness_rows(response: Response) -> Response:
        if (
            not request.path.endswith("/stats/requests")
            or not response.is_json
            or response.status_code != 200
        ):
            return response
        payload = response.get_json(silent=True)
        if isinstance(payload, dict):
            payload["extended_stats"] = _merge_by_key(
                payload.get("extended_stats"), {"key": TAB_KEY, "data": current_rows()}
            )
            response.set_data(app.json.dumps(payload))
        return response
