"""Durations as people write them in plans ("30s", "10m", "1h", "1m30s", "500ms") <-> seconds."""

from __future__ import annotations

import math
import re

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_ORDER = ("h", "m", "s", "ms")
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
EXPECTED = 'a duration like "30s", "10m", "1h", "1m30s", "500ms" or a number of seconds'


def parse_duration(value: object) -> float:
    """Seconds in `value`: a number (seconds) or a string of number+unit parts, largest unit first.

    Raises ValueError naming what was expected; negative, empty, NaN and unknown units are refused.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected {EXPECTED}, got {value!r}")
    if isinstance(value, int | float):
        return _checked(float(value), value)
    if not isinstance(value, str):
        raise ValueError(f"expected {EXPECTED}, got {value!r}")
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise ValueError(f"expected {EXPECTED}, got an empty string")
    if _NUMBER.fullmatch(text):
        return _checked(float(text), value)
    if text.startswith("-"):
        raise ValueError(f"expected a duration ≥ 0, got {value!r}")
    total, pos, last_rank = 0.0, 0, -1
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        rank = _ORDER.index(match.group(2))
        if rank <= last_rank:
            raise ValueError(f"expected units largest first and each once (like 1h2m3s), got {value!r}")
        last_rank = rank
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"expected {EXPECTED} (units h, m, s, ms), got {value!r}")
    return total


def _checked(seconds: float, original: object) -> float:
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration, got {original!r}")
    if seconds < 0:
        raise ValueError(f"expected a duration ≥ 0, got {original!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest readable form: 90 -> "1m30s", 0.5 -> "500ms", 600 -> "10m", 3600 -> "1h"."""
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000, 3):g}ms"
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    secs = round(secs, 3)
    if secs >= 60:  # rounding carried over
        minutes, secs = minutes + 1, 0.0
    if minutes >= 60:
        hours, minutes = hours + 1, 0.0
    parts = []
    if hours:
        parts.append(f"{int(hours)}h")
    if minutes:
        parts.append(f"{int(minutes)}m")
    if secs:
        parts.append(f"{secs:g}s")
    return "".join(parts)
