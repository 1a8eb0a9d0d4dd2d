"""`campaign-service` / `python -m campaign_service`: flags + environment -> settings -> serve.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 2 for a setting it refuses (one line on
stderr), 1 when it cannot listen. Once it listens it prints the ready line (ready.py) on stdout,
and nothing else goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from campaign_service.api import STATE, create_app
from campaign_service.ready import format_ready_line
from campaign_service.repository import StoreError
from campaign_service.settings import BUGS, Settings, SettingsError, load_settings

__all__ = ["EXIT_CONFIG", "build_parser", "main", "serve"]

log = logging.getLogger("campaign_service")

EXIT_CONFIG = 2
BACKLOG = 1024


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {port}")
    return port


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="campaign-service",
        description="Reference merchant campaign service (Jifenbao points, coupons, follow gift, red "
        "envelopes) calling the Alipay gateway named by CAMPAIGN_GATEWAY_URL, and WeChat (login, WeChat "
        "Pay coupons) when CAMPAIGN_WX_BASE_URL is set. See its README for the environment variables.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8080, help="port to bind; 0 picks a free one (default 8080)")
    p.add_argument("--db", metavar="PATH", help="SQLite file of the grants (overrides CAMPAIGN_DB)")
    p.add_argument("--config", metavar="FILE", help="campaign file, YAML or JSON (overrides CAMPAIGN_CONFIG)")
    p.add_argument(
        "--bug",
        metavar="NAME",
        help=f"plant a known bug that a rehearsal must catch (overrides CAMPAIGN_BUG): {', '.join(BUGS)}",
    )
    return p


async def serve(settings: Settings) -> None:
    """Listen, print the ready line, run until SIGTERM/SIGINT, then drain and close."""
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.shutdown_grace_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, backlog=BACKLOG)
        await site.start()
        host, port = runner.addresses[0][:2]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(format_ready_line(host, port), flush=True)
        await stop.wait()
        log.info("stopping: finishing requests under way (up to %.1f s)", settings.shutdown_grace_s)
        app[STATE].draining = True
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings(
            os.environ, host=args.host, port=args.port, db=args.db, bug=args.bug, config=args.config
        )
    except SettingsError as exc:
        print(f"campaign_service: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if settings.bug is not None:
        log.warning(
            "PLANTED BUG %s is ON: retries after a timeout use a new biz number and can pay twice",
            settings.bug,
        )
    if settings.platform_public_key is None:
        log.warning("CAMPAIGN_INSECURE_NO_VERIFY=1: platform responses are NOT verified")
    try:
        import uvloop
    except ImportError:  # Windows: no uvloop there
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(settings))
    except StoreError as exc:
        print(f"campaign_service: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"campaign_service: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    log.info("stopped")
    return 0
