"""WeChat Pay API v3 signatures, both ways, and the platform's keys and certificate.

Requests carry `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",
signature="…",timestamp="…",serial_no="…"`, a SHA256withRSA signature over
`METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n` by the merchant's API key. Answers carry
`Wechatpay-Timestamp`, `Wechatpay-Nonce`, `Wechatpay-Signature` (over `TIMESTAMP\\nNONCE\\nBODY\\n`),
`Wechatpay-Serial` and `Wechatpay-Signature-Type`, signed by the platform: in the "WeChat Pay
public key" mode with the key whose id (`PUB_KEY_ID_…`) is the serial, in the platform
certificate mode with the certificate's key (serial: the certificate's, in hex), the certificate
being served by GET /v3/certificates encrypted under the merchant's APIv3 key (AEAD_AES_256_GCM).
The mock's two platform keys are its own, made when first needed (docs/wechat-apis.md).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import time
from dataclasses import dataclass
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from mock_platform import signing
from mock_platform.model import WxMerchant

__all__ = [
    "MAX_CLOCK_SKEW_S",
    "SCHEMA",
    "Authorization",
    "Platform",
    "SignError",
    "parse_authorization",
    "verify_request",
]

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
MAX_CLOCK_SKEW_S = 300  # "a timestamp more than 5 minutes off is refused"
CERT_VALID_DAYS = 365 * 5
_PARAM_RE = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*(?:,|$)')
_AUTH_KEYS = frozenset({"mchid", "nonce_str", "signature", "timestamp", "serial_no"})
PUBLIC_KEY_ID_RE = re.compile(r"PUB_KEY_ID_[0-9A-Za-z]{1,64}")
CN_TZ = dt.timezone(dt.timedelta(hours=8))


class SignError(Exception):
    """The request's signature is missing, malformed, wrong or stale: 401 SIGN_ERROR."""


@dataclass(frozen=True, slots=True)
class Authorization:
    mchid: str
    nonce_str: str
    signature: str
    timestamp: str
    serial_no: str


def parse_authorization(header: str) -> Authorization:
    """The five parameters of a `WECHATPAY2-SHA256-RSA2048 k="v",...` header (SignError if odd)."""
    schema, _, rest = header.partition(" ")
    if schema != SCHEMA:
        raise SignError(f"the Authorization header must start with {SCHEMA}")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _PARAM_RE.match(rest, pos)
        if match is None or match.group(1) in params:
            raise SignError('the Authorization header must be k="v" pairs separated by commas')
        params[match.group(1)] = match.group(2)
        pos = match.end()
    missing = sorted(_AUTH_KEYS - params.keys())
    if missing:
        raise SignError(f"the Authorization header lacks {', '.join(missing)}")
    unknown = sorted(params.keys() - _AUTH_KEYS)
    if unknown:
        raise SignError(f"the Authorization header has unknown parameters: {', '.join(unknown)}")
    return Authorization(**params)


def verify_request(
    merchant: WxMerchant | None, auth: Authorization, method: str, target: str, body: bytes, now: float
) -> None:
    """Check a parsed Authorization against the registered merchant (SignError if it fails)."""
    if merchant is None:
        raise SignError(f"merchant {auth.mchid[:32]!r} is not registered (POST /admin/wechat/merchants)")
    if auth.serial_no != merchant.serial_no:
        raise SignError("serial_no is not the serial of the merchant's registered API certificate")
    if not auth.timestamp.isascii() or not auth.timestamp.isdigit() or len(auth.timestamp) > 12:
        raise SignError("timestamp must be Unix seconds")
    if abs(int(auth.timestamp) - now) > MAX_CLOCK_SKEW_S:
        raise SignError("timestamp is more than 5 minutes off the platform's clock")
    head = f"{method}\n{target}\n{auth.timestamp}\n{auth.nonce_str}\n".encode()
    try:
        key = signing.load_public_key(merchant.public_key)
    except ValueError:
        raise SignError("the merchant's registered public key is unusable") from None
    if not signing.verify(key, head + body + b"\n", auth.signature):
        raise SignError("signature verification failed")


class Platform:
    """The platform's two signing keys: the public-key mode's and the certificate's (with a
    self-signed certificate). Made on first use: a mock that never answers WeChat Pay makes none."""

    def __init__(self, private_key_pem: str | None = None, public_key_id: str | None = None) -> None:
        self._given = private_key_pem
        self.public_key_id = public_key_id or "PUB_KEY_ID_" + str(secrets.randbelow(10**22)).zfill(22)

    @cached_property
    def key(self) -> rsa.RSAPrivateKey:
        """The public-key mode's key (given in the seed, or made here)."""
        if self._given is None:
            return signing.generate_private_key()
        key = serialization.load_pem_private_key(self._given.encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("private_key: must be an RSA key")
        return key

    @cached_property
    def public_key_pem(self) -> str:
        return signing.public_pem(self.key)

    @cached_property
    def cert_key(self) -> rsa.RSAPrivateKey:
        return signing.generate_private_key()

    @cached_property
    def certificate(self) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mock_platform"),
                x509.NameAttribute(NameOID.COMMON_NAME, "mock_platform WeChat Pay platform certificate"),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.cert_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=CERT_VALID_DAYS))
            .sign(self.cert_key, hashes.SHA256())
        )

    @cached_property
    def certificate_serial(self) -> str:
        """The certificate's serial as WeChat writes it: upper-case hex."""
        return format(self.certificate.serial_number, "X")

    @cached_property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def sign_headers(self, body: bytes, *, certificate_mode: bool) -> dict[str, str]:
        """The five Wechatpay-* headers of an answer with this body."""
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16).upper()
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        key = self.cert_key if certificate_mode else self.key
        return {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": signing.sign(key, message),
            "Wechatpay-Serial": self.certificate_serial if certificate_mode else self.public_key_id,
            "Wechatpay-Signature-Type": SCHEMA,
        }

    def certificates(self, apiv3_key: str) -> dict[str, object]:
        """GET /v3/certificates for a merchant: each certificate encrypted under its APIv3 key."""
        cert = self.certificate
        nonce = secrets.token_hex(6)  # 12 characters, used as the 12-byte GCM nonce
        associated_data = "certificate"
        sealed = AESGCM(apiv3_key.encode()).encrypt(
            nonce.encode(), self.certificate_pem.encode(), associated_data.encode()
        )
        return {
            "data": [
                {
                    "serial_no": self.certificate_serial,
                    "effective_time": _rfc3339(cert.not_valid_before_utc),
                    "expire_time": _rfc3339(cert.not_valid_after_utc),
                    "encrypt_certificate": {
                        "algorithm": "AEAD_AES_256_GCM",
                        "nonce": nonce,
                        "associated_data": associated_data,
                        "ciphertext": base64.b64encode(sealed).decode("ascii"),
                    },
                }
            ]
        }

    def describe(self) -> dict[str, str]:
        """GET /admin/wechat/platform."""
        return {
            "public_key": self.public_key_pem,
            "public_key_id": self.public_key_id,
            "certificate_serial": self.certificate_serial,
        }


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(CN_TZ).isoformat(timespec="seconds")
