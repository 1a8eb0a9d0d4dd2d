"""The effects journal: one NDJSON line per grant the ledger made, on disk, for GET /admin/effects.

A three-tier rehearsal reconciles what users were told, what the merchant's service recorded and
what the platform did, by biz number; this is the platform's side. A 10-minute run at ~250
effects/s is 150,000 lines, so nothing per effect stays in memory: each line is appended to a
buffered file (a private temporary directory unless the config names a path), flushed before an
export, and read back in chunks. Only a sparse index (one offset per `STRIDE` lines) is kept, so
`?after=<seq>` starts near its line instead of at the top. The file is removed at exit (and by
`close()`); `clear()` (POST /admin/reset) starts a new one while a running export keeps reading
the old.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO, TypedDict

import orjson

__all__ = ["STRIDE", "Effect", "EffectJournal", "effect_line"]

STRIDE = 1024  # lines between two entries of the sparse index
BUFFER_BYTES = 64 * 1024
CHUNK_BYTES = 256 * 1024
UNITS = ("points", "fen", "voucher", "coupon")


class Effect(TypedDict):
    """One grant, as a line of the export (the field order is the line's). A TypedDict rather than
    a dataclass: orjson writes a dict in a third of the time, and this is on the hot path."""

    seq: int  # 1, 2, ... in the order the effects were made; restarts at 1 after a reset
    method: str  # e.g. alipay.user.alipaypoint.send, wechat.coupon.send
    app_id: str  # the Alipay app_id; for WeChat the stock creator's mchid
    biz_no: str  # partner_biz_no / out_biz_no / out_request_no
    user_id: str  # the Alipay user_id; for WeChat the openid
    campaign: str  # budget_code / activity_id / crowd_no / stock_id
    amount: int  # points, fen, or 1 per voucher or coupon
    unit: str  # one of UNITS
    id: str  # record_id / voucher_id / the prize's biz_no / coupon_id
    at: float  # epoch seconds at receipt of the call


# The one serializer of an effect: its fields as a JSON object, in order, then a newline
# (a partial, not a def: one Python frame less per grant).
effect_line: Callable[[Effect], bytes] = partial(orjson.dumps, option=orjson.OPT_APPEND_NEWLINE)


def _remove(directory: str | None, path: str | None, files: list[BinaryIO]) -> None:
    """Close and delete the journal's file (and its private directory); safe to call twice."""
    for handle in files:
        handle.close()
    files.clear()
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
    elif path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class EffectJournal:
    """Append-only journal of effects; not thread-safe (the event loop is its only writer).

    The file is created on the first effect, so a ledger that never grants anything (a scratch
    ledger, a unit test) touches no disk.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._configured = None if path is None else str(path)
        self._dir: str | None = None
        self._path: str | None = None
        self._files: list[BinaryIO] = []  # the writer, when open (a list so the finalizer sees it)
        self._size = 0  # bytes written so far (flushed or not)
        self._marks: list[int] = []  # _marks[k]: offset of the line with seq k * STRIDE + 1
        self.last_seq = 0
        self._finalizer = weakref.finalize(self, _remove, None, None, self._files)

    def _open(self) -> None:
        if self._configured is not None:
            path = self._configured
            self._finalizer = weakref.finalize(self, _remove, None, path, self._files)
        else:
            self._dir = tempfile.mkdtemp(prefix="mock_platform-effects-")
            path = os.path.join(self._dir, "effects.ndjson")
            self._finalizer = weakref.finalize(self, _remove, self._dir, None, self._files)
        self._path = path
        self._files.append(open(path, "wb", buffering=BUFFER_BYTES))  # noqa: SIM115 - closed by the finalizer

    def append(
        self,
        method: str,
        app_id: str,
        biz_no: str,
        user_id: str,
        campaign: str,
        amount: int,
        unit: str,
        id: str,
        at: float,
    ) -> None:
        """Journal one effect (it gets the next seq)."""
        seq = self.last_seq + 1
        if seq % STRIDE == 1:
            if seq == 1:
                self._open()
            self._marks.append(self._size)
        effect: Effect = {
            "seq": seq,
            "method": method,
            "app_id": app_id,
            "biz_no": biz_no,
            "user_id": user_id,
            "campaign": campaign,
            "amount": amount,
            "unit": unit,
            "id": id,
            "at": at,
        }
        self._size += self._files[0].write(effect_line(effect))
        self.last_seq = seq

    def flush(self) -> None:
        if self._files:
            self._files[0].flush()

    def export(self, after: int = 0) -> Iterator[bytes]:
        """The lines with seq > `after`, in order, as chunks of whole lines, up to the effects made
        before this call (later ones wait for the next export). Reads its own handle, so it may
        be consumed across awaits while effects go on being journaled, or after a `clear()`."""
        if after >= self.last_seq or self._path is None:
            return iter(())
        self.flush()
        mark = after // STRIDE
        return _read(open(self._path, "rb"), self._marks[mark], self._size, after - mark * STRIDE)

    def clear(self) -> None:
        """Forget every effect: the file is deleted (an export under way keeps its handle) and the
        next effect starts a new one with seq 1."""
        self._finalizer()
        self._dir = self._path = None
        self._size = 0
        self._marks = []
        self.last_seq = 0

    def close(self) -> None:
        """Delete the file now (the finalizer would at exit)."""
        self.clear()

    @property
    def path(self) -> str | None:
        """Where the journal is (None before the first effect)."""
        return self._path


def _read(handle: BinaryIO, start: int, end: int, skip_lines: int) -> Iterator[bytes]:
    """Bytes [start, end) of the journal in chunks that end on a line break, without the first
    `skip_lines` lines; closes `handle` when done or abandoned."""
    with handle:
        handle.seek(start)
        left = end - start
        rest = b""
        while left > 0:
            data = handle.read(min(CHUNK_BYTES, left))
            if not data:
                break
            left -= len(data)
            data = rest + data
            cut = data.rfind(b"\n") + 1
            data, rest = data[:cut], data[cut:]
            if skip_lines:
                pos = 0
                while skip_lines and pos < len(data):
                    pos = data.index(b"\n", pos) + 1
                    skip_lines -= 1
                data = data[pos:]
            if data:
                yield data
