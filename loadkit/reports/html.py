"""report.html: one self-contained page that tells a non-engineer whether the event can go live.

Operations people open this file from a mail or a ticket, often offline, so it needs no network
at all: the CSS is inlined, the charts are SVG drawn here, and there is no script. A Content
Security Policy forbids any fetch, so a stray reference shows up as a browser error in tests.
Every figure may be missing (an aborted run, an old summary): each one renders as a dash.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from loadkit.measure.attribution import CPU_LIMIT, LAG_MAX_LIMIT_MS, LAG_P99_LIMIT_MS
from loadkit.measure.verdict import GENERATOR_CHECKS
from loadkit.reports.markdown import effect_of

MAX_POINTS = 600  # per chart series: a 1-hour soak at 1 s stays small and quick to draw
DASH = "—"
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600)  # x ticks, seconds
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@cache
def _css() -> str:
    return Path(__file__).with_name("report.css").read_text(encoding="utf-8")


# --- formatting -----------------------------------------------------------------------------


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def fmt_num(value: Any) -> str:
    """Short human number: 238.9, 412, 0.0123; a dash when absent."""
    if not _is_num(value):
        return DASH if value is None else str(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"


def fmt_ms(value: Any) -> str:
    return f"{fmt_num(value)} ms" if _is_num(value) else DASH


def fmt_pct(value: Any) -> str:
    if not _is_num(value):
        return DASH
    # two decimals near 0 and near 100%, where 99.95% must not read as 100.0%
    return f"{value * 100:.2f}%" if value < 0.1 or 0.99 <= value < 1 else f"{value * 100:.1f}%"


def fmt_measure(value: Any, unit: str | None) -> str:
    """A check's observed value or limit with its unit (ratios as percentages)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not _is_num(value):
        return DASH if value is None else str(value)
    if unit in ("ratio", "fraction"):
        return fmt_pct(value)
    if unit == "%":
        return f"{fmt_num(value)}%"
    return f"{fmt_num(value)} {unit}" if unit else fmt_num(value)


def _duration(seconds: Any) -> str:
    if not _is_num(seconds) or seconds <= 0:
        return "an unknown time"
    total = round(seconds)
    minutes, secs = divmod(total, 60)
    if minutes == 0:
        return f"{secs} seconds"
    text = f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{text} {secs} s" if secs else text


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def as_map(value: Any) -> Mapping[str, Any]:
    """A JSON object from the summary, or an empty one when absent or of the wrong type."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


# --- charts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    label: str
    values: Sequence[float | None]
    css: str
    dashed: bool = False


@dataclass(frozen=True)
class Budget:
    label: str
    value: float
    css: str


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def downsample(
    t: Sequence[float], series: Mapping[str, Sequence[Any]], aggregators: Mapping[str, Callable], limit: int
) -> tuple[list[float], dict[str, list[float | None]]]:
    """Cut every series to at most `limit` buckets; each bucket keeps its first time and the
    aggregate of its numeric values (max for latency, so a short spike stays visible)."""
    n = len(t)
    buckets = min(n, limit)
    bounds = [round(i * n / buckets) for i in range(buckets + 1)] if buckets else [0]
    times = [float(t[bounds[i]]) for i in range(buckets)]
    out: dict[str, list[float | None]] = {}
    for key, values in series.items():
        agg = aggregators.get(key, _mean)
        column: list[float | None] = []
        for i in range(buckets):
            chunk = [float(v) for v in values[bounds[i] : bounds[i + 1]] if _is_num(v)]
            column.append(agg(chunk) if chunk else None)
        out[key] = column
    return times, out


def _nice_step(span: float) -> float:
    raw = span / 5
    base = 10 ** math.floor(math.log10(raw))
    return next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= raw)


def chart(
    caption: str,
    t: Sequence[float],
    lines: Sequence[Line],
    budgets: Sequence[Budget] = (),
    unit: str = "",
    shade: tuple[float, float] | None = None,
    drills: Sequence[tuple[float, float, str]] = (),
    *,
    marks: Sequence[tuple[float, float]] = (),
    mark_label: str = "",
    height: int = 260,
) -> str:
    """An SVG line chart (x: seconds from the start) with dashed horizontal budget lines; the
    gate window and the drills' windows (start, end, name) are shaded; `marks` are stretches of
    time drawn as red bands along the top (labelled `mark_label` in the legend)."""
    width, left, right, top, bottom = 900, 58, 96, 24, 28
    numbers = [v for line in lines for v in line.values if _is_num(v)]
    if len(t) < 2 or not numbers:
        return (
            f"<figure><figcaption>{_e(caption)}</figcaption>"
            f'<p class="empty">No data was recorded for this chart.</p></figure>'
        )
    x0, x1 = float(t[0]), float(t[-1])
    x1 = x1 if x1 > x0 else x0 + 1
    y_top = max([*numbers, *(b.value for b in budgets), 0.0])
    step = _nice_step(y_top if y_top > 0 else 1.0)
    y_max = step * math.ceil(y_top * 1.05 / step) if y_top > 0 else step * 5
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return round(left + (x - x0) / (x1 - x0) * plot_w, 1)

    def py(y: float) -> float:
        return round(top + plot_h - y / y_max * plot_h, 1)

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(caption)}">']
    if shade is not None:
        s0, s1 = max(shade[0], x0), min(shade[1], x1)
        if s1 > s0:
            parts.append(
                f'<rect class="gate" x="{px(s0)}" y="{top}" width="{round(px(s1) - px(s0), 1)}" '
                f'height="{plot_h}"><title>gate window (budgets judged here)</title></rect>'
            )
    for d0, d1, name in drills:
        s0, s1 = max(d0, x0), min(d1, x1)
        if s1 > s0:
            parts.append(
                f'<rect class="drill" x="{px(s0)}" y="{top}" width="{round(px(s1) - px(s0), 1)}" '
                f'height="{plot_h}"><title>drill {_e(name)}</title></rect>'
                f'<text class="drill-label" x="{px(s0) + 3}" y="{top + 12}">{_e(name)}</text>'
            )
    for m0, m1 in marks:
        a, b = max(m0, x0), min(m1, x1)
        if b > a:
            parts.append(
                f'<rect class="unhealthy" x="{px(a)}" y="{top}" width="{max(round(px(b) - px(a), 1), 1.0)}" '
                f'height="8"><title>{_e(mark_label)}</title></rect>'
            )
    tick = 0.0
    while tick <= y_max + step / 2:
        y = py(tick)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y}" y2="{y}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{_e(fmt_num(tick))}</text>')
        tick += step
    x_step = next((s for s in TIME_STEPS if (x1 - x0) / s <= 8), TIME_STEPS[-1])
    x_tick = math.ceil(x0 / x_step) * x_step
    while x_tick <= x1:
        x = px(x_tick)
        parts.append(f'<line class="axis" x1="{x}" x2="{x}" y1="{top + plot_h}" y2="{top + plot_h + 4}"/>')
        parts.append(f'<text x="{x}" y="{height - 8}" text-anchor="middle">{_clock(x_tick - x0)}</text>')
        x_tick += x_step
    parts.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
    )
    parts.append(f'<text x="{left - 6}" y="{top - 10}" text-anchor="end">{_e(unit)}</text>')
    for line in lines:
        d = _path(t, line.values, px, py)
        if d:
            dash = " dashed" if line.dashed else ""
            parts.append(
                f'<path class="series {line.css}{dash}" d="{d}"><title>{_e(line.label)}</title></path>'
            )
    label_y = _spread([py(b.value) for b in budgets], gap=13)
    for budget, text_y in zip(budgets, label_y, strict=True):
        y = py(budget.value)
        parts.append(
            f'<line class="budget {budget.css}" x1="{left}" x2="{width - right}" y1="{y}" y2="{y}">'
            f"<title>{_e(budget.label)}</title></line>"
        )
        parts.append(
            f'<text class="budget-label {budget.css}" x="{width - right + 4}" y="{round(text_y + 4, 1)}">'
            f"{_e(budget.label)}</text>"
        )
    parts.append("</svg>")
    legend = [_legend_item(line.label, line.css, line.dashed) for line in lines]
    legend += [_legend_item(b.label, b.css, True) for b in budgets]
    if shade is not None:
        legend.append('<li class="note">shaded: gate window (budgets are judged here)</li>')
    if drills:
        legend.append('<li class="note">orange: drills (platform trouble, judged apart)</li>')
    if marks:
        legend.append(f'<li class="note"><span class="band"></span>{_e(mark_label)}</li>')
    return (
        f"<figure><figcaption>{_e(caption)}</figcaption>{''.join(parts)}"
        f'<ul class="legend">{"".join(legend)}</ul></figure>'
    )


def _spread(ys: Sequence[float], gap: float) -> list[float]:
    """Label positions near `ys` but at least `gap` apart, so close budget lines stay legible."""
    order = sorted(range(len(ys)), key=lambda i: ys[i], reverse=True)  # bottom first, push upwards
    out = list(ys)
    for below, above in pairwise(order):
        out[above] = min(out[above], out[below] - gap)
    return out


def _legend_item(label: str, css: str, dashed: bool) -> str:
    dash = " dashed" if dashed else ""
    return f'<li class="{css}"><span class="swatch{dash}"></span>{_e(label)}</li>'


def _path(
    t: Sequence[float], values: Sequence[Any], px: Callable[[float], float], py: Callable[[float], float]
) -> str:
    """SVG path data; a missing value breaks the line instead of drawing it down to zero."""
    out: list[str] = []
    pen_down = False
    for x, y in zip(t, values, strict=False):
        if not _is_num(y):
            pen_down = False
            continue
        out.append(f"{'L' if pen_down else 'M'}{px(float(x))} {py(float(y))}")
        pen_down = True
    return " ".join(out)


# --- sections -------------------------------------------------------------------------------


def _window_seconds(window: Mapping[str, Any]) -> Any:
    """The gate time actually run: end - start when both are known (a stopped run is shorter than
    its plan), else the recorded seconds."""
    try:
        start = datetime.fromisoformat(str(window.get("start")))
        end = datetime.fromisoformat(str(window.get("end")))
    except ValueError:
        return window.get("seconds")
    span = (end - start).total_seconds()
    seconds = window.get("seconds")
    return min(span, seconds) if _is_num(seconds) and span >= 0 else span


ENDED_EARLY = {
    "stopped": "the run was stopped",
    "interrupted": "the run was interrupted",
    "generator_died": "the load generator died",
}


def verdict_text(summary: Mapping[str, Any]) -> tuple[str, str]:
    """(css class, one sentence a non-engineer can act on)."""
    verdict = str(summary.get("verdict") or "unknown")
    held = _dig(summary, "qps", "held")
    p99 = _dig(summary, "latency_ms", "p99")
    seconds = _window_seconds(as_map(summary.get("window")))
    held_text = f"{fmt_num(held)} requests/s" if _is_num(held) else "an unknown rate"
    figures = f"the service held {held_text} for {_duration(seconds)} with p99 {fmt_ms(p99)}"
    arrivals = _dig(summary, "qps", "arrivals_held")
    if _is_num(arrivals):  # journeys the generator started (absent in older summaries)
        planned = fmt_num(_dig(summary, "qps", "target"))
        figures += f", {fmt_num(arrivals)} arrivals/s sent of {planned} planned"
    checks = [c for c in as_list(summary.get("checks")) if isinstance(c, Mapping)]
    failed = [c for c in checks if not c.get("ok")]
    abort = _dig(summary, "abort", "reason")
    if verdict == "pass":
        return "pass", f"Ready: {figures}, within every budget."
    if verdict == "fail":
        if abort:
            return "fail", f"Not ready: the run was stopped early ({abort})."
        return "fail", f"Not ready: {figures}, but {len(failed)} of {len(checks)} checks failed."
    ending = as_map(summary.get("ending"))
    if verdict == "inconclusive" and ending.get("how") in ENDED_EARLY:
        return "inconclusive", (
            f"Inconclusive: {ENDED_EARLY[str(ending['how'])]} before the plan's end, so this run cannot "
            f"tell whether the event can go live ({figures})."
        )
    if verdict == "inconclusive":
        limited = any(c.get("name") in GENERATOR_CHECKS for c in failed)
        why = (
            "the load generator, not the service, was the limit"
            if limited
            else "the run cannot vouch for the service (see why below)"
        )
        return "inconclusive", (
            f"Inconclusive: {why}, so this run cannot tell whether the event can go live ({figures})."
        )
    return "unknown", f"No verdict was recorded ({figures})."


def _verdict_section(summary: Mapping[str, Any]) -> str:
    css, sentence = verdict_text(summary)
    reasons = [r for r in as_list(summary.get("reasons")) if r]
    items = "".join(f"<li>{_e(r)}</li>" for r in reasons)
    exit_code = summary.get("exit_code")
    code = f'<p class="note">Exit code {_e(exit_code)}.</p>' if exit_code is not None else ""
    return (
        f'<section class="verdict {css}" id="verdict"><p class="headline">{_e(sentence)}</p>'
        f"{f'<ul>{items}</ul>' if items else ''}{code}</section>"
    )


def _cards(summary: Mapping[str, Any]) -> str:
    lat = as_map(summary.get("latency_ms"))
    req = as_map(summary.get("requests"))
    qps = as_map(summary.get("qps"))
    cards = [
        ("Arrivals/s sent", fmt_num(qps.get("arrivals_held")), f"planned {fmt_num(qps.get('target'))}"),
        ("Requests/s held", fmt_num(qps.get("held")), "successful requests"),
        (
            "p99 latency",
            fmt_ms(lat.get("p99")),
            f"p95 {fmt_ms(lat.get('p95'))}, p50 {fmt_ms(lat.get('p50'))}",
        ),
        ("Error rate", fmt_pct(summary.get("error_rate")), f"{fmt_num(req.get('errors'))} errors"),
        ("Requests", fmt_num(req.get("count")), f"{fmt_num(req.get('expected_outcomes'))} expected outcomes"),
    ]
    body = "".join(
        f'<div class="card"><div class="label">{_e(label)}</div><div class="value">{_e(value)}</div>'
        f'<div class="sub">{_e(sub)}</div></div>'
        for label, value, sub in cards
    )
    return f'<div class="cards">{body}</div>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> str:
    """A table from already-formatted cells; cells are escaped here, marks come in as (text, css)."""
    nums = set(numeric)
    head = "".join(f"<th{' class=num' if i in nums else ''}>{_e(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            if isinstance(cell, tuple):
                text, css = cell
                cells.append(f'<td><span class="{css}">{_e(text)}</span></td>')
            else:
                cells.append(f"<td{' class=num' if i in nums else ''}>{_e(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        return '<p class="empty">Nothing recorded.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _mark(ok: Any) -> tuple[str, str]:
    if ok is None:
        return ("? unknown", "mark-warn")
    return ("✔ pass", "mark-pass") if ok else ("✘ fail", "mark-fail")


KINDS = {"budget": "service budget", "integrity": "integrity", "health": "generator health"}
EFFECT_MARKS = {
    "pass": ("✔ pass", "mark-pass"),
    "fail": ("✘ fail", "mark-fail"),
    "inconclusive": ("? doubtful", "mark-warn"),
}


def _checks_section(summary: Mapping[str, Any]) -> str:
    checks = [c for c in as_list(summary.get("checks")) if isinstance(c, Mapping)]
    order = list(KINDS)
    checks.sort(key=lambda c: order.index(c.get("kind")) if c.get("kind") in order else len(order))
    rows = [
        (
            str(c.get("name", "?")),
            KINDS.get(str(c.get("kind")), str(c.get("kind") or DASH)),
            fmt_measure(c.get("observed"), c.get("unit")),
            fmt_measure(c.get("limit"), c.get("unit")),
            EFFECT_MARKS[effect_of(c)],
        )
        for c in checks
    ]
    return (
        "<h2>Checks</h2>"
        '<p class="note">A failed service budget or integrity check means not ready; a failed generator '
        "health check means the run cannot tell, and so does a latency or QPS budget missed while the "
        "generator was the limit (marked doubtful).</p>"
        + _table(("Check", "Judges", "Observed", "Limit", "Result"), rows, numeric=(2, 3))
    )


def _offset(summary: Mapping[str, Any], t: Sequence[float]) -> tuple[float, float] | None:
    """The gate window on the chart's time axis (t in seconds from the start, or epoch seconds)."""
    try:
        start = datetime.fromisoformat(str(_dig(summary, "window", "start"))).timestamp()
        end = datetime.fromisoformat(str(_dig(summary, "window", "end"))).timestamp()
        if float(t[0]) > 1e9:
            return start, end
        began = datetime.fromisoformat(str(summary.get("started_at"))).timestamp()
    except (TypeError, ValueError):
        return None
    return start - began, end - began


def _charts_section(summary: Mapping[str, Any]) -> str:
    ts = as_map(summary.get("timeseries"))
    raw_t = [v for v in as_list(ts.get("t")) if _is_num(v)]
    keys = ("qps", "arrivals", "target_qps", "errors", "p50", "p95", "p99", *GENERATOR_KEYS)
    # summaries written before the arrivals series have none: no line rather than a flat zero
    has_arrivals = any(_is_num(v) for v in as_list(ts.get("arrivals")))
    series = {k: list(ts.get(k) or [])[: len(raw_t)] for k in keys}
    series = {k: v + [None] * (len(raw_t) - len(v)) for k, v in series.items()}
    aggregators = {"p50": max, "p95": max, "p99": max, "lag_p99_ms": max, "unhealthy": max}
    t, s = downsample(raw_t, series, aggregators, MAX_POINTS)
    shade = _offset(summary, t) if t else None
    drills = _drill_spans(summary)
    budgets_raw = as_map(_dig(summary, "plan", "raw", "budgets"))
    qps_budgets = []
    if _is_num(budgets_raw.get("qps_min")):
        qps_budgets.append(
            Budget(f"QPS ≥ {fmt_num(budgets_raw['qps_min'])}", float(budgets_raw["qps_min"]), "c4")
        )
    lat_budget = as_map(budgets_raw.get("latency_ms"))
    lat_budgets = [
        Budget(f"{p} ≤ {fmt_num(lat_budget[p])} ms", float(lat_budget[p]), css)
        for p, css in (("p50", "c1"), ("p95", "c3"), ("p99", "c4"))
        if isinstance(lat_budget, Mapping) and _is_num(lat_budget.get(p))
    ]
    note = ""
    if len(raw_t) > len(t):
        note = (
            f'<p class="note">Long series are shown in {len(t)} buckets: QPS and errors averaged, '
            "latency percentiles at their bucket maximum.</p>"
        )
    return (
        "<h2>Over time</h2>"
        + note
        + chart(
            "Throughput: requests and arrivals (journeys started) per second against the plan",
            t,
            [
                Line("requests/s", s["qps"], "c1"),
                *([Line("arrivals/s sent", s["arrivals"], "c2")] if has_arrivals else []),
                Line("planned arrivals/s", s["target_qps"], "ct", dashed=True),
            ],
            qps_budgets,
            "per s",
            shade,
            drills,
        )
        + _generator_charts(t, s, shade)
        + chart(
            "Latency percentiles (corrected for coordinated omission) against the budgets",
            t,
            [Line("p50", s["p50"], "c1"), Line("p95", s["p95"], "c3"), Line("p99", s["p99"], "c4")],
            lat_budgets,
            "ms",
            shade,
            drills,
        )
        + chart("Errors per second", t, [Line("errors/s", s["errors"], "c4")], (), "err/s", shade, drills)
    )


def _drill_spans(summary: Mapping[str, Any]) -> list[tuple[float, float, str]]:
    """The drills' windows on the charts' time axis (plan seconds, as the time series)."""
    spans = []
    for drill in as_list(summary.get("drills")):
        drill = as_map(drill)
        at, length = drill.get("at"), drill.get("for")
        if _is_num(at) and _is_num(length):
            spans.append((float(at), float(at) + float(length), str(drill.get("name") or "drill")))
    return spans


def _rehearsal_section(summary: Mapping[str, Any]) -> str:
    """The service under test and the drills: who was judged, and how each drill went."""
    out = ""
    service = summary.get("service")
    if isinstance(service, Mapping):
        command = " ".join(str(w) for w in as_list(service.get("command")))
        state = "ran to the end" if service.get("ok") else str(service.get("problem") or "failed")
        text, css = _mark(service.get("ok"))
        pid, ready = service.get("pid"), fmt_num(service.get("ready_s"))
        out += (
            "<h2>The service under test</h2>"
            f'<p><span class="{css}">{_e(text)}</span> {_e(service.get("host") or DASH)}: {_e(state)}.</p>'
            f'<p class="note">Started by loadkit as <code>{_e(command)}</code> (pid {_e(pid)}), '
            f"ready in {_e(ready)} s; its log: {_e(service.get('log') or DASH)}.</p>"
        )
    drills = [as_map(d) for d in as_list(summary.get("drills"))]
    if drills:
        rows = [
            (
                str(d.get("name", "?")),
                f"{fmt_num(d.get('at'))}–{fmt_num((d.get('at') or 0) + (d.get('for') or 0))} s",
                fmt_pct(d.get("error_rate")),
                fmt_ms(d.get("p99_ms")),
                fmt_ms(d.get("max_ms_service")),
                "not within the run" if d.get("recovery_s") is None else f"{fmt_num(d.get('recovery_s'))} s",
                f"{fmt_num(d.get('recovery_budget_s'))} s",
                _mark(d.get("ok")),
            )
            for d in drills
        ]
        out += (
            "<h2>Drills</h2>"
            "<p class=\"note\">Platform trouble on the plan's timeline, judged apart: the gate's "
            "budgets leave each drill and its recovery allowance out. Recovery: from the drill's end "
            "until the error rate and the 5-s p99 are back within budget for 5 s in a row.</p>"
            + _table(
                ("Drill", "Window", "Error rate", "p99", "Longest wait", "Recovery", "Budget", "Result"),
                rows,
                numeric=(2, 3, 4, 5, 6),
            )
        )
    return out


GENERATOR_KEYS = ("lag_p99_ms", "unhealthy", "late_generator", "late_users", "late_target")


def _generator_charts(
    t: Sequence[float], s: Mapping[str, Sequence[float | None]], shade: tuple[float, float] | None
) -> str:
    """Under the throughput chart, on the same time axis: the generator's event-loop lag with its
    unhealthy seconds marked, and the late arrivals of each second by who caused them. Summaries
    written before the generator's health was measured per second have neither."""
    if not any(_is_num(v) for v in s["lag_p99_ms"]):
        return ""
    step = t[1] - t[0] if len(t) > 1 else 1.0
    marks = [(x, x + step) for x, bad in zip(t, s["unhealthy"], strict=False) if _is_num(bad) and bad > 0]
    lag = chart(
        "Load generator: event-loop lag p99 per second (the worst process that sends arrivals)",
        t,
        [Line("loop lag p99", s["lag_p99_ms"], "c2")],
        [Budget(f"limit {fmt_num(LAG_P99_LIMIT_MS)} ms", LAG_P99_LIMIT_MS, "c4")],
        "ms",
        shade,
        marks=marks,
        mark_label="unhealthy second: loop lag or CPU (ran + waited) over its limit",
        height=170,
    )
    late = [s[k] for k in ("late_generator", "late_users", "late_target")]
    if not any(_is_num(v) and v > 0 for values in late for v in values):
        return lag
    return lag + chart(
        "Late arrivals per second, by who made them late (by the second they were due)",
        t,
        [
            Line("the generator (loop or CPU)", s["late_generator"], "c4"),
            Line("too few free users", s["late_users"], "c3"),
            Line("the target (every user waiting on it)", s["late_target"], "c1"),
        ],
        (),
        "per s",
        shade,
        height=170,
    )


def _load_section(summary: Mapping[str, Any]) -> str:
    arr = as_map(summary.get("arrivals"))
    gen = as_map(summary.get("generator"))
    scheduled = arr.get("scheduled")

    def share(key: str) -> str:
        value = arr.get(key)
        if _is_num(value) and _is_num(scheduled) and scheduled > 0:
            return f"{fmt_num(value)} ({fmt_pct(value / scheduled)} of scheduled)"
        return fmt_num(value)

    rows = [
        ("Arrivals scheduled", fmt_num(scheduled)),
        ("Arrivals sent", fmt_num(arr.get("sent"))),
        ("Arrivals late (no free user on time)", share("late")),
        ("Arrivals dropped (never sent)", share("dropped")),
        (
            "Generator CPU, max / average",
            f"{_pct_plain(gen.get('cpu_max'))} / {_pct_plain(gen.get('cpu_avg'))}",
        ),
        ("Seconds a generator process ran above 85% CPU", fmt_num(gen.get("cpu_high_s"))),
        (
            "Event-loop lag p99 / max (worst process that sends arrivals)",
            f"{fmt_ms(gen.get('lag_p99_ms'))} / {fmt_ms(gen.get('lag_max_ms'))}",
        ),
        ("Seconds unhealthy (the longest of any process)", fmt_num(gen.get("unhealthy_s"))),
        *_late_rows(gen),
        ("Generator processes (workers)", fmt_num(gen.get("workers"))),
        ("Workers lost during the run", fmt_num(gen.get("workers_lost"))),
    ]
    processes = [p for p in as_list(gen.get("processes")) if isinstance(p, Mapping)]
    per_process = [
        (
            str(p.get("name", "?")),
            fmt_ms(p.get("lag_p99_ms")),
            fmt_ms(p.get("lag_max_ms")),
            f"{_pct_plain(p.get('cpu_max'))} / {_pct_plain(p.get('cpu_avg'))}",
            _pct_plain(p.get("cpu_wait_max")),
            fmt_num(p.get("unhealthy_s")),
            fmt_num(p.get("free_min")) if p.get("paces") else "does not pace",
        )
        for p in processes
    ]
    table = ""
    if per_process:
        table = "<h3>Each generator process</h3>" + _table(
            (
                "Process",
                "Loop lag p99",
                "Loop lag max",
                "CPU max / avg",
                "Waited for a core",
                "Unhealthy s",
                "Fewest free users",
            ),
            per_process,
            range(1, 6),
        )
    return (
        "<h2>Load generator health</h2>"
        '<p class="note">Each process measures itself every second: how late its event loop wakes a '
        f"10-ms sleep, and its CPU (time it ran plus time it waited for a core). A second with loop lag "
        f"p99 above {fmt_num(LAG_P99_LIMIT_MS)} ms, max above {fmt_num(LAG_MAX_LIMIT_MS)} ms or CPU above "
        f"{fmt_num(CPU_LIMIT)}% is unhealthy: arrivals late in it are the generator's, and if that lasts, "
        "the figures describe the generator rather than the service.</p>"
        + _table(("Item", "Value"), rows, (1,))
        + table
    )


def _late_rows(gen: Mapping[str, Any]) -> list[tuple[str, str]]:
    late = [as_map(gen.get("late")), as_map(gen.get("unsent"))]
    if not any(late):
        return []
    by = {key: sum(int(c.get(key) or 0) for c in late) for key in ("generator", "users", "target")}
    return [
        ("Late, dropped or never sent because of the generator's loop or CPU", fmt_num(by["generator"])),
        ("... because too few users were free (busy, not waiting on the target)", fmt_num(by["users"])),
        ("... because every user was waiting on the target", fmt_num(by["target"])),
    ]


def _pct_plain(value: Any) -> str:
    return f"{value:.0f}%" if _is_num(value) else DASH


def _latency_section(summary: Mapping[str, Any]) -> str:
    corrected = as_map(summary.get("latency_ms"))
    service = as_map(summary.get("latency_ms_service"))
    keys = ("p50", "p90", "p95", "p99", "max")
    rows = [
        ("corrected (from the intended start)", *(fmt_ms(corrected.get(k)) for k in keys)),
        ("service (from the actual send)", *(fmt_ms(service.get(k)) for k in keys)),
    ]
    return (
        "<h3>Latency over the gate window</h3>"
        + _table(("Measured", *keys), rows, numeric=range(1, 6))
        + '<p class="note">Budgets judge the corrected figures: a request that had to wait for a free '
        "user counts that wait.</p>"
    )


def _endpoints_section(summary: Mapping[str, Any]) -> str:
    endpoints = as_map(summary.get("endpoints"))
    rows = []
    for name, ep in sorted(endpoints.items()) if isinstance(endpoints, Mapping) else []:
        ep = ep if isinstance(ep, Mapping) else {}
        lat = as_map(ep.get("latency_ms"))
        outcomes = as_map(ep.get("outcomes"))
        rows.append(
            (
                str(name),
                fmt_num(ep.get("requests")),
                fmt_num(ep.get("errors")),
                fmt_pct(ep.get("error_rate")),
                fmt_num(ep.get("qps_held")),
                fmt_ms(lat.get("p50")),
                fmt_ms(lat.get("p95")),
                fmt_ms(lat.get("p99")),
                fmt_ms(lat.get("max")),
                ", ".join(f"{k}: {fmt_num(v)}" for k, v in outcomes.items()) or DASH,
            )
        )
    headers = (
        "Endpoint",
        "Requests",
        "Errors",
        "Error rate",
        "QPS held",
        "p50",
        "p95",
        "p99",
        "max",
        "Outcomes",
    )
    return "<h2>Per endpoint</h2>" + _table(headers, rows, numeric=range(1, 9))


def _errors_section(summary: Mapping[str, Any]) -> str:
    outcomes = as_map(summary.get("outcomes"))
    errors = [e for e in as_list(summary.get("errors")) if isinstance(e, Mapping)]
    out = ""
    if outcomes:
        rows = [(str(k), fmt_num(v)) for k, v in outcomes.items()]
        out += "<h3>Expected business outcomes (counted as successes)</h3>" + _table(
            ("Outcome", "Count"), rows, (1,)
        )
    rows = [(str(e.get("name", "")), str(e.get("error", "")), fmt_num(e.get("occurrences"))) for e in errors]
    out += "<h3>Errors</h3>" + _table(("Request", "Error", "Occurrences"), rows, (2,))
    return out


def _audit_section(summary: Mapping[str, Any]) -> str:
    audit = summary.get("audit")
    recon = summary.get("reconciliation")
    if not audit and not recon:
        return ""
    out = "<h2>Mock platform audit and reconciliation</h2>"
    if isinstance(audit, Mapping):
        ok = audit.get("ok")
        out += f'<p>Ledger audit: <span class="{_mark(ok)[1]}">{_e(_mark(ok)[0])}</span></p>'
        violations = as_list(audit.get("violations"))
        if violations:
            out += "<ul>" + "".join(f"<li>{_e(v)}</li>" for v in violations) + "</ul>"
        methods = as_map(_dig(audit, "totals", "methods"))
        rows = [
            (
                str(m),
                *(fmt_num(c.get(k)) for k in ("ok", "effects", "replays", "business_failures")),
            )
            for m, c in methods.items()
            if isinstance(c, Mapping)
        ]
        if rows:
            out += "<h3>Ledger totals per method</h3>" + _table(
                ("Method", "Successful answers", "Effects", "Replays", "Business failures"), rows, range(1, 5)
            )
        out += _budget_totals(as_map(_dig(audit, "totals")))
    if isinstance(recon, Mapping) and recon.get("mode") in ("two-way", "three-way"):
        ok = recon.get("ok")
        out += (
            f"<p>Reconciliation by id ({_e(recon.get('mode'))}): "
            f'<span class="{_mark(ok)[1]}">{_e(_mark(ok)[0])}</span> — '
            f"{_e(fmt_num(recon.get('told')))} grants users were told about, "
            f"{_e(fmt_num(recon.get('records')))} service records, "
            f"{_e(fmt_num(recon.get('effects')))} ledger effects.</p>"
        )
        rows = [
            (kind.replace("_", " "), fmt_num(as_map(recon.get(kind)).get("count")),
             ", ".join(str(i) for i in as_list(as_map(recon.get(kind)).get("first"))[:5]) or DASH)
            for kind in ("phantom", "orphan", "paid_twice", "over_limit", "unconfirmed")
        ]  # fmt: skip
        out += _table(("Finding", "Count", "First ids"), rows, (1,))
        problems = as_list(recon.get("problems"))
        if problems:
            out += "<ul>" + "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul>"
    elif isinstance(recon, Mapping):
        ok = recon.get("ok")
        out += f'<p>Reconciliation: <span class="{_mark(ok)[1]}">{_e(_mark(ok)[0])}</span></p>'
        rows = [
            (
                str(m),
                *(fmt_num(c.get(k)) for k in ("seen_successes", "seen_errors", "replays", "effects")),
                _mark(c.get("ok")),
            )
            for m, c in as_map(recon.get("methods")).items()
            if isinstance(c, Mapping)
        ]
        out += _table(
            ("Method", "Successes seen", "Errors seen", "Replays", "Ledger effects", "Result"),
            rows,
            range(1, 5),
        )
        problems = as_list(recon.get("problems"))
        if problems:
            out += "<ul>" + "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul>"
    return out


def _budget_totals(totals: Mapping[str, Any]) -> str:
    """Stock and budgets used, the figures an operations person compares with the campaign setup."""
    rows: list[tuple[str, str, str]] = []
    for key, item in as_map(totals.get("vouchers")).items():
        rows.append(
            (
                f"voucher activity {key}",
                f"{fmt_num(item.get('issued'))} issued",
                f"{fmt_num(item.get('stock'))} stock",
            )
        )
    for key, item in as_map(totals.get("cash")).items():
        paid = item.get("paid_fen")
        budget = item.get("budget_fen")
        rows.append(
            (
                f"cash campaign {key}",
                f"{_yuan(paid)} paid in {fmt_num(item.get('count'))} envelopes",
                f"{_yuan(budget)} budget",
            )
        )
    for key, item in as_map(totals.get("points")).items():
        rows.append(
            (
                f"points budget {key}",
                f"{fmt_num(item.get('sent'))} points sent",
                f"{fmt_num(item.get('budget'))} budget",
            )
        )
    if not rows:
        return ""
    return "<h3>Stock and budgets used</h3>" + _table(("Campaign", "Used", "Available"), rows)


def _yuan(fen: Any) -> str:
    return f"¥{fen / 100:,.2f}" if _is_num(fen) else DASH


def _plan_section(summary: Mapping[str, Any]) -> str:
    raw = _dig(summary, "plan", "raw")
    if not raw:
        return '<h2>The plan that was run</h2><p class="empty">The plan was not recorded.</p>'
    try:
        text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True, width=100)
    except yaml.YAMLError:
        text = json.dumps(raw, indent=2, ensure_ascii=False, default=str)
    return f"<h2>The plan that was run</h2><pre>{_e(text)}</pre>"


def _ending_note(summary: Mapping[str, Any]) -> str:
    ending = as_map(summary.get("ending"))
    how = ending.get("how")
    if how in (None, "completed"):
        return ""
    words = ENDED_EARLY.get(str(how), f"the run ended ({how})")
    at = f" at {ending['at']}" if ending.get("at") else ""
    plan_s = f", {fmt_num(ending['plan_s'])} s into the plan" if _is_num(ending.get("plan_s")) else ""
    detail = f": {ending['detail']}" if ending.get("detail") else ""
    return f'<p class="note" id="ending">Ended early: {_e(words)}{_e(at)}{_e(plan_s)}{_e(detail)}.</p>'


def _baseline_section(summary: Mapping[str, Any]) -> str:
    section = summary.get("baseline")
    if not isinstance(section, Mapping):
        return ""
    run = as_map(section.get("run"))
    where = run.get("run_dir") or (f"history #{run['history_id']}" if run.get("history_id") else DASH)
    differences = [str(d) for d in as_list(section.get("plan_differences"))]
    warning = (
        f'<p class="note">Warning: the plans differ ({_e("; ".join(differences))}).</p>'
        if differences
        else ""
    )

    def value(row: Mapping[str, Any], key: str) -> str:
        return fmt_measure(row.get(key), row.get("unit"))

    rows = [
        (
            str(r.get("figure", "?")),
            value(r, "baseline"),
            value(r, "current"),
            DASH if not _is_num(r.get("delta_pct")) else f"{r['delta_pct']:+.1f}%",
            value(r, "allowed"),
            _change_mark(r.get("change")),
        )
        for r in as_list(section.get("figures"))
        if isinstance(r, Mapping)
    ]
    return (
        f'<h2 id="baseline">Against the baseline run</h2><p class="note">Baseline {_e(where)} (plan '
        f"{_e(run.get('plan') or DASH)}, started {_e(run.get('started_at') or DASH)}, "
        f"{_e(run.get('verdict') or DASH)}). A figure may move by "
        f"{_e(fmt_pct(section.get('max_regression')))}, its absolute floor or the runs' own noise, "
        "whichever is largest.</p>"
        + warning
        + _table(
            ("Figure", "Baseline", "This run", "Change", "Allowed", "Result"), rows, numeric=(1, 2, 3, 4)
        )
    )


def _change_mark(change: Any) -> tuple[str, str]:
    if change == "worse":
        return ("✘ worse", "mark-fail")
    return (str(change or DASH), "mark-warn" if change == "unknown" else "mark-pass")


def _trend_section(trend: Sequence[Mapping[str, Any]]) -> str:
    if not trend:
        return ""
    rows = [
        (
            f"#{t.get('id')}",
            str(t.get("started_at") or DASH),
            str(t.get("verdict") or DASH),
            str(t.get("ending") or DASH),
            fmt_num(t.get("qps_held")),
            fmt_ms(t.get("p99_ms")),
        )
        for t in trend
    ]
    return f'<h2 id="trend">Trend: the plan\'s last {len(trend)} runs</h2>' + _table(
        ("Run", "Started", "Verdict", "Ended", "Requests/s held", "p99"), rows, numeric=(4, 5)
    )


def render(summary: dict[str, Any], trend: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The complete report.html for one summary.json document; `trend` (the plan's last runs
    from the history, oldest first) adds a table of them."""
    if not isinstance(summary, Mapping):
        raise TypeError(f"a summary must be a JSON object, not {type(summary).__name__}")
    plan = as_map(summary.get("plan"))
    name = plan.get("name") or "unnamed plan"
    window = as_map(summary.get("window"))
    stages = ", ".join(str(s) for s in as_list(window.get("stages"))) or DASH
    meta = (
        f"Target {_e(plan.get('host') or DASH)} · plan file {_e(plan.get('file') or DASH)} · "
        f"run {_e(summary.get('started_at') or DASH)} to {_e(summary.get('finished_at') or DASH)} · "
        f"judged on stage(s) {_e(stages)} ({_e(_duration(_window_seconds(window)))})"
    )
    body = (
        f'<h1>Event readiness: {_e(name)}</h1><p class="meta">{meta}</p>'
        + _verdict_section(summary)
        + _ending_note(summary)
        + _cards(summary)
        + _checks_section(summary)
        + _baseline_section(summary)
        + _charts_section(summary)
        + _latency_section(summary)
        + _load_section(summary)
        + _endpoints_section(summary)
        + _errors_section(summary)
        + _rehearsal_section(summary)
        + _audit_section(summary)
        + _trend_section(trend or [])
        + _plan_section(summary)
        + f'<p class="note">Generated by {_e(summary.get("tool") or "loadkit")} '
        f"from summary.json schema {_e(summary.get('schema', DASH))}.</p>"
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{_e(summary.get('verdict', 'report'))}: {_e(name)} · loadkit</title>"
        f"<style>{_css()}</style></head><body>{body}</body></html>\n"
    )
