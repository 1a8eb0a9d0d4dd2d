"""The Alipay gateway protocol, without I/O: sign a request, read and verify a response.

Facts (platform-apis.md §1): RSA2 is SHA256withRSA (PKCS#1 v1.5, base64) over every param but
`sign`, sorted by key, joined as raw `k=v&...` (empty values skipped, as the Java SDK does). The
common params travel in the query string and the business ones (`biz_content`, or the legacy
top-level params of `alipay.system.oauth.token`) in the form body, as the official SDKs send them.
A response is `{"<method>_response"|"error_response": {...}, "sign": "..."}` and the platform signs
the exact bytes of that node's value, so those bytes are found in the raw body, never re-serialized.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "CHINA_TZ",
    "ERROR_NODE",
    "Reply",
    "ResponseError",
    "load_private_key",
    "load_public_key",
    "node_name",
    "read_reply",
    "sign_content",
    "signed_request",
]

CHINA_TZ = timezone(timedelta(hours=8), "GMT+8")  # the gateway's `timestamp` is GMT+8
ERROR_NODE = "error_response"
SUCCESS_CODE = "10000"
_PAD = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_DECODER = json.JSONDecoder()
_WS = " \t\r\n"
_COMMON = ("app_id", "method", "format", "charset", "sign_type", "timestamp", "version", "sign")


class ResponseError(Exception):
    """A gateway answer that cannot be trusted: not the envelope, unsigned, or a bad signature."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A verified gateway answer: `fields` is the node's object (code, msg, sub_code, ...)."""

    node: str
    fields: dict[str, Any]

    @property
    def code(self) -> str:
        return str(self.fields.get("code", ""))

    @property
    def sub_code(self) -> str | None:
        sub = self.fields.get("sub_code")
        return str(sub) if sub else None

    @property
    def ok(self) -> bool:
        """The SDKs' `is_success`: code 10000 and no sub_code."""
        return self.code == SUCCESS_CODE and self.sub_code is None

    @property
    def failure_code(self) -> str:
        """What a failed grant row records: the sub_code, else the code."""
        return self.sub_code or self.code

    @property
    def detail(self) -> str:
        """The refusal in words, for a 502 `platform_rejected` message."""
        return " ".join(str(p) for p in (self.code, self.sub_code, self.fields.get("sub_msg")) if p)


def node_name(method: str) -> str:
    """`alipay.user.alipaypoint.send` -> `alipay_user_alipaypoint_send_response`."""
    return method.replace(".", "_") + "_response"


def sign_content(params: Mapping[str, str]) -> str:
    """`k=v&...` over every non-empty param but `sign`, sorted by key, values raw."""
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v != "")


def signed_request(
    key: rsa.RSAPrivateKey,
    app_id: str,
    method: str,
    *,
    biz: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    now: float,
) -> tuple[str, bytes]:
    """(query string, form body) of one signed call: `biz` goes as biz_content (JSON), `params`
    as top-level fields (what `alipay.system.oauth.token` takes)."""
    fields = {
        "app_id": app_id,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": datetime.fromtimestamp(now, CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"),
        "version": "1.0",
    }
    if params:
        fields.update(params)
    if biz is not None:
        fields["biz_content"] = orjson.dumps(biz).decode()
    content = sign_content(fields).encode()
    fields["sign"] = base64.b64encode(key.sign(content, _PAD, _SHA256)).decode("ascii")
    query = urlencode({k: fields[k] for k in _COMMON})
    body = urlencode({k: v for k, v in fields.items() if k not in _COMMON}).encode()
    return query, body


def read_reply(raw: bytes, method: str, key: rsa.RSAPublicKey | None) -> Reply:
    """The answer to `method`, its signature checked against the platform's `key` (None: not
    checked, CAMPAIGN_INSECURE_NO_VERIFY). ResponseError when it cannot be trusted."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ResponseError("the response is not UTF-8") from None
    members = _top_level(text)
    node = node_name(method)
    if node not in members:
        node = ERROR_NODE
        if node not in members:
            raise ResponseError(f"the response has neither {node_name(method)} nor {ERROR_NODE}")
    start, end, value = members[node]
    if not isinstance(value, dict):
        raise ResponseError(f"{node} is not an object")
    if key is not None:
        sign = members.get("sign")
        if sign is None or not isinstance(sign[2], str):
            raise ResponseError("the response is not signed")
        if not _verify(key, text[start:end].encode("utf-8"), sign[2]):
            raise ResponseError("the response signature does not verify against the platform key")
    return Reply(node, value)


def _top_level(text: str) -> dict[str, tuple[int, int, Any]]:
    """Each member of the top-level object: (start, end) of its raw value in `text`, and the value.

    Python's JSON scanner reports where each value ends, so the signed bytes are exactly what the
    platform sent, whatever the spacing or escaping."""
    try:
        i = _skip(text, 0)
        _expect(text, i, "{")
        i = _skip(text, i + 1)
        out: dict[str, tuple[int, int, Any]] = {}
        if text.startswith("}", i):
            return out
        while True:
            name, i = _DECODER.raw_decode(text, i)
            if not isinstance(name, str):
                raise ValueError("a member name is not a string")
            i = _skip(text, i)
            _expect(text, i, ":")
            start = _skip(text, i + 1)
            value, end = _DECODER.raw_decode(text, start)
            out[name] = (start, end, value)
            i = _skip(text, end)
            if text.startswith("}", i):
                if _skip(text, i + 1) != len(text):
                    raise ValueError("text after the response object")
                return out
            _expect(text, i, ",")
            i = _skip(text, i + 1)
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
        raise ResponseError(f"the response is not a JSON object ({exc})") from None


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _expect(text: str, i: int, char: str) -> None:
    if not text.startswith(char, i):
        raise ValueError(f"expected {char!r} at offset {i}")


def _verify(key: rsa.RSAPublicKey, data: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, data, _PAD, _SHA256)
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def load_private_key(text: str, where: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8) or the bare base64 Alipay's tools show."""
    data = text.strip()
    try:
        if data.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(data.encode("ascii"), password=None)
        else:
            key = serialization.load_der_private_key(
                base64.b64decode("".join(data.split()), validate=True), password=None
            )
    except (ValueError, TypeError, UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"{where}: not an unencrypted RSA private key in PEM or base64 ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{where}: must be an RSA key (RSA2 is SHA256withRSA)")
    if key.key_size < 2048:
        raise ValueError(
            f"{where}: RSA key of {key.key_size} bits; SHA256withRSA (Alipay's RSA2, WeChat Pay) needs 2048"
        )
    return key


def load_public_key(text: str, where: str) -> rsa.RSAPublicKey:
    """An RSA public key from SPKI PEM or the bare base64 body Alipay's console shows."""
    data = text.strip()
    try:
        if data.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(data.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(data.split()), validate=True))
    except (ValueError, TypeError, UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"{where}: not an RSA public key in PEM or base64 ({exc})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{where}: must be an RSA key")
    return key
