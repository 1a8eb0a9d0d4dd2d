"""Platform calls from Locust users: build the Alipay gateway request, classify the envelope.

Alipay answers HTTP 200 even when a call fails, so Locust alone would count every business failure
as a success. `PlatformClient.call` reads the envelope and tells Locust the truth: `10000` without a
sub_code is a success; a sub_code the scenario declares expected (sold out, limit reached) is a
success marked as a business outcome (`context["loadkit_outcome"]`, read by loadkit's plugin);
anything else is a failure whose message carries the code and sub_code, so errors group by cause.
"""

from __future__ import annotations

import base64
import functools
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Short request name -> Alipay method, for the calls that change the ledger (issue money, points or
# stock). The plugin reconciles these, per method, with the mock's ledger: every success a user saw
# must be one effect (or an idempotent replay), so a name must map to exactly one method.
REQUEST_NAMES: dict[str, str] = {
    "points.send": "alipay.user.alipaypoint.send",
    "voucher.send": "alipay.marketing.activity.voucher.send",
    "cash.trigger": "alipay.marketing.campaign.cash.trigger",
    "wx.coupon.send": "wechat.coupon.send",  # the mock's ledger name for WeChat Pay v3 coupon sends
}
# Calls that only read (or log in): named the same way, never reconciled (they have no effects).
READ_NAMES: dict[str, str] = {
    "login.oauth": "alipay.system.oauth.token",
    "user.info": "alipay.user.info.share",
    "follow.query": "alipay.open.public.user.follow.query",
    "voucher.query": "alipay.marketing.activity.voucher.query",
    "points.budget": "alipay.user.alipaypoint.budgetlib.query",
    "wx.login": "wechat.jscode2session",
}
_NAME_OF_METHOD = {method: name for name, method in (*REQUEST_NAMES.items(), *READ_NAMES.items())}

GATEWAY_PATH = "/gateway.do"
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
SUCCESS = "10000"
CHINA_TZ = timezone(timedelta(hours=8))  # Alipay timestamps are GMT+8 whatever the caller's zone


class SigningKeyError(ValueError):
    """The app private key could not be loaded (bad PEM, not RSA, unreadable file)."""


def new_biz_no(prefix: str = "LK") -> str:
    """A unique idempotency key (out_biz_no / partner_biz_no): unique across workers and machines,
    because uuid4 draws from os.urandom (safe after Locust forks its --processes workers)."""
    return prefix + uuid.uuid4().hex


def sign_content(params: Mapping[str, str]) -> str:
    """Alipay's request sign string: every param but `sign`, sorted by key, `k=v` joined by `&`,
    raw values (platform-apis.md §1.3); empty values are skipped, as the Java SDK does."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")


def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8), or from the bare base64 body Alipay's
    console hands out."""
    text = pem.decode() if isinstance(pem, bytes) else pem
    text = text.strip()
    candidates = (
        [text]
        if "-----BEGIN" in text
        else [_wrap_pem(text, "PRIVATE KEY"), _wrap_pem(text, "RSA PRIVATE KEY")]
    )
    for candidate in candidates:
        try:
            key = serialization.load_pem_private_key(candidate.encode(), password=None)
        except (ValueError, TypeError):
            continue
        if not isinstance(key, rsa.RSAPrivateKey):
            raise SigningKeyError("the app private key is not an RSA key (RSA2 needs RSA)")
        return key
    raise SigningKeyError("the app private key is not a readable unencrypted RSA PEM (PKCS#1 or PKCS#8)")


@functools.lru_cache(maxsize=8)
def _cached_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    """Parsing an RSA key costs milliseconds: do it once per process, not once per Locust user."""
    return load_private_key(pem)


def _wrap_pem(body: str, label: str) -> str:
    body = "".join(body.split())
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


def key_from_env() -> str | None:
    """The app private key from LOADKIT_APP_PRIVATE_KEY (PEM text) or LOADKIT_APP_PRIVATE_KEY_FILE."""
    if pem := os.environ.get("LOADKIT_APP_PRIVATE_KEY"):
        return pem
    if path := os.environ.get("LOADKIT_APP_PRIVATE_KEY_FILE"):
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read()
        except OSError as exc:
            raise SigningKeyError(f"LOADKIT_APP_PRIVATE_KEY_FILE={path}: {exc.strerror}") from None
    return None


def rsa2_sign(key: rsa.RSAPrivateKey, content: str) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: what RSA2 means at Alipay."""
    return base64.b64encode(key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


class _SecondClock:
    """The gateway timestamp, formatted once per second: formatting it on every call was ~3% of
    the generator's CPU in the mixed-event plan."""

    __slots__ = ("second", "text")

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.text = datetime.fromtimestamp(second, CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")
            self.second = second
        return self.text


gateway_timestamp = _SecondClock().now


def _outcome_names(expected: Iterable[str] | Mapping[str, str]) -> Mapping[str, str]:
    """`expected` as sub_code -> outcome name (a plain list names each outcome by its sub_code)."""
    if isinstance(expected, Mapping):
        return expected
    return {code: code for code in expected}


def mark_outcome(response: Any, outcome: str) -> None:
    """Mark a catch_response block's request as an expected business outcome, then success.

    FastHttpSession builds `request_meta["context"]` per request (merging the user's context) and
    fires the request event with it when the block exits; we replace the dict rather than mutate
    it, so a shared default dict can never leak the mark into other requests.
    """
    response.request_meta["context"] = {
        **response.request_meta.get("context", {}),
        "loadkit_outcome": outcome,
    }
    response.success()


class PlatformClient:
    """Alipay gateway calls through a Locust FastHttpSession (one per user)."""

    def __init__(
        self,
        http_client: Any,
        *,
        app_id: str,
        private_key_pem: str | bytes | None = None,
        sign_type: str = "RSA2",
    ) -> None:
        if sign_type != "RSA2":
            raise ValueError(f"sign_type {sign_type!r} is not supported: use RSA2 (RSA/SHA1 is deprecated)")
        self.http = http_client
        self.app_id = app_id
        self.sign_type = sign_type
        pem = private_key_pem if private_key_pem is not None else key_from_env()
        self._key = _cached_key(pem) if pem else None

    @property
    def signing(self) -> bool:
        return self._key is not None

    def build(
        self, method: str, biz: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """The gateway form for one call: common params, legacy top-level params, biz_content, sign."""
        form = {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": self.sign_type,
            "timestamp": gateway_timestamp(),
            "version": "1.0",
        }
        if params:
            form.update({k: str(v) for k, v in params.items() if v is not None})
        if biz is not None:
            form["biz_content"] = orjson.dumps(biz).decode()
        if self._key is not None:
            form["sign"] = rsa2_sign(self._key, sign_content(form))
        return form

    def call(
        self,
        method: str,
        biz: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        name: str | None = None,
        expected: Iterable[str] | Mapping[str, str] = (),
        require: Iterable[str] = (),
    ) -> dict[str, Any] | None:
        """POST one gateway call; return the response node (success or expected outcome) or None
        (failure, already reported to Locust with the reason). `expected`: sub_codes that are
        normal business outcomes (a mapping names them: `{"BUDGET_NOT_ENOUGH_ERROR": "sold_out"}`);
        `require`: fields a success must carry (a success without them is a failure)."""
        body = urlencode(self.build(method, biz, params), quote_via=quote)
        node_name = method.replace(".", "_") + "_response"
        with self.http.request(
            "POST",
            GATEWAY_PATH,
            name=name or _NAME_OF_METHOD.get(method, method),
            data=body,
            headers=FORM_HEADERS,
            catch_response=True,
            context={},
        ) as response:
            if _transport_failed(response):
                return None  # Locust records the connection error or timeout itself
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {_snippet(response.content)}")
                return None
            node = _envelope_node(response.content, node_name)
            if node is None:
                response.failure(f"unparsable gateway envelope: {_snippet(response.content)}")
                return None
            code = str(node.get("code", ""))
            sub_code = node.get("sub_code")
            if code == SUCCESS and not sub_code:
                return _succeed(response, node, require)
            outcome = _outcome_names(expected).get(sub_code) if sub_code else None
            if outcome is not None:
                mark_outcome(response, outcome)
                return node
            response.failure(
                f"{code} {sub_code or '-'}: {node.get('sub_msg') or node.get('msg') or ''}".rstrip(": ")
            )
            return None

    def sim(
        self, path: str, payload: Mapping[str, Any], *, name: str, require: Iterable[str] = ()
    ) -> dict[str, Any] | None:
        """POST JSON to the mock's client simulator (/sim/...): what the phone would do."""
        with self.http.request(
            "POST",
            path,
            name=name,
            data=orjson.dumps(payload),
            headers={"Content-Type": "application/json"},
            catch_response=True,
            context={},
        ) as response:
            data = _json_object(response)
            return None if data is None else _succeed(response, data, require)


def _succeed(response: Any, node: dict[str, Any], require: Iterable[str]) -> dict[str, Any] | None:
    missing = [field for field in require if not node.get(field)]
    if missing:
        response.failure(f"success without {', '.join(missing)}: {_snippet(orjson.dumps(node))}")
        return None
    response.success()
    return node


def _transport_failed(response: Any) -> bool:
    """No HTTP answer (connection refused, reset, timeout), or the body could not be read."""
    return response.status_code == 0 or (
        response.status_code == 200 and response.request_meta.get("exception") is not None
    )


def _json_dict(content: bytes | None) -> dict[str, Any] | None:
    """The body parsed as a JSON object, or None (empty, not JSON, or not an object)."""
    try:
        doc = orjson.loads(content or b"")
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _envelope_node(content: bytes | None, node_name: str) -> dict[str, Any] | None:
    doc = _json_dict(content)
    if doc is None:
        return None
    node = doc.get(node_name)
    if node is None:
        node = doc.get("error_response")
    return node if isinstance(node, dict) else None


def _snippet(content: bytes | None, limit: int = 120) -> str:
    text = (content or b"").decode("utf-8", "replace").strip()
    return text[:limit] + ("…" if len(text) > limit else "")


class WeChatClient:
    """WeChat mini-program login (jscode2session) and WeChat Pay v3 coupon sends.

    jscode2session answers HTTP 200 with `errcode` on failure; Pay v3 answers an HTTP status with
    `{"code", "message"}`. Declared codes (e.g. NOT_ENOUGH, RULE_LIMIT on 403) are expected
    outcomes; throttling (429), 5xx and anything undeclared are failures carrying status and code.
    """

    def __init__(self, http_client: Any, *, appid: str, secret: str, mchid: str = "1900000001") -> None:
        self.http = http_client
        self.appid = appid
        self.secret = secret
        self.mchid = mchid

    def code2session(self, js_code: str, *, name: str = "wx.login") -> dict[str, Any] | None:
        """openid and session_key for a code from wx.login (the mock's /sim/auth_code mints them)."""
        query = urlencode(
            {
                "appid": self.appid,
                "secret": self.secret,
                "js_code": js_code,
                "grant_type": "authorization_code",
            }
        )
        with self.http.request(
            "GET", f"/sns/jscode2session?{query}", name=name, catch_response=True, context={}
        ) as response:
            data = _json_object(response)
            if data is None:
                return None
            if data.get("errcode"):
                response.failure(f"errcode {data['errcode']}: {data.get('errmsg', '')}")
                return None
            return _succeed(response, data, ("openid",))

    def send_coupon(
        self,
        openid: str,
        stock_id: str,
        *,
        out_request_no: str | None = None,
        expected: Iterable[str] | Mapping[str, str] = (),
        name: str = "wx.coupon.send",
    ) -> dict[str, Any] | None:
        """POST /v3/marketing/favor/users/{openid}/coupons -> {"coupon_id"} (or the error body when
        its code is expected)."""
        body = {
            "stock_id": stock_id,
            "out_request_no": out_request_no or new_biz_no("WX"),
            "appid": self.appid,
            "stock_creator_mchid": self.mchid,
        }
        with self.http.request(
            "POST",
            f"/v3/marketing/favor/users/{quote(openid, safe='')}/coupons",
            name=name,
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            catch_response=True,
            context={},
        ) as response:
            if _transport_failed(response):
                return None
            data = _json_dict(response.content)
            if data is None:
                response.failure(f"HTTP {response.status_code}: {_snippet(response.content)}")
                return None
            if response.status_code == 200:
                return _succeed(response, data, ("coupon_id",))
            code = str(data.get("code", ""))
            outcome = _outcome_names(expected).get(code) if 400 <= response.status_code < 500 else None
            if outcome is not None and response.status_code != 429:
                mark_outcome(response, outcome)
                return data
            response.failure(f"HTTP {response.status_code} {code or '-'}: {data.get('message', '')}")
            return None


def _json_object(response: Any) -> dict[str, Any] | None:
    """The body as a JSON object (HTTP 200 only), or None after reporting the failure."""
    if _transport_failed(response):
        return None
    if response.status_code != 200:
        response.failure(f"HTTP {response.status_code}: {_snippet(response.content)}")
        return None
    data = _json_dict(response.content)
    if data is None:
        response.failure(f"not a JSON object: {_snippet(response.content)}")
        return None
    return data
