"""The WeChat Pay API v3 protocol, without I/O: sign a request, verify and read an answer.

Facts (docs/wechat-apis.md §1, platform-apis.md §6.2): a request carries `Authorization:
WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"`,
the signature being SHA256withRSA (PKCS#1 v1.5, base64) by the merchant's API key over
`METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`, with exactly the bytes sent as BODY. An answer
is signed by the platform over `TIMESTAMP\\nNONCE\\nBODY\\n` (headers `Wechatpay-Timestamp`,
`-Nonce`, `-Signature`, `-Serial`, `-Signature-Type`); in the "WeChat Pay public key" mode the
serial is the public key's id, `PUB_KEY_ID_…`, and the client names it in `Wechatpay-Serial` on
every request.

What is trusted (pay.weixin.qq.com/wiki/doc/api_external/ch/wechatpay/wechatpay3_3.shtml: "没有携带
签名的成功应答(HTTP状态码为2xx)，应认为是伪造或被篡改的应答"; "请对携带了签名的应答进行验签"):
a 2xx must be signed and verify; any signed answer must verify; a signed answer must be fresh
(5 minutes, as the official Java validators allow). An unsigned answer that is not a 2xx is
taken only for what it cannot fake: 429 (throttled) and 5xx (trouble), and 401 (our signature
was refused, so the platform had nothing to sign with); any other unsigned refusal (a "sold
out" nobody signed) is not believed.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "MAX_ANSWER_AGE_S",
    "SCHEMA",
    "AnswerError",
    "PayReply",
    "authorization",
    "read_answer",
]

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
MAX_ANSWER_AGE_S = 300  # an answer whose Wechatpay-Timestamp is further off is refused (replay)
_PAD = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_UNSIGNED_OK = frozenset({401, 429})  # plus any 5xx


class AnswerError(Exception):
    """An answer that cannot be trusted: unsigned where it must be, a bad signature, not JSON."""


@dataclass(frozen=True, slots=True)
class PayReply:
    """A WeChat Pay answer that can be trusted: its status and its JSON object."""

    status: int
    fields: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str | None:
        """The error code of a refusal (NOT_ENOUGH, RULE_LIMIT, PARAM_ERROR...), None on a 2xx."""
        code = self.fields.get("code")
        return None if self.ok or code is None else str(code)

    @property
    def failure_code(self) -> str:
        """What a failed grant row records."""
        return self.code or f"HTTP_{self.status}"

    @property
    def detail(self) -> str:
        """The refusal in words, for a 502 `platform_rejected` message."""
        parts = (f"HTTP {self.status}", self.code, self.fields.get("message"))
        return " ".join(str(p) for p in parts if p)


def authorization(
    key: rsa.RSAPrivateKey,
    *,
    mchid: str,
    serial_no: str,
    method: str,
    target: str,
    body: bytes,
    now: float,
    nonce: str | None = None,
) -> str:
    """The Authorization header of one request: `target` is the path with its `?query` exactly
    as sent, `body` the exact bytes sent (b"" for a GET)."""
    timestamp = str(int(now))
    nonce = nonce or secrets.token_hex(16).upper()
    message = f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
    signature = base64.b64encode(key.sign(message, _PAD, _SHA256)).decode("ascii")
    return (
        f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def read_answer(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    key: rsa.RSAPublicKey | None,
    key_id: str | None,
    now: float,
) -> PayReply | None:
    """The answer as a PayReply once trusted; None for an unsigned 429 or 5xx (trouble, whose body
    means nothing); AnswerError when it cannot be trusted. `key` None (CAMPAIGN_INSECURE_NO_VERIFY)
    skips the signature checks."""
    signature = headers.get("Wechatpay-Signature")
    if key is not None:
        if signature is not None:
            _verify(headers, raw, signature, key, key_id, now)
        elif 200 <= status < 300:
            raise AnswerError("a 2xx answer without Wechatpay-Signature is forged or altered")
        elif status not in _UNSIGNED_OK and status < 500:
            raise AnswerError(f"an unsigned HTTP {status} refusal is not believed")
    if status == 429 or status >= 500:
        return None
    try:
        fields = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise AnswerError(f"the HTTP {status} answer is not JSON") from None
    if not isinstance(fields, dict):
        raise AnswerError(f"the HTTP {status} answer is not a JSON object")
    return PayReply(status, fields)


def _verify(
    headers: Mapping[str, str],
    raw: bytes,
    signature: str,
    key: rsa.RSAPublicKey,
    key_id: str | None,
    now: float,
) -> None:
    kind = headers.get("Wechatpay-Signature-Type")
    if kind != SCHEMA:
        raise AnswerError(f"Wechatpay-Signature-Type is {kind!r}, not {SCHEMA}")
    serial = headers.get("Wechatpay-Serial")
    if serial != key_id:
        raise AnswerError(f"the answer is signed with key {serial!r}, not the platform key {key_id}")
    timestamp, nonce = headers.get("Wechatpay-Timestamp", ""), headers.get("Wechatpay-Nonce", "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or not nonce:
        raise AnswerError("the answer lacks a Wechatpay-Timestamp (Unix seconds) or a Wechatpay-Nonce")
    if abs(int(timestamp) - now) > MAX_ANSWER_AGE_S:
        raise AnswerError("the answer's Wechatpay-Timestamp is more than 5 minutes off")
    message = f"{timestamp}\n{nonce}\n".encode() + raw + b"\n"
    try:
        key.verify(base64.b64decode(signature, validate=True), message, _PAD, _SHA256)
    except (binascii.Error, ValueError, InvalidSignature):
        raise AnswerError("the answer's signature does not verify against the platform key") from None
