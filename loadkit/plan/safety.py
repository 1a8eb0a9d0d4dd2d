"""Which hosts a plan may load: its `safety.allow_hosts`, matched literally, else loopback only.

A load test pointed at the wrong host is an attack, so the rail is checked before any request and
errs on refusing: no DNS lookups, no wildcards, no "looks local" guesses beyond the loopback range.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

DEFAULT_ALLOWED = "loopback addresses (127.0.0.0/8, ::1) and localhost"


class UnsafeHostError(ValueError):
    """The target URL is malformed or not allowed by the plan's safety rails."""


def check_host(url: str, allow_hosts: tuple[str, ...] | None) -> None:
    """Raise UnsafeHostError unless `url` is an http(s) URL whose host is allowed.

    `allow_hosts` given: the host name or address must equal one entry (case-insensitive; IPv6
    with or without brackets). None: only loopback addresses and "localhost".
    """
    if not isinstance(url, str) or not url.strip():
        raise UnsafeHostError(f"refusing to run: target host {url!r} is not a URL")
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise UnsafeHostError(f"refusing to run: target {url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeHostError(
            f"refusing to run: target {url!r} must be an http:// or https:// URL such as http://127.0.0.1:8080"
        )
    if not host:
        raise UnsafeHostError(f"refusing to run: target {url!r} has no host name")
    if allow_hosts is None:
        if _is_loopback(host):
            return
        raise UnsafeHostError(
            f"refusing to run against {url}: host {host} is not allowed; without safety.allow_hosts in "
            f"the plan only {DEFAULT_ALLOWED} are allowed"
        )
    allowed = {_normalize(h) for h in allow_hosts}
    if _normalize(host) not in allowed:
        raise UnsafeHostError(
            f"refusing to run against {url}: host {host} is not in the plan's safety.allow_hosts "
            f"({', '.join(allow_hosts)})"
        )


def _normalize(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def _is_loopback(host: str) -> bool:
    name = _normalize(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
