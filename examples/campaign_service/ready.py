"""The ready line: the one line the service prints on stdout once it listens.

Whoever starts the service as a subprocess (loadkit's rehearsal, the tests, a CI script) waits for
this line to learn the port it picked (`--port 0`). It is a contract, so it is formatted and parsed
here, in one place, rather than matched with a regex at each caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

PREFIX = "campaign_service listening on "


@dataclass(frozen=True, slots=True)
class ReadyLine:
    """Where the service listens: `url` is what a client puts in front of `/api/...`."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def format_ready_line(host: str, port: int) -> str:
    """`campaign_service listening on http://HOST:PORT` (an IPv6 host in brackets), no newline."""
    return PREFIX + ReadyLine(host, port).url


def parse_ready_line(line: str) -> ReadyLine | None:
    """The address in a ready line, or None when `line` is any other line (a trailing newline is
    allowed): callers read stdout line by line until this gives an answer."""
    text = line.rstrip("\r\n")
    if not text.startswith(PREFIX):
        return None
    try:
        parts = urlsplit(text[len(PREFIX) :])
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or not parts.hostname or port is None:
        return None
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        return None
    return ReadyLine(parts.hostname, port)
