"""An asyncio stand-in for the Alipay/WeChat coupon, points and mini-program login APIs.

Public names are imported lazily so `python -m mock_platform --help` and the error classes stay
cheap to import.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "mock_platform.app",
    "MockState": "mock_platform.app",
    "MockConfig": "mock_platform.config",
    "ConfigError": "mock_platform.config",
    "GatewayError": "mock_platform.errors",
    "WeChatError": "mock_platform.errors",
    "Ledger": "mock_platform.ledger",
    "Seed": "mock_platform.seeding",
    "parse_seed": "mock_platform.seeding",
    "Effect": "mock_platform.effects",
    "EffectJournal": "mock_platform.effects",
    "Platform": "mock_platform.wxpay",
    "openapi_document": "mock_platform.openapi",
    "Faults": "mock_platform.faults",
    "Pipeline": "mock_platform.pipeline",
    "Reply": "mock_platform.pipeline",
    "Wire": "mock_platform.pipeline",
    "start_serving": "mock_platform.serving",
    "Serving": "mock_platform.serving",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mock_platform' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
