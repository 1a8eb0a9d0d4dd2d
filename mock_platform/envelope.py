"""Alipay response bytes: `{"<node>":{...},"sign":"..."}`.

The inner object is serialized once and, when signing, the signature is computed over exactly
those bytes; `sign` comes after the node because the SDKs locate the signed text with a regex
that expects `}, "sign":"` right after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

ERROR_NODE = "error_response"
SUCCESS = {"code": "10000", "msg": "Success"}

Signer = Callable[[bytes], str]


def node_name(method: str) -> str:
    """`alipay.user.alipaypoint.send` -> `alipay_user_alipaypoint_send_response`."""
    return method.replace(".", "_") + "_response"


def render(node: str, inner: dict[str, Any], signer: Signer | None = None) -> bytes:
    """The whole envelope; `signer(inner_bytes) -> base64 sign` or None for an unsigned one."""
    body = orjson.dumps(inner)
    head = b'{"' + node.encode("ascii", "replace") + b'":'
    if signer is None:
        return head + body + b"}"
    return head + body + b',"sign":"' + signer(body).encode("ascii") + b'"}'


def success(result: dict[str, Any]) -> dict[str, Any]:
    """The inner object of a success: code and msg first, then the handler's fields."""
    return {**SUCCESS, **result}
