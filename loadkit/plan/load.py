"""Plan files: YAML read safely, validated key by key, resolved into the frozen model.

A plan mistake must be fixable from the message alone, so every `PlanError` names the file, the key
path (`stages[2].qps`) and what was expected; unknown keys are errors too (a typo such as
`qps_mni` silently ignored would judge a run against no budget at all), with a "did you mean".
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
import string
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from loadkit.plan.durations import parse_duration
from loadkit.plan.model import (
    ARRIVALS,
    PERCENTILE_KEYS,
    PLACEHOLDERS,
    AbortRule,
    Budgets,
    Drill,
    EndpointBudget,
    LatencyBudget,
    MockSetup,
    Plan,
    PlanError,
    ReconcileSetup,
    Safety,
    ServiceSetup,
    Stage,
)

_REQUIRED_HINTS = {
    "name": "the plan's name, a string",
    "stages": "a list of stages ({name, duration, qps})",
    "duration": 'a duration such as "30s" or "10m"',
    "qps": "a number ≥ 0 or [from, to]",
    "error_rate": "a number from 0 to 1",
    "for": 'a duration such as "30s"',
    "command": 'the command that starts the service, a list such as ["{python}", "-m", "my_service"]',
    "ready": 'a URL answering 200 once the service is ready, such as "http://127.0.0.1:{port}/healthz"',
    "at": 'the plan time the drill starts, such as "2m"',
    "faults": "a mapping of platform method (or '*') to fault settings",
}
DRILL_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")  # the mock's fault-layer names
FAULT_KEYS = ("latency", "error", "throttle", "outage")
_SAMPLE = {name: "1" for name in PLACEHOLDERS}  # to check that a URL with placeholders is a URL
_MCHID = re.compile(r"[0-9]{1,32}")


class _Loader(yaml.SafeLoader):
    """Safe YAML with two changes: timestamps stay the strings written (seed times such as
    `2026-01-01 00:00:00` must reach the mock as written, and `raw` must stay JSON-safe), and a
    key repeated in one mapping is an error (the second would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # SafeLoader reports unhashable keys itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))


def _read_document(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{label}: no such file", file=label) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{label}: cannot read: {exc}", file=label) from None
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanError(f"{label}: {where}invalid YAML: {problem}", file=label) from None


def load_plan(path: str | Path) -> Plan:
    """Read, validate and resolve the plan at `path` (raises PlanError, never anything else)."""
    path = Path(path)
    return parse_plan(_read_document(path, str(path)), source=path)


def parse_plan(data: Any, source: str | Path | None = None) -> Plan:
    """Validate an already-loaded plan document; relative paths resolve against `source`'s folder."""
    source = Path(source) if source is not None else None
    return _Parser(source).plan(data)


class _Parser:
    def __init__(self, source: Path | None) -> None:
        self.source = source
        self.label = str(source) if source is not None else "plan"
        self.base = source.parent if source is not None else Path.cwd()

    # --- reporting ---

    def error(self, key: str, expected: str, value: Any = ..., *, got: str | None = None) -> PlanError:
        if got is None and value is not ...:
            got = f"got {_show(value)}"
        detail = f"expected {expected}" + (f", {got}" if got else "")
        where = f"{self.label}: {key}" if key else self.label
        return PlanError(f"{where}: {detail}", file=self.label, key=key or None)

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, Mapping):
            raise self.error(key, f"a mapping with keys {', '.join(allowed)}", value)
        for k in value:
            if k not in allowed:
                sub = _join(key, str(k))
                hint = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.6)
                tip = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise PlanError(
                    f"{self.label}: {sub}: unknown key {k!r}{tip}; expected one of: {', '.join(allowed)}",
                    file=self.label,
                    key=sub,
                )
        for k in required:
            if k not in value:
                raise PlanError(
                    f"{self.label}: {_join(key, k)}: required key is missing (expected {_REQUIRED_HINTS[k]})",
                    file=self.label,
                    key=_join(key, k),
                )
        return dict(value)

    def number(
        self, value: Any, key: str, *, low: float = 0.0, high: float | None = None, strict: bool = False
    ) -> float:
        if high is not None:
            expected = f"a number from {low:g} to {high:g}"
        else:
            expected = f"a number > {low:g}" if strict else f"a number ≥ {low:g}"
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(key, expected, value)
        if value < low or (strict and value == low) or (high is not None and value > high):
            raise self.error(key, expected, value)
        return float(value)

    def optional(self, data: Mapping, name: str, key: str, convert: Callable[[Any, str], Any]) -> Any:
        value = data.get(name)
        return None if value is None else convert(value, _join(key, name))

    def duration(self, value: Any, key: str, *, positive: bool) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise PlanError(f"{self.label}: {key}: {exc}", file=self.label, key=key) from None
        if positive and seconds <= 0:
            raise self.error(key, "a duration > 0", value)
        return seconds

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "a non-empty string", value)
        return value.strip()

    def flag(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    # --- sections ---

    def plan(self, data: Any) -> Plan:
        if data is None:
            raise self.error(
                "", "a YAML mapping with name, stages, budgets, ...", got="the document is empty"
            )
        top = self.mapping(
            data,
            "",
            (
                "name",
                "locustfile",
                "host",
                "stages",
                "budgets",
                "safety",
                "mock",
                "arrivals",
                "service",
                "drills",
                "reconcile",
            ),
            ("name", "stages"),
        )
        name = self.text(top["name"], "name")
        stages = self.stages(top["stages"])
        budgets = self.budgets(top.get("budgets"))
        safety = self.safety(top.get("safety"))
        for i, stage in enumerate(stages):
            if safety.max_qps is not None and stage.peak_qps > safety.max_qps:
                raise PlanError(
                    f"{self.label}: stages[{i}].qps: stage {stage.name!r} asks {stage.peak_qps:g} QPS, "
                    f"above safety.max_qps {safety.max_qps:g}",
                    file=self.label,
                    key=f"stages[{i}].qps",
                )
        arrivals = top.get("arrivals", "constant")
        if arrivals not in ARRIVALS:
            raise self.error("arrivals", " or ".join(ARRIVALS), arrivals)
        duration = sum(stage.duration_s for stage in stages)
        return Plan(
            name=name,
            locustfile=self.optional(top, "locustfile", "", self.path),
            host=self.optional(top, "host", "", self.host),
            stages=stages,
            budgets=budgets,
            safety=safety,
            mock=self.mock(top.get("mock")),
            arrivals=arrivals,
            source=self.source,
            raw=dict(top),
            service=self.optional(top, "service", "", lambda v, k: self.service(v)),
            drills=self.drills(top.get("drills"), duration),
            reconcile=self.optional(top, "reconcile", "", lambda v, k: self.reconcile(v)),
        )

    def path(self, value: Any, key: str) -> Path:
        path = Path(self.text(value, key)).expanduser()
        return path if path.is_absolute() else (self.base / path)

    def host(self, value: Any, key: str) -> str:
        url = self.text(value, key)
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            _ = parts.port
        except ValueError:
            ok = False
        if not ok:
            raise self.error(key, "an http:// or https:// URL such as http://127.0.0.1:8080", value)
        return url.rstrip("/")

    def stages(self, value: Any) -> tuple[Stage, ...]:
        if not isinstance(value, list) or not value:
            raise self.error("stages", "a non-empty list of stages ({name, duration, qps})", value)
        stages = tuple(self.stage(item, i) for i, item in enumerate(value))
        seen: dict[str, int] = {}
        for i, stage in enumerate(stages):
            if stage.name in seen:
                raise self.error(
                    f"stages[{i}].name",
                    "a name unique among the stages",
                    got=f"{stage.name!r} is also stages[{seen[stage.name]}]",
                )
            seen[stage.name] = i
        gates = [i for i, s in enumerate(stages) if s.gate]
        if gates and gates != list(range(gates[0], gates[-1] + 1)):
            # The gate window is one span of time (first gate start to last gate end).
            gap = next(i for i in range(gates[0], gates[-1]) if i not in gates)
            raise self.error(
                f"stages[{gap}].gate",
                "gate stages to be consecutive (the judged window is one span)",
                got="it is not a gate stage but lies between two",
            )
        return stages

    def stage(self, value: Any, i: int) -> Stage:
        key = f"stages[{i}]"
        data = self.mapping(value, key, ("name", "duration", "qps", "users", "gate"), ("duration", "qps"))
        name = self.text(data["name"], f"{key}.name") if "name" in data else f"stage{i + 1}"
        qps_from, qps_to = self.qps(data["qps"], f"{key}.qps")
        users = data.get("users")
        if users is not None and (isinstance(users, bool) or not isinstance(users, int) or users < 1):
            raise self.error(f"{key}.users", "a whole number ≥ 1", users)
        return Stage(
            name=name,
            duration_s=self.duration(data["duration"], f"{key}.duration", positive=True),
            qps_from=qps_from,
            qps_to=qps_to,
            users=users,
            gate=self.flag(data.get("gate", False), f"{key}.gate"),
        )

    def qps(self, value: Any, key: str) -> tuple[float, float]:
        expected = "a number ≥ 0 or [from, to]"
        if isinstance(value, list):
            if len(value) != 2:
                raise self.error(key, expected, value)
            return self.qps_value(value[0], key, expected), self.qps_value(value[1], key, expected)
        q = self.qps_value(value, key, expected)
        return q, q

    def qps_value(self, value: Any, key: str, expected: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise self.error(key, expected, value)
        return float(value)

    def latency(self, value: Any, key: str) -> LatencyBudget:
        data = self.mapping(value, key, PERCENTILE_KEYS)
        return LatencyBudget(
            **{k: self.number(v, _join(key, k), strict=True) for k, v in data.items() if v is not None}
        )

    def rate(self, value: Any, key: str) -> float:
        return self.number(value, key, high=1.0)

    def budgets(self, value: Any) -> Budgets:
        if value is None:
            return Budgets()
        data = self.mapping(
            value, "budgets", ("qps_min", "latency_ms", "error_rate_max", "endpoints", "recovery_s")
        )
        endpoints_raw = data.get("endpoints") or {}
        if not isinstance(endpoints_raw, Mapping):
            raise self.error(
                "budgets.endpoints",
                "a mapping of request name -> {qps_min, latency_ms, error_rate_max}",
                endpoints_raw,
            )
        endpoints = {}
        for name, budget in endpoints_raw.items():
            key = f"budgets.endpoints.{name}"
            if not isinstance(name, str) or not name:
                raise self.error("budgets.endpoints", "request names (strings) as keys", name)
            ep = self.mapping(budget, key, ("qps_min", "latency_ms", "error_rate_max"))
            endpoints[name] = EndpointBudget(
                qps_min=self.optional(ep, "qps_min", key, self.number),
                latency_ms=self.optional(ep, "latency_ms", key, self.latency) or LatencyBudget(),
                error_rate_max=self.optional(ep, "error_rate_max", key, self.rate),
            )
        return Budgets(
            qps_min=self.optional(data, "qps_min", "budgets", self.number),
            latency_ms=self.optional(data, "latency_ms", "budgets", self.latency) or LatencyBudget(),
            error_rate_max=self.optional(data, "error_rate_max", "budgets", self.rate),
            endpoints=endpoints,
            recovery_s=self.optional(data, "recovery_s", "budgets", self.positive),
        )

    def safety(self, value: Any) -> Safety:
        if value is None:
            return Safety()
        data = self.mapping(value, "safety", ("allow_hosts", "max_qps", "abort_on"))
        return Safety(
            allow_hosts=self.optional(data, "allow_hosts", "safety", self.hosts),
            max_qps=self.optional(data, "max_qps", "safety", lambda v, k: self.number(v, k, strict=True)),
            abort_on=self.optional(data, "abort_on", "safety", self.abort_rule),
        )

    def hosts(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(
                key, 'a non-empty list of host names or addresses, such as ["127.0.0.1", "localhost"]', value
            )
        return tuple(self.text(h, f"{key}[{i}]") for i, h in enumerate(value))

    def abort_rule(self, value: Any, key: str) -> AbortRule:
        data = self.mapping(value, key, ("error_rate", "for"), ("error_rate", "for"))
        return AbortRule(
            error_rate=self.rate(data["error_rate"], f"{key}.error_rate"),
            for_s=self.duration(data["for"], f"{key}.for", positive=False),
        )

    def mock(self, value: Any) -> MockSetup | None:
        if value is None:
            return None
        data = self.mapping(value, "mock", ("seed", "audit", "expect"))
        expect = data.get("expect") or {}
        if not isinstance(expect, Mapping) or not all(isinstance(k, str) and k for k in expect):
            raise self.error(
                "mock.expect", "a mapping of audit totals paths to values, e.g. vouchers.ACT1.issued: 150"
            )
        return MockSetup(
            seed=self.optional(data, "seed", "mock", self.seed),
            audit=self.flag(data.get("audit", True), "mock.audit"),
            expect=dict(expect),
        )

    def seed(self, value: Any, key: str) -> Mapping[str, Any]:
        """A mapping, or a YAML/JSON file: either the seed itself or a mock config whose `seed:` part
        is taken (so one file can configure the mock and seed it)."""
        if isinstance(value, Mapping):
            return dict(value)
        if not isinstance(value, str):
            raise self.error(key, "a mapping or the path of a YAML/JSON seed file", value)
        path = self.path(value, key)
        label = f"{self.label}: {key}: {path}"
        doc = _read_document(path, label)  # YAML reads JSON too
        if isinstance(doc, Mapping) and isinstance(doc.get("seed"), Mapping):
            doc = doc["seed"]
        if not isinstance(doc, Mapping):
            raise self.error(key, "a seed file holding a mapping", got=f"{path} holds {type(doc).__name__}")
        return dict(doc)

    def positive(self, value: Any, key: str) -> float:
        return self.number(value, key, strict=True)

    # --- the three-tier rehearsal ---

    def service(self, value: Any) -> ServiceSetup:
        key = "service"
        data = self.mapping(
            value,
            key,
            (
                "command",
                "env",
                "ready",
                "ready_timeout",
                "stop_timeout",
                "settle_timeout",
                "host",
                "app_id",
                "records",
                "records_token_env",
                "wx_mchid",
            ),
            ("command", "ready"),
        )
        command = self.command(data["command"], f"{key}.command")
        env = self.env(data.get("env"), f"{key}.env")
        ready = self.template_url(data["ready"], f"{key}.ready")
        host = self.optional(data, "host", key, self.template_url) or _origin(ready)
        records = self.optional(data, "records", key, self.template_url)
        token_env = self.optional(data, "records_token_env", key, self.text)
        if token_env is not None and token_env not in env:
            raise self.error(
                f"{key}.records_token_env",
                "the name of a variable set in service.env (its value is sent as X-Admin-Token)",
                token_env,
            )
        app_id = data.get("app_id", ServiceSetup.app_id)
        if isinstance(app_id, int) and not isinstance(app_id, bool):
            app_id = str(app_id)  # YAML reads an unquoted app id as a number
        app_id = self.text(app_id, f"{key}.app_id")
        wx_mchid = data.get("wx_mchid", ServiceSetup.wx_mchid)
        if isinstance(wx_mchid, int) and not isinstance(wx_mchid, bool):
            wx_mchid = str(wx_mchid)
        if not isinstance(wx_mchid, str) or not _MCHID.fullmatch(wx_mchid):
            raise self.error(f"{key}.wx_mchid", "a WeChat Pay merchant id: 1-32 digits", wx_mchid)

        def seconds(name: str, default: float) -> float:
            raw = data.get(name)
            return default if raw is None else self.duration(raw, f"{key}.{name}", positive=True)

        return ServiceSetup(
            command=command,
            env=env,
            ready=ready,
            host=host,
            ready_timeout_s=seconds("ready_timeout", ServiceSetup.ready_timeout_s),
            stop_timeout_s=seconds("stop_timeout", ServiceSetup.stop_timeout_s),
            settle_timeout_s=seconds("settle_timeout", ServiceSetup.settle_timeout_s),
            app_id=app_id,
            records=records,
            records_token_env=token_env,
            wx_mchid=wx_mchid,
        )

    def command(self, value: Any, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            try:
                words = shlex.split(value)
            except ValueError as exc:
                raise self.error(key, "a command line shlex can split", value, got=str(exc)) from None
        elif isinstance(value, list):
            words = []
            for i, word in enumerate(value):
                if isinstance(word, bool) or not isinstance(word, str | int | float) or word == "":
                    raise self.error(f"{key}[{i}]", "a non-empty string", word)
                words.append(str(word))
        else:
            raise self.error(key, _REQUIRED_HINTS["command"], value)
        if not words:
            raise self.error(key, _REQUIRED_HINTS["command"], value)
        return tuple(self.template(word, key) for word in words)

    def env(self, value: Any, key: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(key, "a mapping of environment variable -> value", value)
        out = {}
        for name, raw in value.items():
            if not isinstance(name, str) or not name or "=" in name:
                raise self.error(key, "variable names (strings without '=') as keys", name)
            if isinstance(raw, bool) or not isinstance(raw, str | int | float):
                raise self.error(f"{key}.{name}", "a string or a number", raw)
            out[name] = self.template(str(raw), f"{key}.{name}")
        return out

    def template(self, value: str, key: str) -> str:
        """`value` with only known `{placeholders}` (`{{` and `}}` are literal braces)."""
        try:
            fields = [
                (name, spec, conversion)
                for _, name, spec, conversion in string.Formatter().parse(value)
                if name is not None
            ]
        except ValueError as exc:
            raise self.error(
                key, "text whose braces are placeholders such as {port}", value, got=str(exc)
            ) from None
        for name, spec, conversion in fields:
            if name not in PLACEHOLDERS or spec or conversion:
                hint = difflib.get_close_matches(name, PLACEHOLDERS, n=1, cutoff=0.6)
                tip = f" (did you mean {{{hint[0]}}}?)" if hint else ""
                raise PlanError(
                    f"{self.label}: {key}: unknown placeholder {{{name}}}{tip}; known: "
                    + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS),
                    file=self.label,
                    key=key,
                )
        return value

    def template_url(self, value: Any, key: str) -> str:
        text = self.template(self.text(value, key), key)
        try:
            parts = urlsplit(text.format(**_SAMPLE))
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            _ = parts.port
        except ValueError:
            ok = False
        if not ok:
            raise self.error(key, "an http:// URL such as http://127.0.0.1:{port}/healthz", value)
        return text

    def drills(self, value: Any, duration: float) -> tuple[Drill, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.error("drills", "a list of drills ({name, at, for, faults})", value)
        drills = []
        seen: dict[str, int] = {}
        for i, item in enumerate(value):
            key = f"drills[{i}]"
            data = self.mapping(
                item, key, ("name", "at", "for", "faults", "recovery_s"), ("at", "for", "faults")
            )
            name = self.text(data["name"], f"{key}.name") if "name" in data else f"drill{i + 1}"
            if not DRILL_NAME.fullmatch(name):
                raise self.error(f"{key}.name", "1-64 letters, digits, '.', '_' or '-'", name)
            if name in seen:
                raise self.error(
                    f"{key}.name",
                    "a name unique among the drills",
                    got=f"{name!r} is also drills[{seen[name]}]",
                )
            seen[name] = i
            at = self.duration(data["at"], f"{key}.at", positive=False)
            if at >= duration:
                raise self.error(
                    f"{key}.at", f"a plan time before the plan's end ({duration:g} s)", data["at"]
                )
            drills.append(
                Drill(
                    name=name,
                    at_s=at,
                    for_s=self.duration(data["for"], f"{key}.for", positive=True),
                    faults=self.faults(data["faults"], f"{key}.faults"),
                    recovery_s=self.optional(data, "recovery_s", key, self.positive),
                )
            )
        return tuple(drills)

    def faults(self, value: Any, key: str) -> dict[str, Any]:
        """Checked as far as loadkit can: the mock checks each setting when the drill is put."""
        if not isinstance(value, Mapping) or not value:
            raise self.error(key, _REQUIRED_HINTS["faults"], value)
        out = {}
        for method, settings in value.items():
            if not isinstance(method, str) or not method:
                raise self.error(key, "platform method names (or '*') as keys", method)
            out[method] = self.mapping(settings, f"{key}.{method}", FAULT_KEYS)
        return out

    def reconcile(self, value: Any) -> ReconcileSetup:
        data = self.mapping(value, "reconcile", ("per_user_limit",))
        raw = data.get("per_user_limit") or {}
        key = "reconcile.per_user_limit"
        if not isinstance(raw, Mapping):
            raise self.error(
                key, "a mapping of platform method (or campaign) -> effects allowed per user", raw
            )
        limits = {}
        for name, limit in raw.items():
            if not isinstance(name, str) or not name:
                raise self.error(key, "platform method or campaign names as keys", name)
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise self.error(f"{key}.{name}", "a whole number ≥ 1", limit)
            limits[name] = limit
        return ReconcileSetup(per_user_limit=limits)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
