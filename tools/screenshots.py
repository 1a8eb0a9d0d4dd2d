"""Render the README screenshots: docs/img/report.png and docs/img/webui-tab.png.

    python tools/screenshots.py [--out docs/img] [--summary FILE] [--url URL] [--wait S]

report.png is report.html rendered from a summary.json (by default the recorded sample in
tests/loadkit/fixtures). webui-tab.png is the Event readiness tab of a Locust web UI: either one
already running a test (`--url`, e.g. the UI of `loadkit run PLAN --with-mock`; the script presses
Start if the test has not begun), or a demo Locust started here whose tab replays the summary's
figures with a moving clock (its users do no I/O). Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadkit.reports.html import render  # noqa: E402

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
DEFAULT_SUMMARY = ROOT / "tests" / "loadkit" / "fixtures" / "sample_summary.json"

DEMO_LOCUSTFILE = """
import json
import random
import time

from locust import User, constant, events, task

from loadkit.engine import webui

SUMMARY = json.loads({summary!r})
STARTED = {{"t0": None}}


class ReplayUser(User):
    # no I/O: made-up request events, so Locust's own header shows a plausible rate

    host = {host!r}
    wait_time = constant(0.1)

    @task
    def replay(self):
        for _ in range(24):
            self.environment.events.request.fire(
                request_type="POST", name="points.send", response_time=random.lognormvariate(3.5, 0.6),
                response_length=0, exception=None, context={{}},
            )


@events.test_start.add_listener
def _start(environment, **_kw):
    STARTED["t0"] = time.time() - 137  # as if two minutes into the gate stage


def live():
    if STARTED["t0"] is None:
        return {{}}
    elapsed = time.time() - STARTED["t0"]
    series = SUMMARY["timeseries"]
    i = min(int(elapsed) + 90, len(series["qps"]) - 1)
    return {{
        **SUMMARY,
        "stage": {{"index": 2, "name": "hold", "count": 3, "elapsed_s": elapsed,
                   "remaining_s": max(0.0, 600 - elapsed), "qps_planned": series["target_qps"][i],
                   "gate": True}},
        "qps_now": series["qps"][i],
    }}


@events.init.add_listener
def _init(environment, **_kw):
    webui.install(environment, live)
"""


class ScreenshotError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ScreenshotError(f"the demo Locust exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise ScreenshotError(f"{url} did not answer within {timeout:g} s")


def shoot_report(browser, summary: dict, out: Path, workdir: Path) -> None:
    page_file = workdir / "report.html"
    page_file.write_text(render(summary), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
    page.goto(page_file.as_uri())
    # the README shows the top: verdict, budgets and the two main charts
    box = page.locator("figure").nth(1).bounding_box()
    height = int(box["y"] + box["height"] + 16) if box else 1800
    page.screenshot(path=str(out), full_page=True, clip={"x": 0, "y": 0, "width": 1100, "height": height})
    page.close()


def shoot_tab(browser, url: str, out: Path, wait_s: float) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1200}, device_scale_factor=1)
    page.set_default_timeout(20_000)
    page.goto(url)
    start = page.locator("button[type=submit]", has_text="Start")
    if start.count():
        users = page.locator("input[name=userCount]")
        if users.is_enabled() and not users.input_value():
            users.fill("10")
        start.click()
    page.get_by_role("tab", name="Event readiness").click()
    page.locator("table tbody tr").first.wait_for()
    time.sleep(wait_s)  # let the UI poll fresh rows a few times
    page.screenshot(path=str(out), full_page=True)
    page.close()


def demo_ui(summary: dict, workdir: Path) -> tuple[str, subprocess.Popen]:
    locustfile = workdir / "demo_locustfile.py"
    host = (summary.get("plan") or {}).get("host") or "http://127.0.0.1:8080"
    locustfile.write_text(DEMO_LOCUSTFILE.format(summary=json.dumps(summary), host=host))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    log = (workdir / "locust.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(locustfile),
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(port),
        ],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return f"http://127.0.0.1:{port}/", proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--summary", type=Path, default=DEFAULT_SUMMARY, help="a summary.json")
    parser.add_argument("--url", help="a running Locust web UI on loopback (default: start a demo one)")
    parser.add_argument("--wait", type=float, default=10.0, help="seconds to let the tab update")
    args = parser.parse_args(argv)
    if args.url and urlparse(args.url).hostname not in ("127.0.0.1", "localhost"):
        parser.error("--url must be a loopback address (127.0.0.1 or localhost)")
    if not CHROMIUM.exists():
        print(f"error: {CHROMIUM} is missing (install Debian's chromium package)", file=sys.stderr)
        return 2
    try:
        summary = json.loads(args.summary.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the summary {args.summary}: {exc}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    proc = None
    try:
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                shoot_report(browser, summary, args.out / "report.png", Path(tmp))
                url = args.url
                if url is None:
                    url, proc = demo_ui(summary, Path(tmp))
                    wait_http(url, 30, proc)
                shoot_tab(browser, url, args.out / "webui-tab.png", args.wait)
            finally:
                browser.close()
                if proc is not None:
                    stop(proc)
    except ScreenshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out / 'report.png'} and {args.out / 'webui-tab.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
