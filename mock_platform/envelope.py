"""Alipay response bytes: `{"<node>":{...},"sign":"..."}`.

The inner object is serialized once and, when signing, the signature is computed over exactly
those bytes; `sign` comes after the node because the SDKs locate the signed text with a regex
that expects `}, "sign":"` right after it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson

ERROR_NODE = "error_response"
SUCCESS = {"code": "10000", "msg": "Success"}

Signer = Callable[[bytes], str]


@lru_cache(maxsize=256)  # a few dozen methods: saves rebuilding the same names on every call
def node_name(method: str) -> str:
    """`alipay.user.alipaypoint.send` -> `alipay_user_alipaypoint_send_response`."""
    return method.replace(".", "_") + "_response"


def render(node: str, inner: dict[str, Any], signer: Signer | None = None) -> bytes:
    """The whole envelope; `signer(inner_bytes) -> base64 sign` or None for an unsigned one."""
    body = orjson.dumps(inner)
    head = _head(node)
    if signer is None:
        return head + body + b"}"
    return head + body + b',"sign":"' + signer(body).encode("ascii") + b'"}'


@lru_cache(maxsize=256)
def _head(node: str) -> bytes:
    return b'{"' + node.encode("ascii", "replace") + b'":'


def success(result: dict[str, Any]) -> dict[str, Any]:
    """The inner object of a success: code and msg first, then the handler's fields."""
    return {**SUCCESS, **result}
