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

FILE_KEYS = ("seed", "faults", "codes", "idempotency", "auth", "random_seed", "limits", "effects")
LEDGER_KEYS = ("codes", "idempotency", "auth", "random_seed", "effects")
DEFAULT_MAX_BODY_BYTES = 65536
MAX_BODY_BYTES_CAP = 16 * 1024 * 1024


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
        return cls(
            seed=seed,
            faults=faults,
            ledger=ledger_config,
            max_body_bytes=_max_body_bytes(data.get("limits")),
            **options,
        )


def check_seed(seed: Any) -> Seed:
    """The seed document parsed (public keys included), or ConfigError naming the bad entry."""
    if not isinstance(seed, Mapping):
        raise ConfigError("seed: must be a mapping (apps, users, activities, cash_campaigns, ...)")
    try:
        return parse_seed(seed)
    except ValueError as exc:
        raise ConfigError(str(exc) if str(exc).startswith("seed") else f"seed: {exc}") from None


def _max_body_bytes(limits: Any) -> int:
    if limits is None:
        return DEFAULT_MAX_BODY_BYTES
    if not isinstance(limits, Mapping):
        raise ConfigError("limits: must be a mapping, e.g. {max_body_bytes: 65536}")
    for key in limits:
        if key != "max_body_bytes":
            raise ConfigError(f"limits.{key}: unknown key (known: max_body_bytes)")
    value = limits.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value <= MAX_BODY_BYTES_CAP:
        raise ConfigError(f"limits.max_body_bytes: must be an integer from 1024 to {MAX_BODY_BYTES_CAP}")
    return value


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
