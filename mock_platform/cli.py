"""`mock-platform` / `python -m mock_platform`: argv -> config -> the app on uvloop.

When ready it prints `mock_platform listening on http://HOST:PORT` (what loadkit waits for) and
the admin token; SIGINT/SIGTERM stop it cleanly. A bad config exits 3 with the key named.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from mock_platform.app import STATE, create_app
from mock_platform.config import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEAD_TIMEOUT_S,
    DEFAULT_KEEPALIVE_TIMEOUT_S,
    ConfigError,
    MockConfig,
    check_timeout,
    load_file,
)
from mock_platform.idempotency import DEFAULT_MAX_ENTRIES, DEFAULT_TTL_S
from mock_platform.serving import start_serving

EXIT_USAGE = 3
SHUTDOWN_TIMEOUT_S = 1.0  # hung (fault-injected) requests must not hold the exit


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {port}")
    return port


def _seconds(text: str) -> float:
    try:
        return check_timeout(float(text), "seconds")
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(
            f"not a number of seconds above 0 and at most a day: {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="mock-platform",
        description="Asyncio mock of the Alipay/WeChat coupon, points and login APIs.",
        epilog=f"Memory: idempotency records (what replays a repeated out_biz_no) are kept "
        f"{DEFAULT_TTL_S:g} s, at most {DEFAULT_MAX_ENTRIES:,} of them, ~0.7-0.9 KB each: under 90 MB "
        f"(config: idempotency: {{ttl_s, max_entries}}).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=0, help="port to bind; 0 picks a free one (default)")
    p.add_argument(
        "--config", metavar="FILE", help="YAML or JSON: seed, faults, codes, idempotency, auth, limits"
    )
    p.add_argument("--admin-token", help="X-Admin-Token for /admin/* (generated and printed when absent)")
    p.add_argument("--profile", metavar="NAME", help="fault preset, e.g. production (default: none)")
    p.add_argument("--strict", action="store_true", help="refuse unsigned gateway calls (40001)")
    p.add_argument(
        "--sign-responses", action="store_true", help="sign every response, not only signed calls'"
    )
    p.add_argument("--debug-hooks", action="store_true", help="enable test-only admin routes")
    p.add_argument(
        "--head-timeout",
        type=_seconds,
        metavar="S",
        help=f"close a connection whose request head is not complete after S seconds "
        f"(default {DEFAULT_HEAD_TIMEOUT_S:g}, as nginx; config: limits.head_timeout_s)",
    )
    p.add_argument(
        "--body-timeout",
        type=_seconds,
        metavar="S",
        help=f"close a connection whose request body is not complete S seconds after its head "
        f"(default {DEFAULT_BODY_TIMEOUT_S:g}; config: limits.body_timeout_s)",
    )
    p.add_argument(
        "--keepalive-timeout",
        type=_seconds,
        metavar="S",
        help=f"close a connection idle for S seconds (default {DEFAULT_KEEPALIVE_TIMEOUT_S:g}, "
        f"aiohttp's; config: limits.keepalive_timeout_s)",
    )
    p.add_argument(
        "--no-fast-path",
        dest="fast_path",
        action="store_false",
        help="serve /gateway.do through aiohttp's request cycle too (slower; to compare with)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> MockConfig:
    raw = load_file(args.config) if args.config else {}
    timeouts = {
        key: value
        for key, value in (
            ("head_timeout_s", args.head_timeout),
            ("body_timeout_s", args.body_timeout),
            ("keepalive_timeout_s", args.keepalive_timeout),
        )
        if value is not None  # given on the command line: it wins over the file's limits
    }
    try:
        return MockConfig.from_mapping(
            raw,
            host=args.host,
            port=args.port,
            admin_token=args.admin_token,
            profile=args.profile,
            strict=args.strict,
            sign_responses=args.sign_responses,
            debug_hooks=args.debug_hooks,
            **timeouts,
        )
    except ConfigError as exc:
        raise ConfigError(f"{args.config}: {exc}" if args.config else str(exc)) from None


# Small young generations, so each collection is short, and no threshold-driven full collection
# in a run (gen 2 only after 10^5 gen-1 collections): the ledger grows by ~6 tracked objects per
# call, and with (50_000, 50, 1_000) every young collection walked 50,000 of them, a ~10-ms pause
# every ~8,000 calls (p99.9 of 11-23 ms at 1,000-2,500 req/s); with these, pauses stay under
# ~2.5 ms for about the same total GC time (BENCHMARKS.md). Cycles that outlive two collections
# stay until exit, as they did before.
GC_THRESHOLDS = (1_000, 10, 100_000)


async def serve(config: MockConfig, *, fast_path: bool = True) -> None:
    """Run until SIGINT or SIGTERM."""
    app = create_app(config)
    serving = await start_serving(
        app, config.host, config.port, front=fast_path, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # The ledger grows by a few objects per call (users, idempotency records), which makes
        # CPython's full collections slower as a run goes on: measured 100+ ms pauses and a p99 of
        # 165 ms at 5,000 req/s with the defaults (see GC_THRESHOLDS). Freezing moves the start-up
        # objects out of the collector's way.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        print(f"mock_platform listening on {serving.url}", flush=True)
        print(f"mock_platform admin token: {app[STATE].admin_token}", flush=True)
        await stop.wait()
    finally:
        await serving.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"mock_platform: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import uvloop
    except ImportError:  # Windows: uvloop does not exist there
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(config, fast_path=args.fast_path))
    except OSError as exc:
        print(f"mock_platform: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    print("mock_platform stopped", flush=True)
    return 0
