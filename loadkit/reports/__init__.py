"""The report directory of a run: summary.json, junit.xml, summary.md and report.html.

summary.json is written first: it is the source of truth, and `loadkit report DIR` can re-render
the others from it if a later one could not be written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from loadkit.measure.summary import dumps
from loadkit.reports.junit import render_junit
from loadkit.reports.markdown import render_markdown

log = logging.getLogger("loadkit")


def default_run_dir(plan_name: str) -> Path:
    """reports/<plan>-<local time>: one directory per run, named so they sort by time."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", plan_name).strip("-") or "plan"
    return Path("reports") / f"{slug}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def unique_dir(base: Path) -> Path:
    """`base`, or `base-2`, `base-3`... when `base` already holds a run's summary: the web UI can
    run a plan several times, and an earlier run's reports are never overwritten."""
    if not base.exists() or not (base / "summary.json").exists():
        return base
    n = 2
    while (candidate := base.with_name(f"{base.name}-{n}")).exists():
        n += 1
    return candidate


def write_all(
    run_dir: str | Path, summary: dict[str, Any], trend: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Path]:
    """Write every report into `run_dir` (created if needed); returns {file name: path}. `trend`
    is the plan's last runs from the history (the renderers never read it themselves)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    def write(name: str, data: bytes) -> None:
        path = run_dir / name
        path.write_bytes(data)
        written[name] = path

    write("summary.json", dumps(summary))
    write("junit.xml", render_junit(summary).encode("utf-8"))
    write("summary.md", render_markdown(summary, trend).encode("utf-8"))
    try:
        from loadkit.reports.html import render
    except ImportError as exc:
        log.warning("loadkit: report.html skipped (the HTML renderer is unavailable: %s)", exc)
        return written
    try:
        html = render(summary, trend)
    except Exception as exc:  # the other reports are written; say so rather than lose them
        log.error("loadkit: report.html not written, the renderer failed: %r", exc)
        return written
    write("report.html", html.encode("utf-8"))
    return written
