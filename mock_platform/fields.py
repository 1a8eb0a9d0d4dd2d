"""Field validation: typed access to JSON input (biz_content, seed entries, config sections) that
names the field at fault, and the platform's wire vocabulary (yuan amounts, GMT+8 times,
user ids, `send_freqency`).

A FieldError carries the dotted path of the field and whether it was missing, so the gateway can
tell 40001 from 40002 and the admin API can name the key in a 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = [
    "CN_TZ",
    "MAX_MONEY_FEN",
    "MAX_POINTS",
    "TIME_FORMAT",
    "FieldError",
    "Reader",
    "fen_to_yuan",
    "format_time",
    "is_user_id",
    "parse_send_freqency",
    "period_key",
    "window",
]

CN_TZ = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
USER_ID_RE = re.compile(r"2088[0-9]{12}")
_INT_RE = re.compile(r"-?[0-9]{1,19}")
_MONEY_RE = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,2}))?")
MAX_POINTS = 10**9
MAX_MONEY_FEN = 10_000_000 * 100


class FieldError(ValueError):
    """A bad or missing input field; `field` is its dotted path, `missing` tells 40001 from 40002."""

    def __init__(self, field: str, problem: str, *, missing: bool = False) -> None:
        self.field = field
        self.problem = problem
        self.missing = missing
        super().__init__(f"{field}: {problem}")


def fen_to_yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, CN_TZ).strftime(TIME_FORMAT)


def is_user_id(value: object) -> bool:
    return isinstance(value, str) and USER_ID_RE.fullmatch(value) is not None


class Reader:
    """Typed access to one JSON object (biz_content or a seed entry), naming the field on error."""

    __slots__ = ("data", "where")

    def __init__(self, data: object, where: str = "") -> None:
        if data.__class__ is not dict and not isinstance(data, Mapping):  # the ABC check is slow
            raise FieldError(where or "biz_content", "must be a JSON object")
        self.data = data
        self.where = where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise FieldError(self.path(key), "is required", missing=True)
            return None
        return value

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                raise FieldError(
                    self.path(str(key)), f"unknown field (allowed: {', '.join(sorted(allowed))})"
                )

    def opt_text(self, key: str, *, max_len: int = 64, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value.__class__ is str and 0 < len(value) <= max_len:  # the usual case, in one frame
            return value
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise FieldError(self.path(key), "must be a string")
        if len(value) > max_len:
            raise FieldError(self.path(key), f"must be at most {max_len} characters")
        return value

    def text(self, key: str, *, max_len: int = 64) -> str:
        return self.opt_text(key, max_len=max_len, required=True)  # type: ignore[return-value]

    def opt_integer(self, key: str, lo: int, hi: int, *, required: bool = False) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, str) and _INT_RE.fullmatch(value):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise FieldError(self.path(key), "must be an integer")
        if not lo <= value <= hi:
            raise FieldError(self.path(key), f"must be between {lo} and {hi}, got {value}")
        return value

    def integer(self, key: str, lo: int, hi: int) -> int:
        return self.opt_integer(key, lo, hi, required=True)  # type: ignore[return-value]

    def opt_money(self, key: str, lo_fen: int, hi_fen: int, *, required: bool = False) -> int | None:
        """A yuan amount ("12.34", 12 or 12.5) as fen, within [lo_fen, hi_fen]."""
        value = self._get(key, required)
        if value is None:
            return None
        match = None
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            match = _MONEY_RE.fullmatch(str(value))
        if match is None:
            raise FieldError(self.path(key), 'must be a yuan amount like "12.34" (at most 2 decimals)')
        fen = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
        if not lo_fen <= fen <= hi_fen:
            raise FieldError(
                self.path(key), f"must be between {fen_to_yuan(lo_fen)} and {fen_to_yuan(hi_fen)} yuan"
            )
        return fen

    def money(self, key: str, lo_fen: int, hi_fen: int) -> int:
        return self.opt_money(key, lo_fen, hi_fen, required=True)  # type: ignore[return-value]

    def opt_time(self, key: str, *, now: float | None = None, required: bool = False) -> float | None:
        """A "yyyy-MM-dd HH:mm:ss" GMT+8 time as epoch seconds; "NowTime" is `now` when given."""
        value = self._get(key, required)
        if value is None:
            return None
        if now is not None and value == "NowTime":
            return now
        if isinstance(value, str) and len(value) == 19:
            try:
                return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=CN_TZ).timestamp()
            except ValueError:
                pass
        raise FieldError(self.path(key), 'must be a time "yyyy-MM-dd HH:mm:ss" (GMT+8)')

    def time(self, key: str, *, now: float | None = None) -> float:
        return self.opt_time(key, now=now, required=True)  # type: ignore[return-value]

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise FieldError(self.path(key), "must be true or false")
        return value

    def obj(self, key: str) -> Reader:
        return Reader(self._get(key, True), self.path(key))

    def items(self, key: str) -> list[Reader]:
        """The objects of the list at `key`; none when the key is absent (null is not a list)."""
        if key not in self.data:
            return []
        value = self.data[key]
        if not isinstance(value, list):
            raise FieldError(self.path(key), "must be a list")
        return [Reader(item, f"{self.path(key)}[{i}]") for i, item in enumerate(value)]


def window(reader: Reader, start_key: str, end_key: str, now: float) -> tuple[float, float]:
    start = reader.time(start_key, now=now)
    end = reader.time(end_key)
    if end <= start:
        raise FieldError(reader.path(end_key), f"must be after {start_key}")
    return start, end


def parse_send_freqency(value: str | None, where: str) -> tuple[str | None, int, int]:
    """`send_freqency` ("D3|L10"; sic) -> (period D/W/M or None, period limit, lifetime limit)."""
    if not value:
        return None, 0, 1
    period: str | None = None
    period_limit = 0
    life: int | None = None
    for part in value.split("|"):
        unit, num = part[:1], part[1:]
        if unit not in ("D", "W", "M", "L") or not num.isascii() or not num.isdigit() or len(num) > 3:
            raise FieldError(where, f'bad part "{part}": expected D<n>, W<n>, M<n> or L<n>, e.g. "D3|L10"')
        n = int(num)
        if n < 1:
            raise FieldError(where, f'bad part "{part}": the limit must be at least 1')
        if unit == "L":
            if life is not None or n > 100:
                raise FieldError(where, "exactly one L<n> with n <= 100 is allowed")
            life = n
        elif period is not None:
            raise FieldError(where, "at most one of D, W, M is allowed")
        else:
            period, period_limit = unit, n
    if life is None:
        raise FieldError(where, 'the lifetime limit L<n> is mandatory, e.g. "D3|L10"')
    return period, period_limit, life


def period_key(period: str | None, now: float) -> int:
    """Index of the GMT+8 calendar day, week (from Monday) or month containing `now`."""
    if period is None:
        return 0
    day = int((now + 8 * 3600) // 86400)
    if period == "D":
        return day
    if period == "W":
        return (day + 3) // 7  # 1970-01-01 was a Thursday
    local = datetime.fromtimestamp(now, CN_TZ)
    return local.year * 12 + local.month
