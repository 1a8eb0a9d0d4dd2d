"""Talks to the mock platform's admin API over HTTP (loadkit never imports mock_platform).

Used by the plugin to seed what a plan needs before users start, and to fetch the ledger audit
after the run. Blocking urllib calls are fine here: they run once per test, in a greenlet under
gevent's monkey patching, never on the request path.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any


class MockAdminError(RuntimeError):
    """The mock's admin API refused a call or could not be reached."""


class MockAdmin:
    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"X-Admin-Token": self.token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise MockAdminError(f"{method} {path} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise MockAdminError(f"{method} {path} failed: {exc}") from None
        return json.loads(raw) if raw else None

    def reset(self) -> None:
        self._call("POST", "/admin/reset", {})

    def seed(self, seed: Mapping[str, Any]) -> Any:
        return self._call("POST", "/admin/seed", dict(seed))

    def audit(self) -> dict[str, Any]:
        return self._call("GET", "/admin/audit")

    def health(self) -> Any:
        return self._call("GET", "/admin/health")
