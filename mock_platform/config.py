"""The mock's configuration: the YAML/JSON file (seed, faults, codes, idempotency, auth, limits)
plus the command-line switches, validated up front so a bad file fails at start with the key
named instead of at the first request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mock_platform.faults import Faults
from mock_platform.model import LedgerConfig
from mock_platform.seeding import Seed, parse_seed
from mock_platform.wxpay import PUBLIC_KEY_ID_RE, Platform

FILE_KEYS = (
    "seed",
    "faults",
    "codes",
    "idempotency",
    "auth",
    "random_seed",
    "limits",
    "effects",
    "wechat_platform",
)
LEDGER_KEYS = ("codes", "idempotency", "auth", "random_seed", "effects")
DEFAULT_MAX_BODY_BYTES = 65536
MAX_BODY_BYTES_CAP = 16 * 1024 * 1024
# How long a client may take (seconds) before its connection is closed. Head and body: nginx's
# client_header_timeout and client_body_timeout (60 s; aiohttp has neither). Keep-alive: what
# aiohttp's AppRunner uses (RequestHandler's default, 3630 s: longer than a proxy's usual 3600 s);
# both the gateway front and aiohttp get it.
DEFAULT_HEAD_TIMEOUT_S = 60.0
DEFAULT_BODY_TIMEOUT_S = 60.0
DEFAULT_KEEPALIVE_TIMEOUT_S = 3630.0
TIMEOUT_KEYS = ("head_timeout_s", "body_timeout_s", "keepalive_timeout_s")
MAX_TIMEOUT_S = 86400.0


class ConfigError(ValueError):
    """A bad configuration; the message names the file and the key."""


@dataclass(frozen=True)
class MockConfig:
    host: str = "127.0.0.1"
    port: int = 0
    admin_token: str | None = None  # None: create_app generates one
    profile: str | None = None  # fault preset under the file's faults
    strict: bool = False  # refuse unsigned gateway calls (40001 isv.missing-signature)
    sign_responses: bool = False  # sign every response, not only answers to signed requests
    debug_hooks: bool = False  # enable test-only admin routes
    seed: Seed | None = None  # parsed once here, applied at start and at every reset
    faults: Mapping[str, Any] | None = None
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # The WeChat Pay platform's public-key mode key: {private_key (PKCS#8 PEM), public_key_id}; {}
    # makes a fresh one (GET /admin/wechat/platform tells it).
    wechat_platform: Mapping[str, str] = field(default_factory=dict)
    head_timeout_s: float = DEFAULT_HEAD_TIMEOUT_S  # a request head that never completes
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S  # a request body that never completes
    keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S  # an idle connection

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, **options: Any) -> MockConfig:
        """Validate a config document (the file's content) and combine it with CLI `options`.

        Raises ConfigError naming the key at fault.
        """
        data = data or {}
        if not isinstance(data, Mapping):
            raise ConfigError("config: must be a mapping with keys " + ", ".join(FILE_KEYS))
        for key in data:
            if key not in FILE_KEYS:
                raise ConfigError(f"config: unknown key {key!r} (known: {', '.join(FILE_KEYS)})")
        try:
            ledger_config = LedgerConfig.from_mapping({k: data[k] for k in LEDGER_KEYS if k in data})
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        seed = None if data.get("seed") is None else check_seed(data["seed"])
        faults = data.get("faults")
        try:
            Faults.from_config(faults, options.get("profile"))
        except ValueError as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith("faults") else f"faults: {message}") from None
        limits = _limits(data.get("limits"))
        return cls(
            seed=seed,
            faults=faults,
            ledger=ledger_config,
            wechat_platform=_wechat_platform(data.get("wechat_platform")),
            **{**limits, **options},
        )


def check_seed(seed: Any) -> Seed:
    """The seed document parsed (public keys included), or ConfigError naming the bad entry."""
    if not isinstance(seed, Mapping):
        raise ConfigError("seed: must be a mapping (apps, users, activities, cash_campaigns, ...)")
    try:
        return parse_seed(seed)
    except ValueError as exc:
        raise ConfigError(str(exc) if str(exc).startswith("seed") else f"seed: {exc}") from None


def _limits(limits: Any) -> dict[str, Any]:
    """The `limits` section: the body limit and the client timeouts, as MockConfig fields."""
    if limits is None:
        return {}
    if not isinstance(limits, Mapping):
        raise ConfigError("limits: must be a mapping, e.g. {max_body_bytes: 65536, head_timeout_s: 60}")
    known = ("max_body_bytes", *TIMEOUT_KEYS)
    for key in limits:
        if key not in known:
            raise ConfigError(f"limits.{key}: unknown key (known: {', '.join(known)})")
    out: dict[str, Any] = {}
    if "max_body_bytes" in limits:
        value = limits["max_body_bytes"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value <= MAX_BODY_BYTES_CAP:
            raise ConfigError(f"limits.max_body_bytes: must be an integer from 1024 to {MAX_BODY_BYTES_CAP}")
        out["max_body_bytes"] = value
    for key in TIMEOUT_KEYS:
        if key in limits:
            out[key] = check_timeout(limits[key], f"limits.{key}")
    return out


def check_timeout(value: Any, name: str) -> float:
    """A timeout in seconds, more than 0 and at most a day; ConfigError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT_S:
        raise ConfigError(f"{name}: must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}")
    return float(value)


def _wechat_platform(spec: Any) -> dict[str, str]:
    """`wechat_platform: {private_key, public_key_id}`, checked: the key loads, the id looks real."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping) or set(spec) - {"private_key", "public_key_id"}:
        raise ConfigError("wechat_platform: must be a mapping with private_key and public_key_id")
    key, key_id = spec.get("private_key"), spec.get("public_key_id")
    if not isinstance(key_id, str) or not PUBLIC_KEY_ID_RE.fullmatch(key_id):
        raise ConfigError("wechat_platform.public_key_id: must be PUB_KEY_ID_ followed by letters or digits")
    if not isinstance(key, str):
        raise ConfigError("wechat_platform.private_key: an RSA private key (PKCS#8 PEM) is required")
    try:
        Platform(key, key_id).key  # noqa: B018 - loads it
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"wechat_platform.private_key: not a usable RSA private key ({exc})") from None
    return {"private_key_pem": key, "public_key_id": key_id}


def load_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON config file (JSON when the name ends in .json)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with keys {', '.join(FILE_KEYS)}")
    return data
