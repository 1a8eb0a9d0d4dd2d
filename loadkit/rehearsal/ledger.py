"""The books at the end of a test: the ledger's effects (from the mock) and the service's own
records, read as streams of JSON lines into the small tuples reconciliation matches by id.

Both can be large (one line per grant of a 10-minute run), so they are read line by line, never
whole. A line that is not a JSON object with the fields needed is counted as bad and skipped:
a reconciliation that names what it could not read beats one that fails on the first odd line.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import orjson

from loadkit.measure.reconcile import Effect, Record
from loadkit.rehearsal.mock_admin import MockAdmin

QUIET_S = 2.0  # the ledger is settled after this long without a new effect
POLL_S = 0.25
RECORD_STATUSES = ("granted", "pending", "failed", "unknown")


class RecordsError(RuntimeError):
    """The service's records could not be fetched."""


def settle(mock: MockAdmin, timeout_s: float, quiet_s: float = QUIET_S) -> tuple[bool, float]:
    """Wait until the ledger makes no new effect for `quiet_s` (calls still in flight inside the
    service land first), at most `timeout_s`. Returns (settled, seconds waited)."""
    started = time.monotonic()
    last = mock.last_effect_seq()
    quiet_since = started
    while True:
        now = time.monotonic()
        if now - quiet_since >= quiet_s:
            return True, round(now - started, 3)
        if now - started >= timeout_s:
            return False, round(now - started, 3)
        time.sleep(POLL_S)
        seq = mock.last_effect_seq()
        if seq != last:
            last, quiet_since = seq, time.monotonic()


def read_effects(mock: MockAdmin, app_id: str | Collection[str] | None = None) -> tuple[list[Effect], int]:
    """Every effect in the journal (of `app_id` only, when given: an Alipay app id, a WeChat Pay
    mchid, or several), and how many lines were bad."""
    with mock.effects() as stream:
        return parse_effects(stream, app_id)


def parse_effects(
    lines: Iterable[bytes], app_id: str | Collection[str] | None = None
) -> tuple[list[Effect], int]:
    scopes = {app_id} if isinstance(app_id, str) else None if app_id is None else set(app_id)
    out: list[Effect] = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        doc = _object(line)
        fields = _texts(doc, ("biz_no", "method", "app_id", "user_id", "campaign", "id"))
        if fields is None:
            bad += 1
            continue
        if scopes is None or fields[2] in scopes:
            out.append(Effect(*fields))
    return out, bad


def read_records(url: str, token: str | None, timeout_s: float = 30.0) -> tuple[list[Record], int]:
    """The service's records (JSON lines: biz_no, status, user_id, method, campaign, grant_id,
    attempts), and how many lines were bad. RecordsError when they cannot be fetched."""
    headers = {"Accept": "application/x-ndjson"}
    if token:
        headers["X-Admin-Token"] = token
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return parse_records(resp)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise RecordsError(f"GET {url} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RecordsError(f"GET {url} failed: {exc}") from None


def parse_records(lines: Iterable[bytes]) -> tuple[list[Record], int]:
    out: list[Record] = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        doc = _object(line)
        fields = _texts(doc, ("biz_no", "status", "user_id", "method", "campaign"))
        if fields is None or fields[1] not in RECORD_STATUSES:
            bad += 1
            continue
        assert doc is not None
        grant = doc.get("grant_id")
        attempts = doc.get("attempts")
        out.append(
            Record(
                *fields,
                grant_id=None if grant is None else str(grant),
                attempts=attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 0,
            )
        )
    return out, bad


def _object(line: bytes) -> Mapping[str, Any] | None:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _texts(doc: Mapping[str, Any] | None, keys: tuple[str, ...]) -> tuple[str, ...] | None:
    if doc is None:
        return None
    values = []
    for key in keys:
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            return None
        values.append(str(value))
    return tuple(values)
