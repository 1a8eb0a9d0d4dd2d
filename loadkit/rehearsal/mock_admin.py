"""Talks to the mock platform's admin API over HTTP (loadkit never imports mock_platform).

Used by the plugin to seed what a plan needs before users start, and to fetch the ledger audit
after the run. Blocking urllib calls are fine here: they run once per test, in a greenlet under
gevent's monkey patching, never on the request path.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any
from urllib.parse import quote


class MockAdminError(RuntimeError):
    """The mock's admin API refused a call or could not be reached."""


class MockAdmin:
    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        with self._open(method, path, body) as resp:
            raw = resp.read()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise MockAdminError(f"{method} {path} answered something that is not JSON") from None

    @contextmanager
    def _open(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Iterator[Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"X-Admin-Token": self.token, "Content-Type": "application/json"},
        )
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise MockAdminError(f"{method} {path} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise MockAdminError(f"{method} {path} failed: {exc}") from None
        with resp:
            yield resp

    def reset(self) -> None:
        self._call("POST", "/admin/reset", {})

    def seed(self, seed: Mapping[str, Any]) -> Any:
        return self._call("POST", "/admin/seed", dict(seed))

    def audit(self) -> dict[str, Any]:
        return self._call("GET", "/admin/audit")

    def health(self) -> Any:
        return self._call("GET", "/admin/health")

    def register_app(self, app_id: str, public_key_pem: str) -> None:
        """Register (or replace) an app's public key, so the mock verifies its signed calls."""
        self._call("POST", "/admin/apps", {"app_id": app_id, "public_key": public_key_pem})

    def public_key(self) -> str:
        """The mock's response-signing public key (PEM)."""
        return str(self._call("GET", "/admin/keys")["alipay_public_key"])

    def register_wx_merchant(self, mchid: str, serial_no: str, public_key_pem: str) -> None:
        """Register (or replace) a WeChat Pay merchant, so the mock verifies its signed calls."""
        body = {"mchid": mchid, "serial_no": serial_no, "public_key": public_key_pem}
        self._call("POST", "/admin/wechat/merchants", body)

    def wx_platform(self) -> tuple[str, str]:
        """(public key PEM, its id PUB_KEY_ID_...): how the mock signs WeChat Pay answers."""
        doc = self._call("GET", "/admin/wechat/platform")
        try:
            return str(doc["public_key"]), str(doc["public_key_id"])
        except (KeyError, TypeError):
            raise MockAdminError(
                "GET /admin/wechat/platform answered without public_key and public_key_id"
            ) from None

    def put_layer(self, name: str, faults: Mapping[str, Any], start_at: float, duration_s: float) -> Any:
        """Schedule a named fault layer (a drill) over the base faults, by the mock's clock."""
        body = {"faults": dict(faults), "start_at": start_at, "duration_s": duration_s}
        return self._call("PUT", f"/admin/faults/layers/{quote(name, safe='')}", body)

    def delete_layer(self, name: str) -> bool:
        """Remove a fault layer; False when there was none by that name."""
        try:
            self._call("DELETE", f"/admin/faults/layers/{quote(name, safe='')}")
        except MockAdminError as exc:
            if " answered 404" in str(exc):
                return False
            raise
        return True

    def last_effect_seq(self) -> int:
        """The seq of the last grant the ledger made (0 before any), without reading the journal."""
        with self._open("GET", f"/admin/effects?after={10**17}") as resp:
            return int(resp.headers.get("X-Last-Seq") or 0)

    @contextmanager
    def effects(self, after: int = 0) -> Iterator[IO[bytes]]:
        """The effects journal as a stream of NDJSON lines (read it line by line)."""
        with self._open("GET", f"/admin/effects?after={int(after)}") as resp:
            yield resp
