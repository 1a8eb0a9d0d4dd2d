"""Headless Chromium (Debian's package, driven by Playwright) and Locust web UI helpers.

Every page is confined to loopback: any request to another host is aborted and recorded, so a
test can assert that nothing tried to leave the machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.processes import stop_process

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", ""}
TAB_TITLE = "Event readiness"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium package to run browser tests)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    playwright = sync_api.sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
        )
    except Exception as exc:
        playwright.stop()
        pytest.skip(f"could not launch {CHROMIUM}: {exc}")
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()


@dataclass
class Watched:
    """A page plus what went wrong on it: console errors, page errors, requests off loopback."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


def open_page(browser: object, url: str, *, width: int = 1280, height: int = 900) -> Watched:
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(15_000)
    page = context.new_page()
    watched = Watched(page)

    def route(r: object) -> None:
        parsed = urlparse(r.request.url)
        if parsed.scheme in ("file", "data", "blob") or parsed.hostname in LOCAL_HOSTS:
            r.continue_()
        else:
            watched.blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and watched.console_errors.append(m.text))
    page.on("pageerror", lambda e: watched.page_errors.append(str(e)))
    page.goto(url, wait_until="load")
    return watched


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:g} s")


@dataclass
class LocustUI:
    url: str
    proc: subprocess.Popen
    log: Path


def start_ui_process(argv: list[str], url: str, cwd: Path, *, timeout: float = 30.0) -> LocustUI:
    """Start any command that serves a Locust web UI at `url` (e.g. `loadkit run PLAN --web-port P`);
    return once the UI answers. Output goes to a log file in `cwd`, shown if the UI never comes up."""
    log = cwd / f"ui-{urlparse(url).port}.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(url, timeout, proc)
    except Exception:
        stop_process(proc)
        raise RuntimeError(f"web UI did not start:\n{log.read_text(errors='replace')[-3000:]}") from None
    return LocustUI(url, proc, log)


def start_locust_ui(args: list[str], cwd: Path, *, timeout: float = 30.0) -> LocustUI:
    """`python -m locust ARGS --web-host 127.0.0.1 --web-port <free port>`."""
    port = free_port()
    argv = [sys.executable, "-m", "locust", *args, "--web-host", "127.0.0.1", "--web-port", str(port)]
    return start_ui_process(argv, f"http://127.0.0.1:{port}/", cwd, timeout=timeout)


def start_swarm(page: object, users: int, spawn_rate: float, host: str | None = None) -> None:
    """Fill the UI's start form and press Start (field names from locust/webui's built JS)."""
    user_count = page.locator("input[name=userCount]")
    if user_count.count() and user_count.is_enabled():  # hidden or disabled under a LoadTestShape
        user_count.fill(str(users))
        page.locator("input[name=spawnRate]").fill(str(spawn_rate))
    if host is not None:
        page.locator("input[name=host]").fill(host)
    page.locator("button[type=submit]", has_text="Start").wait_for()
    page.locator("button[type=submit]", has_text="Start").click()


def open_readiness_tab(page: object) -> None:
    page.get_by_role("tab", name=TAB_TITLE).click()
    page.locator("table tbody tr").first.wait_for()


READ_TABLE_JS = """() => Array.from(document.querySelectorAll('table tbody tr'))
    .map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.innerText.trim()))"""


def readiness_rows(page: object) -> dict[str, list[str]]:
    """The tab's table as {item: [observed, limit, status, note]} (a repeated item keeps the last).

    Read in one evaluation: cell by cell, a poll could land between two rows of one reading."""
    table = page.evaluate(READ_TABLE_JS)
    return {cells[0]: [c.replace("\u00a0", " ") for c in cells[1:]] for cells in table if cells}


def wait_for_rows_change(page: object, before: dict[str, list[str]], item: str, timeout: float = 10.0):
    """The next reading whose `item` row differs from `before` (the UI polls every 2 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = readiness_rows(page)
        if rows.get(item) != before.get(item):
            return rows
        page.wait_for_timeout(250)
    raise AssertionError(f"the {item!r} row did not change within {timeout:g} s: {before.get(item)}")
