"""RSA2 (SHA256withRSA, PKCS#1 v1.5, base64) as Alipay uses it, over `cryptography`.

Verifying keys are cached by PEM text: loading a PEM costs far more than a verify, and a load
test sends thousands of requests per app.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_PAD = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_PEM_HEAD = "-----BEGIN PUBLIC KEY-----"


def sign_content(params: Mapping[str, str], *, skip_empty: bool = True) -> str:
    """`k=v&...` over every param but `sign`, sorted by key, values raw.

    Alipay's Java SDK skips empty values, the Python SDK does not: `skip_empty` picks which.
    """
    return "&".join(
        f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and (v != "" or not skip_empty)
    )


def generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def sign(key: rsa.RSAPrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data, _PAD, _SHA256)).decode("ascii")


@lru_cache(maxsize=1024)
def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """An RSA public key from SPKI PEM, or from the bare base64 body Alipay's consoles show.

    Raises ValueError with a readable reason.
    """
    text = pem.strip()
    if not text.startswith("-----BEGIN"):
        body = "".join(text.split())
        text = f"{_PEM_HEAD}\n{body}\n-----END PUBLIC KEY-----"
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError, TypeError) as exc:
        raise ValueError(f"public_key: not a PEM public key ({exc})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("public_key: must be an RSA key")
    if key.key_size < 1024:
        raise ValueError(f"public_key: RSA key of {key.key_size} bits is too short")
    return key


def verify(key: rsa.RSAPublicKey, data: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(signature, data, _PAD, _SHA256)
    except InvalidSignature:
        return False
    return True


def verify_params(key: rsa.RSAPublicKey, params: Mapping[str, str], signature_b64: str) -> tuple[bool, str]:
    """Check a request's `sign`; returns (ok, the string checked) for the error's sub_msg.

    Tries the Java SDK's content first, then the Python SDK's when some value is empty.
    """
    content = sign_content(params)
    if verify(key, content.encode("utf-8"), signature_b64):
        return True, content
    if any(v == "" for k, v in params.items() if k != "sign"):
        with_empty = sign_content(params, skip_empty=False)
        if verify(key, with_empty.encode("utf-8"), signature_b64):
            return True, with_empty
    return False, content
