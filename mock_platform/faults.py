"""Injected faults: latency distributions, error injection, token-bucket throttles and outages.

Alipay asks merchants to mock its side "with the same response latency as production", and a load
test is only worth something if the harness also sees throttling, errors and outages. The gateway
asks this module two questions per call, both on the hot path: `decide()` (answer with a fault
instead of the handler?) and `latency_s()` (how long to wait before answering). Everything a call
needs is resolved per method when the spec is set, so a call costs a dict lookup and a few floats.

Spec (YAML or JSON), one entry per Alipay method name or `"*"`; a method's own entry wins over
`"*"` key by key (its `latency` replaces the `*` latency, the `*` error still applies)::

    profile: production          # optional preset underneath (mock_platform/profiles/NAME.yaml)
    seed: 42                     # optional: deterministic draws
    "*":
      latency: {dist: lognormal, median_ms: 40, p99_ms: 200}
    alipay.marketing.activity.voucher.send:
      error: {rate: 0.01, code: "20000", sub_code: isp.unknow-error}
      throttle: {rate: 500, burst: 50}                 # per (app_id, method) -> 40005
      outage: {mode: reset, start_s: 60, duration_s: 10}   # or windows: [{start_s|start_at, duration_s}]

Outage windows are relative to the moment the spec took effect (`start_s`) or absolute epoch
seconds (`start_at`); with neither the outage is on at once, without `duration_s` it never ends.

Drills add named layers over that base spec (PUT /admin/faults/layers/{name}): a layer's entries
apply key by key over each method's settings only inside the layer's window, which this module
enforces from its own clock; in a layer, `latency: {scale: 3}` multiplies the draw beneath it.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

__all__ = ["Decision", "Faults", "load_profile", "profile_names"]

# z-score of the 99th percentile of the standard normal distribution.
Z99 = 2.3263478740408408
DIST_NAMES = ("constant", "uniform", "normal", "lognormal", "pareto")
OUTAGE_MODES = ("error", "hang", "reset")
METHOD_KEYS = ("latency", "error", "throttle", "outage")
TOP_LEVEL_KEYS = ("profile", "seed")
DEFAULT_HANG_S = 300.0
# Buckets are keyed by caller-supplied app_id; past this many the table starts afresh so a flood of
# made-up app ids cannot grow memory without limit.
MAX_BUCKETS = 100_000
LAYER_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True, slots=True)
class Decision:
    """What the gateway does instead of calling the handler.

    `error`/`throttle`: answer with `code`/`sub_code`/`sub_msg`; `hang`: answer nothing for
    `hang_s` seconds (the client gives up first); `reset`: drop the connection.
    """

    kind: str
    code: str = ""
    sub_code: str = ""
    sub_msg: str = ""
    hang_s: float = 0.0


@dataclass(frozen=True, slots=True)
class _Throttle:
    rate: float
    burst: float
    decision: Decision


@dataclass(frozen=True, slots=True)
class _Outage:
    windows: tuple[tuple[float, float], ...]  # absolute (start, end) epoch seconds
    decision: Decision


@dataclass(frozen=True, slots=True)
class _Resolved:
    """One method's faults, ready to apply."""

    sample_ms: Callable[[], float] | None
    error_rate: float
    error: Decision | None
    throttle: _Throttle | None
    outage: _Outage | None
    quiet: bool  # no error, throttle or outage: decide() returns None at once


_NONE = _Resolved(None, 0.0, None, None, None, True)


def profile_names() -> list[str]:
    """Names of the presets shipped in mock_platform/profiles/."""
    folder = resources.files("mock_platform") / "profiles"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name: str) -> dict[str, Any]:
    """The spec of preset `name` (a ValueError lists the known ones when it does not exist)."""
    known = profile_names()
    if name not in known:
        raise ValueError(f"faults.profile: unknown profile {name!r} (known: {', '.join(known) or 'none'})")
    text = (resources.files("mock_platform") / "profiles" / f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"faults.profile: profile {name!r} is not a mapping")
    return data


@dataclass(frozen=True, slots=True)
class _Scale:
    """A layer's `latency: {scale: k}`: k times the latency draw in force beneath the layer."""

    factor: float

    def over(self, below: Callable[[], float] | None) -> Callable[[], float] | None:
        if below is None:
            return None
        factor = self.factor
        return lambda: factor * below()


# One method's settings, validated and precomputed key by key (None: the key is switched off).
_Parts = dict[str, Any]


@dataclass(slots=True)
class _Layer:
    """A named fault layer: its spec as given, its parts, and its window [start, end)."""

    name: str
    spec: dict[str, Any]
    parts: dict[str, _Parts]
    start: float
    duration_s: float | None  # None: until deleted
    end: float  # start + duration_s, or math.inf

    def state(self, now: float) -> str:
        return "scheduled" if now < self.start else "active" if now < self.end else "ended"

    def listing(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "faults": _plain(self.spec, f"layers.{self.name}.faults"),
            "start_at": self.start,
            "end_at": None if self.duration_s is None else self.end,
            "duration_s": self.duration_s,
            "state": self.state(now),
        }


class Faults:
    """The fault state of one mock process. Not thread-safe; the event loop is its only user.

    The base spec (`configure`) and the named layers (`put_layer`) are kept apart; what the hot
    path reads (`_by_method`, `_default`) is their composition for the layers active now, rebuilt
    only when a layer's window opens or closes (`_next_change`), so with no layer the cost of a
    call is one more float comparison.
    """

    def __init__(self) -> None:
        self._spec: dict[str, Any] = {}
        self._base: dict[str, _Parts] = {}
        self._layers: dict[str, _Layer] = {}
        self._by_method: dict[str, _Resolved] = {}
        self._default = _NONE
        self._next_change = math.inf
        self._rng = random.Random()
        self._buckets: dict[tuple[str, str], list[float]] = {}

    @classmethod
    def from_config(
        cls, spec: Mapping[str, Any] | None, profile: str | None = None, *, now: float | None = None
    ) -> Faults:
        """Faults from the config's `faults:` part; `profile` (e.g. `--profile`) is used when the
        spec names none."""
        if spec is not None and not isinstance(spec, Mapping):
            raise ValueError("faults: must be a mapping of method name (or '*') to fault settings")
        merged = dict(spec or {})
        if profile and not merged.get("profile"):
            merged["profile"] = profile
        faults = cls()
        faults.configure(merged, now=now)
        return faults

    def configure(self, spec: Mapping[str, Any], *, now: float | None = None) -> None:
        """Replace the base spec at once (PUT /admin/faults); ValueError names the bad key and
        leaves the previous spec in force. Layers stay, applied over the new base."""
        if not isinstance(spec, Mapping):
            raise ValueError("faults: must be a mapping of method name (or '*') to fault settings")
        start = time.time() if now is None else now
        own = _plain(spec, "faults")
        sources: list[Mapping[str, Any]] = []
        profile = own.get("profile")
        if profile is not None:
            if not isinstance(profile, str) or not profile:
                raise ValueError("faults.profile: must be a profile name (a string)")
            sources.append(load_profile(profile))
        sources.append(own)
        entries = _merge_layers(sources)
        seed = own.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | str)):
            raise ValueError("faults.seed: must be an integer or a string")
        rng = random.Random(seed)
        base = {name: _parts(f"faults.{name}", entry, start, rng) for name, entry in entries.items()}
        # Swap in one go: a concurrent call sees either the old spec or the new one, never a mix.
        self._spec, self._base, self._rng = own, base, rng
        self._buckets = {}
        self._compose(start)

    def snapshot(self) -> dict[str, Any]:
        """The base spec in force, as given (JSON-able)."""
        return _plain(self._spec, "faults")

    def put_layer(
        self,
        name: str,
        faults: Any,
        *,
        start_at: float | None = None,
        duration_s: float | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Add or replace layer `name`: `faults` ({method or "*": settings}) applies key by key over
        the base spec in [start_at, start_at + duration_s) by this process's clock; `latency` may
        also be {"scale": k}. The latest put layer wins where two overlap. Returns its listing."""
        now = time.time() if now is None else now
        where = f"layers.{name}"
        if not isinstance(name, str) or not LAYER_NAME_RE.fullmatch(name):
            raise ValueError("layers: a layer name is 1-64 letters, digits, '.', '_' or '-'")
        spec = _plain(faults, f"{where}.faults")
        if not isinstance(spec, dict):
            raise ValueError(f"{where}.faults: must be a mapping of method name (or '*') to fault settings")
        start = now if start_at is None else _number({"start_at": start_at}, "start_at", where)
        if duration_s is not None:
            duration_s = _number({"duration_s": duration_s}, "duration_s", where, positive=True)
        end = math.inf if duration_s is None else start + duration_s
        parts: dict[str, _Parts] = {}
        for method, entry in spec.items():
            entry_where = f"{where}.faults.{method}"
            if not isinstance(entry, Mapping):
                raise ValueError(f"{entry_where}: must be a mapping with keys among {', '.join(METHOD_KEYS)}")
            for key in entry:
                if key not in METHOD_KEYS:
                    raise ValueError(
                        f"{entry_where}.{key}: unknown key (expected one of {', '.join(METHOD_KEYS)})"
                    )
            parts[method] = _parts(entry_where, entry, start, self._rng, scale_ok=True)
        layer = _Layer(name, spec, parts, start, duration_s, end)
        self._layers.pop(name, None)
        self._layers[name] = layer
        self._compose(now)
        return layer.listing(now)

    def delete_layer(self, name: str, *, now: float | None = None) -> bool:
        """Remove layer `name` at once; False when there is none by that name."""
        if self._layers.pop(name, None) is None:
            return False
        self._compose(time.time() if now is None else now)
        return True

    def layers(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every layer with its window and state (scheduled, active, ended), in order of precedence."""
        now = time.time() if now is None else now
        return [layer.listing(now) for layer in self._layers.values()]

    def decide(self, method: str, app_id: str, now: float) -> Decision | None:
        """The fault to answer `method` with at `now` (epoch seconds), or None to serve it normally.

        Outages win over throttling, throttling over injected errors; a throttled call does not
        also roll for an error, an admitted one takes a token. Called before `latency_s` for every
        call, it is also where a layer's window opening or closing takes effect.
        """
        if now >= self._next_change:
            self._compose(now)
        res = self._by_method.get(method, self._default)
        if res.quiet:
            return None
        outage = res.outage
        if outage is not None:
            for start, end in outage.windows:
                if start <= now < end:
                    return outage.decision
        throttle = res.throttle
        if throttle is not None and not self._admit(throttle, app_id, method, now):
            return throttle.decision
        if res.error is not None and self._rng.random() < res.error_rate:
            return res.error
        return None

    def latency_s(self, method: str) -> float:
        """Seconds to wait before answering `method` (0.0 without a latency setting)."""
        sample = self._by_method.get(method, self._default).sample_ms
        return 0.0 if sample is None else sample() / 1000.0

    def _compose(self, now: float) -> None:
        """Rebuild what decide()/latency_s() read: the base with the layers active at `now` over
        it (in the order they were put), and the next time a layer's window opens or closes."""
        active = []
        next_change = math.inf
        for layer in self._layers.values():
            if layer.start <= now < layer.end:
                active.append(layer)
                next_change = min(next_change, layer.end)
            elif now < layer.start:
                next_change = min(next_change, layer.start)
        names = set(self._base)
        for layer in active:
            names.update(layer.parts)
        names.discard("*")
        base_any = self._base.get("*", {})

        def compose(name: str | None) -> _Resolved:
            parts = dict(base_any)
            if name is not None:
                parts.update(self._base.get(name, {}))
            for layer in active:
                for source in (layer.parts.get("*"), None if name is None else layer.parts.get(name)):
                    for key, part in (source or {}).items():
                        parts[key] = part.over(parts.get(key)) if isinstance(part, _Scale) else part
            return _resolved(parts)

        self._by_method = {name: compose(name) for name in names}
        self._default = compose(None)
        self._next_change = next_change

    def _admit(self, throttle: _Throttle, app_id: str, method: str, now: float) -> bool:
        """Token bucket per (app_id, method), refilled lazily from `now`: O(1) per call."""
        key = (app_id, method)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets = {}
            bucket = self._buckets[key] = [throttle.burst, now]
        elapsed = now - bucket[1]
        tokens = (
            bucket[0] + elapsed * throttle.rate if elapsed > 0 else bucket[0]
        )  # clock steps back: no refill
        if tokens > throttle.burst:
            tokens = throttle.burst
        bucket[1] = max(now, bucket[1])
        if tokens >= 1.0 - 1e-9:  # float dust from many tiny refills must not eat a whole token
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        return False


def _plain(value: Any, where: str) -> Any:
    """A JSON-able deep copy (mappings → dicts with string keys, sequences → lists)."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"{where}: unsupported value {value!r}")


def _merge_layers(layers: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Method entries of all layers, later layers winning key by key within a method."""
    entries: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for name, entry in layer.items():
            if name in TOP_LEVEL_KEYS:
                continue
            where = f"faults.{name}"
            if not isinstance(entry, Mapping):
                raise ValueError(f"{where}: must be a mapping with keys among {', '.join(METHOD_KEYS)}")
            for key in entry:
                if key not in METHOD_KEYS:
                    raise ValueError(f"{where}.{key}: unknown key (expected one of {', '.join(METHOD_KEYS)})")
            entries.setdefault(name, {}).update(entry)
    return entries


def _parts(
    where: str, entry: Mapping[str, Any], start: float, rng: random.Random, *, scale_ok: bool = False
) -> _Parts:
    """Validate one method's settings key by key (a None value switches the key off) and
    precompute each: latency sampler (or _Scale in a layer), (rate, Decision), _Throttle, _Outage."""
    parts: _Parts = {}
    for key, spec in entry.items():
        at = f"{where}.{key}"
        if spec is None:
            parts[key] = None
        elif key == "latency":
            if scale_ok and isinstance(spec, Mapping) and "scale" in spec:
                parts[key] = _Scale(_number(_mapping(spec, at, ("scale",)), "scale", at, positive=True))
            else:
                parts[key] = _sampler(spec, at, rng)
        elif key == "error":
            parts[key] = _error(spec, at)
        elif key == "throttle":
            parts[key] = _throttle(spec, at)
        else:
            parts[key] = _outage(spec, at, start)
    return parts


def _resolved(parts: _Parts) -> _Resolved:
    """What decide()/latency_s() need from one method's composed parts."""
    error_rate, error = parts.get("error") or (0.0, None)
    throttle, outage = parts.get("throttle"), parts.get("outage")
    quiet = error is None and throttle is None and outage is None
    return _Resolved(parts.get("latency"), error_rate, error, throttle, outage, quiet)


def _mapping(spec: Any, where: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: must be a mapping")
    for key in spec:
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown key (expected one of {', '.join(allowed)})")
    return spec


def _number(spec: Mapping[str, Any], key: str, where: str, *, positive: bool = False) -> float:
    if key not in spec:
        raise ValueError(f"{where}.{key}: required")
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}.{key}: must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{where}.{key}: must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _sampler(spec: Any, where: str, rng: random.Random) -> Callable[[], float]:
    """A zero-argument function drawing one latency in milliseconds."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: must be a mapping with a 'dist' key")
    dist = spec.get("dist")
    if dist not in DIST_NAMES:
        raise ValueError(f"{where}.dist: must be one of {', '.join(DIST_NAMES)}, got {dist!r}")
    if dist == "constant":
        _mapping(spec, where, ("dist", "ms"))
        ms = _number(spec, "ms", where)
        return lambda: ms
    if dist == "uniform":
        _mapping(spec, where, ("dist", "min_ms", "max_ms"))
        lo, hi = _number(spec, "min_ms", where), _number(spec, "max_ms", where)
        if hi < lo:
            raise ValueError(f"{where}.max_ms: must be >= min_ms ({lo}), got {hi}")
        uniform = rng.uniform
        return lambda: uniform(lo, hi)
    if dist == "normal":
        _mapping(spec, where, ("dist", "mean_ms", "stddev_ms"))
        mean, sd = _number(spec, "mean_ms", where), _number(spec, "stddev_ms", where)
        gauss = rng.gauss
        return lambda: max(0.0, gauss(mean, sd))
    if dist == "lognormal":
        _mapping(spec, where, ("dist", "median_ms", "p99_ms"))
        median, p99 = _median_p99(spec, where)
        mu, sigma = math.log(median), (math.log(p99) - math.log(median)) / Z99
        lognorm = rng.lognormvariate
        return lambda: lognorm(mu, sigma)
    _mapping(spec, where, ("dist", "scale_ms", "alpha", "median_ms", "p99_ms"))
    if "median_ms" in spec or "p99_ms" in spec:
        if "scale_ms" in spec or "alpha" in spec:
            raise ValueError(f"{where}: give either scale_ms and alpha, or median_ms and p99_ms, not both")
        median, p99 = _median_p99(spec, where)
        # Quantile q of Pareto(xm, a) is xm * (1 - q) ** (-1 / a): median = xm * 2**(1/a),
        # p99 = xm * 100**(1/a), hence p99 / median = 50**(1/a).
        alpha = math.log(50.0) / math.log(p99 / median)
        scale = median / 2.0 ** (1.0 / alpha)
    else:
        scale = _number(spec, "scale_ms", where, positive=True)
        alpha = _number(spec, "alpha", where, positive=True)
    pareto = rng.paretovariate
    return lambda: scale * pareto(alpha)


def _median_p99(spec: Mapping[str, Any], where: str) -> tuple[float, float]:
    median = _number(spec, "median_ms", where, positive=True)
    p99 = _number(spec, "p99_ms", where, positive=True)
    if p99 <= median:
        raise ValueError(f"{where}.p99_ms: must be greater than median_ms ({median}), got {p99}")
    return median, p99


def _rate(spec: Mapping[str, Any], where: str) -> float:
    rate = _number(spec, "rate", where)
    if rate > 1:
        raise ValueError(f"{where}.rate: must be between 0 and 1, got {rate}")
    return rate


def _code(spec: Mapping[str, Any], key: str, where: str, default: str) -> str:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        raise ValueError(f"{where}.{key}: must be a non-empty string, got {value!r}")
    return str(value)


def _error(spec: Any, where: str) -> tuple[float, Decision]:
    spec = _mapping(spec, where, ("rate", "code", "sub_code", "sub_msg"))
    rate = _rate(spec, where)
    return rate, Decision(
        "error",
        _code(spec, "code", where, "20000"),
        _code(spec, "sub_code", where, "isp.unknow-error"),
        _code(spec, "sub_msg", where, "injected fault: service currently unavailable"),
    )


def _throttle(spec: Any, where: str) -> _Throttle:
    spec = _mapping(spec, where, ("rate", "burst", "code", "sub_code", "sub_msg"))
    rate = _number(spec, "rate", where, positive=True)
    burst = _number(spec, "burst", where) if "burst" in spec else max(1.0, rate)
    if burst < 1:
        raise ValueError(f"{where}.burst: must be >= 1, got {burst}")
    decision = Decision(
        "throttle",
        _code(spec, "code", where, "40005"),
        _code(spec, "sub_code", where, "isv.app-call-limited"),
        _code(spec, "sub_msg", where, "injected throttle: app call limit exceeded"),
    )
    return _Throttle(rate, burst, decision)


def _outage(spec: Any, where: str, start: float) -> _Outage:
    window_keys = ("start_s", "start_at", "duration_s")
    spec = _mapping(spec, where, ("mode", "windows", "hang_s", "code", "sub_code", "sub_msg", *window_keys))
    mode = spec.get("mode", "error")
    if mode not in OUTAGE_MODES:
        raise ValueError(f"{where}.mode: must be one of {', '.join(OUTAGE_MODES)}, got {mode!r}")
    if "windows" in spec:
        if any(k in spec for k in window_keys):
            raise ValueError(f"{where}: give either windows or start_s/start_at/duration_s, not both")
        raw = spec["windows"]
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"{where}.windows: must be a non-empty list of {{start_s|start_at, duration_s}}")
        windows = tuple(
            _window(_mapping(w, f"{where}.windows[{i}]", window_keys), f"{where}.windows[{i}]", start)
            for i, w in enumerate(raw)
        )
    else:
        windows = (_window(spec, where, start),)
    hang_s = _number(spec, "hang_s", where, positive=True) if "hang_s" in spec else DEFAULT_HANG_S
    if mode == "error":
        decision = Decision(
            "error",
            _code(spec, "code", where, "20000"),
            _code(spec, "sub_code", where, "isp.unknow-error"),
            _code(spec, "sub_msg", where, "injected outage: service currently unavailable"),
        )
    else:
        decision = Decision(mode, hang_s=hang_s if mode == "hang" else 0.0)
    return _Outage(windows, decision)


def _window(spec: Mapping[str, Any], where: str, start: float) -> tuple[float, float]:
    if "start_s" in spec and "start_at" in spec:
        raise ValueError(f"{where}: give start_s (relative) or start_at (epoch seconds), not both")
    if "start_at" in spec:
        begin = _number(spec, "start_at", where)
    elif "start_s" in spec:
        begin = start + _number(spec, "start_s", where)
    else:
        begin = -math.inf
    end = begin + _number(spec, "duration_s", where, positive=True) if "duration_s" in spec else math.inf
    return begin, end
