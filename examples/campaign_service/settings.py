"""Settings: the environment (and the CLI flags that override it) read once, checked, typed.

Every problem is a SettingsError with one sentence that names the variable; the CLI prints it as
one line and exits 2. Two refusals protect real money: without `CAMPAIGN_GATEWAY_URL`, or with
one whose host is not loopback (unless `CAMPAIGN_ALLOW_REMOTE_GATEWAY=1`), the service does not
start, so a rehearsal can never reach the real platform by accident; and without the platform's
public key it does not start (unless `CAMPAIGN_INSECURE_NO_VERIFY=1`), so a forged "success"
can never grant anything. WeChat is optional (`CAMPAIGN_WX_BASE_URL`); when it is on, the same
two rules hold for its URLs and the WeChat Pay public key.
"""

from __future__ import annotations

import ipaddress
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from campaign_service.alipay import load_private_key, load_public_key
from campaign_service.campaigns import CampaignConfig, CampaignConfigError, load_campaigns

__all__ = [
    "BUGS",
    "DEFAULT_APP_ID",
    "PlatformTuning",
    "Settings",
    "SettingsError",
    "WeChatSettings",
    "load_settings",
]

DEFAULT_APP_ID = "2021000000000001"  # the app of scenarios/seeds/*.yaml
DEFAULT_DB = "campaign.sqlite3"
BUG_NEW_BIZ_NO = "new-biz-no-on-retry"
BUGS = (BUG_NEW_BIZ_NO,)
_TRUE = ("1", "true", "yes", "on")
_WX_APPID = re.compile(r"[A-Za-z0-9_]{1,32}")
_WX_SECRET = re.compile(r"[\x21-\x7e]{1,128}")
_WX_MCHID = re.compile(r"[0-9]{1,32}")
_WX_SERIAL = re.compile(r"[0-9A-Za-z]{1,64}")
_WX_PUBLIC_KEY_ID = re.compile(r"PUB_KEY_ID_[0-9A-Za-z]{1,64}")


class SettingsError(ValueError):
    """A setting the service cannot start with; the message is one line naming the variable."""


@dataclass(frozen=True, slots=True)
class PlatformTuning:
    """How the service calls the platform (README: "Knobs")."""

    timeout_s: float = 2.0  # one attempt
    retries: int = 2  # extra attempts after the first
    backoff_s: float = 0.1  # first backoff ceiling; doubles per retry, equal jitter
    backoff_max_s: float = 1.0
    deadline_s: float = 5.0  # the most a user request may wait, everything included
    max_inflight: int = 128  # bulkhead: platform calls in flight
    breaker_failures: int = 5  # consecutive failed calls that open the breaker
    breaker_cooldown_s: float = 5.0
    budget_cache_s: float = 1.0


@dataclass(frozen=True, slots=True)
class WeChatSettings:
    """WeChat, when configured: the mini-program's login and WeChat Pay v3 as one merchant, in
    the "WeChat Pay public key" mode (answers verified with the public key named `public_key_id`)."""

    base_url: str  # {base_url}/sns/jscode2session (api.weixin.qq.com in production)
    pay_url: str  # {pay_url}/v3/... (api.mch.weixin.qq.com in production)
    appid: str  # the mini-program's appid
    secret: str  # its AppSecret, for jscode2session
    mchid: str  # the merchant id that signs Pay v3 calls (and, by default, created the stocks)
    serial_no: str  # the serial of the merchant's API certificate
    private_key: rsa.RSAPrivateKey  # the merchant's API key: signs every Pay v3 request
    platform_public_key: rsa.RSAPublicKey | None  # None only with CAMPAIGN_INSECURE_NO_VERIFY=1
    public_key_id: str | None  # PUB_KEY_ID_...: the Wechatpay-Serial of answers it signs


@dataclass(frozen=True, slots=True)
class Settings:
    host: str
    port: int
    gateway_url: str
    app_id: str
    app_private_key: rsa.RSAPrivateKey
    platform_public_key: rsa.RSAPublicKey | None  # None only with CAMPAIGN_INSECURE_NO_VERIFY=1
    admin_token: str | None
    db_path: Path
    campaigns: CampaignConfig
    bug: str | None
    session_secret: bytes
    session_ttl_s: int
    tuning: PlatformTuning
    max_body_bytes: int
    shutdown_grace_s: float
    wechat: WeChatSettings | None = None  # None: the /api/wx/* routes answer 404


def load_settings(
    env: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    db: str | None = None,
    bug: str | None = None,
    config: str | None = None,
) -> Settings:
    """Settings from `env` (os.environ), the keyword arguments being the CLI flags (they win)."""
    gateway_url = _gateway_url(env)
    app_id = env.get("CAMPAIGN_APP_ID", DEFAULT_APP_ID).strip()
    if not app_id.isdigit() or len(app_id) > 32:
        raise SettingsError(f"CAMPAIGN_APP_ID: an Alipay app id is up to 32 digits, got {app_id!r}")
    private = _key_text(env, "CAMPAIGN_APP_PRIVATE_KEY")
    if private is None:
        raise SettingsError(
            "CAMPAIGN_APP_PRIVATE_KEY_FILE (or CAMPAIGN_APP_PRIVATE_KEY) is required: "
            "the app's RSA private key that signs every gateway request"
        )
    public = _key_text(env, "CAMPAIGN_PLATFORM_PUBLIC_KEY")
    insecure = _flag(env, "CAMPAIGN_INSECURE_NO_VERIFY")
    if public is None and not insecure:
        raise SettingsError(
            "CAMPAIGN_PLATFORM_PUBLIC_KEY_FILE (or CAMPAIGN_PLATFORM_PUBLIC_KEY) is required to verify "
            "the platform's response signatures (set CAMPAIGN_INSECURE_NO_VERIFY=1 to run without)"
        )
    try:
        app_key = load_private_key(private[1], private[0])
        platform_key = None if public is None else load_public_key(public[1], public[0])
        wechat = _wechat(env, insecure)
        campaigns = load_campaigns(config or env.get("CAMPAIGN_CONFIG") or None)
    except CampaignConfigError as exc:
        raise SettingsError(f"CAMPAIGN_CONFIG {exc}") from None
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    bug = bug or env.get("CAMPAIGN_BUG") or None
    if bug is not None and bug not in BUGS:
        raise SettingsError(f"unknown bug {bug!r} for --bug / CAMPAIGN_BUG (known: {', '.join(BUGS)})")
    admin_token = env.get("CAMPAIGN_ADMIN_TOKEN") or None
    if admin_token is not None and len(admin_token) < 8:
        raise SettingsError("CAMPAIGN_ADMIN_TOKEN: use at least 8 characters")
    secret_text = env.get("CAMPAIGN_SESSION_SECRET")
    if secret_text is not None and len(secret_text) < 16:
        raise SettingsError("CAMPAIGN_SESSION_SECRET: use at least 16 characters")
    tuning = PlatformTuning(
        timeout_s=_number(env, "CAMPAIGN_PLATFORM_TIMEOUT_S", 2.0, 0.01, 60),
        retries=int(_number(env, "CAMPAIGN_PLATFORM_RETRIES", 2, 0, 10, integer=True)),
        backoff_s=_number(env, "CAMPAIGN_PLATFORM_BACKOFF_S", 0.1, 0, 10),
        backoff_max_s=_number(env, "CAMPAIGN_PLATFORM_BACKOFF_MAX_S", 1.0, 0, 30),
        deadline_s=_number(env, "CAMPAIGN_REQUEST_DEADLINE_S", 5.0, 0.05, 120),
        max_inflight=int(_number(env, "CAMPAIGN_PLATFORM_MAX_INFLIGHT", 128, 1, 100_000, integer=True)),
        breaker_failures=int(_number(env, "CAMPAIGN_BREAKER_FAILURES", 5, 1, 10_000, integer=True)),
        breaker_cooldown_s=_number(env, "CAMPAIGN_BREAKER_COOLDOWN_S", 5.0, 0.01, 3600),
        budget_cache_s=_number(env, "CAMPAIGN_BUDGET_CACHE_S", 1.0, 0, 3600),
    )
    return Settings(
        host=host,
        port=port,
        gateway_url=gateway_url,
        app_id=app_id,
        app_private_key=app_key,
        platform_public_key=platform_key,
        admin_token=admin_token,
        db_path=Path(db or env.get("CAMPAIGN_DB") or DEFAULT_DB),
        campaigns=campaigns,
        bug=bug,
        session_secret=secret_text.encode() if secret_text else secrets.token_bytes(32),
        session_ttl_s=int(_number(env, "CAMPAIGN_SESSION_TTL_S", 7200, 60, 30 * 86400, integer=True)),
        tuning=tuning,
        max_body_bytes=int(_number(env, "CAMPAIGN_MAX_BODY_BYTES", 16384, 256, 1 << 20, integer=True)),
        shutdown_grace_s=_number(env, "CAMPAIGN_SHUTDOWN_GRACE_S", tuning.deadline_s + 1.0, 0, 300),
        wechat=wechat,
    )


def _gateway_url(env: Mapping[str, str]) -> str:
    url = env.get("CAMPAIGN_GATEWAY_URL", "").strip()
    if not url:
        raise SettingsError(
            "CAMPAIGN_GATEWAY_URL is required (e.g. http://127.0.0.1:PORT/gateway.do of the mock platform); "
            "refusing to start without knowing which platform to call"
        )
    _check_platform_url(env, "CAMPAIGN_GATEWAY_URL", url)
    return url


def _check_platform_url(env: Mapping[str, str], name: str, url: str) -> None:
    """An http(s) URL with a host, loopback unless CAMPAIGN_ALLOW_REMOTE_GATEWAY=1."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise SettingsError(f"{name}: not a URL ({exc}): {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name}: must be an http(s) URL with a host, got {url!r}")
    if not _is_loopback(parts.hostname) and not _flag(env, "CAMPAIGN_ALLOW_REMOTE_GATEWAY"):
        raise SettingsError(
            f"{name}: host {parts.hostname} is not loopback; refusing to call a platform "
            "that may be real (set CAMPAIGN_ALLOW_REMOTE_GATEWAY=1 if you mean it)"
        )


def _wx_base(env: Mapping[str, str], name: str, url: str) -> str:
    """A WeChat base URL (the paths are appended): checked, without a query, no trailing slash."""
    _check_platform_url(env, name, url)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise SettingsError(f"{name}: a base URL such as http://127.0.0.1:PORT, without a query, got {url!r}")
    return url.rstrip("/")


def _wx_text(env: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required with CAMPAIGN_WX_BASE_URL ({what})")
    if not pattern.fullmatch(value):
        raise SettingsError(f"{name}: {what}, got {value[:40]!r}")
    return value


def _wechat(env: Mapping[str, str], insecure: bool) -> WeChatSettings | None:
    """WeChat's settings, or None when CAMPAIGN_WX_BASE_URL is unset (WeChat off)."""
    base = env.get("CAMPAIGN_WX_BASE_URL", "").strip()
    if not base:
        return None
    base = _wx_base(env, "CAMPAIGN_WX_BASE_URL", base)
    pay = env.get("CAMPAIGN_WX_PAY_BASE_URL", "").strip()
    pay = _wx_base(env, "CAMPAIGN_WX_PAY_BASE_URL", pay) if pay else base
    secret = _key_text(env, "CAMPAIGN_WX_SECRET")
    if secret is None:
        raise SettingsError(
            "CAMPAIGN_WX_SECRET (or CAMPAIGN_WX_SECRET_FILE) is required with CAMPAIGN_WX_BASE_URL "
            "(the mini-program's AppSecret, for jscode2session)"
        )
    if not _WX_SECRET.fullmatch(secret[1].strip()):
        raise SettingsError(f"{secret[0]}: the AppSecret is 1-128 printable ASCII characters")
    private = _key_text(env, "CAMPAIGN_WX_PRIVATE_KEY")
    if private is None:
        raise SettingsError(
            "CAMPAIGN_WX_PRIVATE_KEY_FILE (or CAMPAIGN_WX_PRIVATE_KEY) is required with "
            "CAMPAIGN_WX_BASE_URL: the merchant's API private key that signs every WeChat Pay request"
        )
    public = _key_text(env, "CAMPAIGN_WX_PLATFORM_PUBLIC_KEY")
    if public is None and not insecure:
        raise SettingsError(
            "CAMPAIGN_WX_PLATFORM_PUBLIC_KEY_FILE (or CAMPAIGN_WX_PLATFORM_PUBLIC_KEY) is required to verify "
            "WeChat Pay's answers (set CAMPAIGN_INSECURE_NO_VERIFY=1 to run without)"
        )
    key_id = None
    if public is not None:
        key_id = _wx_text(env, "CAMPAIGN_WX_PUBLIC_KEY_ID", _WX_PUBLIC_KEY_ID, "its id, PUB_KEY_ID_...")
    return WeChatSettings(
        base_url=base,
        pay_url=pay,
        appid=_wx_text(env, "CAMPAIGN_WX_APPID", _WX_APPID, "the mini-program's appid, 1-32 letters/digits"),
        secret=secret[1].strip(),
        mchid=_wx_text(env, "CAMPAIGN_WX_MCHID", _WX_MCHID, "the WeChat Pay merchant id: 1-32 digits"),
        serial_no=_wx_text(
            env, "CAMPAIGN_WX_SERIAL_NO", _WX_SERIAL, "the API certificate's serial, 1-64 letters/digits"
        ),
        private_key=load_private_key(private[1], private[0]),
        platform_public_key=None if public is None else load_public_key(public[1], public[0]),
        public_key_id=key_id,
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost could resolve anywhere


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _TRUE


def _key_text(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(where, text) of a key given as NAME_FILE (a path) or NAME (the PEM text), None if neither."""
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return f"{name}_FILE {path}", Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{name}_FILE: cannot read {path} ({exc})") from None
    text = env.get(name)
    return (name, text) if text else None


def _number(
    env: Mapping[str, str], name: str, default: float, low: float, high: float, *, integer: bool = False
) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise SettingsError(f"{name}: must be {kind} between {low:g} and {high:g}, got {raw!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise SettingsError(f"{name}: must be between {low:g} and {high:g}, got {raw!r}")
    return value
