"""POST /gateway.do: the Alipay open-platform gateway, its half of the request pipeline.

`Gateway.answer` reads a call from the query and the form (form wins), checking method, app,
signature and biz_content, and hands it to the pipeline (pipeline.py), which answers through
`AlipayWire`: the envelope, signed with RSA2 when the request was. Both HTTP front ends end here:
the gateway front (front.py) with the bytes it read, aiohttp's route (`Gateway.handle`) with the
request it was given. Every failure, bad input included, is an envelope; nothing here answers 5xx
or leaks a traceback.
"""

from __future__ import annotations

import binascii
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import orjson
from aiohttp import hdrs, web
from multidict import CIMultiDict

from mock_platform import envelope, signing
from mock_platform.aioroutes import BodyTooLarge, buffered_body, read_body, respond
from mock_platform.errors import GatewayError
from mock_platform.faults import Decision
from mock_platform.methods import METHODS, Call
from mock_platform.pipeline import Pipeline, Reply, Sign

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from mock_platform.app import MockState

FORM_TYPE = "application/x-www-form-urlencoded"
# What the SDKs and HTTP clients send, accepted without parsing the header on the hot path.
USUAL_FORM_HEADERS = frozenset(
    f"{FORM_TYPE}{suffix}"
    for suffix in ("", ";charset=utf-8", "; charset=utf-8", ";charset=UTF-8", "; charset=UTF-8")
)
MAX_FIELDS = 200
INVALID_METHOD = "(invalid)"  # metrics label for calls whose method is missing or unknown
RSA2: Sign = "RSA2"  # sign the answer (the only mode Alipay has)
# Prebuilt: web.Response copies a CIMultiDict faster than it converts a dict.
JSON_HEADERS = CIMultiDict({hdrs.CONTENT_TYPE: "application/json;charset=utf-8"})
_ALLOW_POST = CIMultiDict({**JSON_HEADERS, hdrs.ALLOW: "POST"})


class Refusal(GatewayError):
    """A gateway-level refusal, before any handler ran (`status` != 200 only for 405/413)."""

    def __init__(self, code: str, sub_code: str, sub_msg: str, *, status: int = 200, error_node: bool = True):
        super().__init__(code, sub_code, sub_msg, error_node=error_node)
        self.status = status


def _invalid(sub_code: str, sub_msg: str, *, error_node: bool = True) -> Refusal:
    return Refusal("40002", sub_code, sub_msg, error_node=error_node)


# Separators become NUL, "+" a space and "%" quoted-printable's "=", in one C pass; another keeps
# only what the pair structure is made of, to check it.
_TO_NUL = bytes.maketrans(b"&=+%", b"\x00\x00 =")
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b"&=%\r\n")))
_ALTERNATING = b"=&" * MAX_FIELDS


class TooManyFields(ValueError):
    """The form has MAX_FIELDS or more "&"."""


def parse_form(raw: bytes) -> dict[str, str]:
    """`k=v&...` (application/x-www-form-urlencoded) as a dict; a later duplicate wins, empty
    pairs are skipped, UnicodeDecodeError when a key or value is not UTF-8, TooManyFields beyond
    MAX_FIELDS pairs.

    Same result as urllib's parse_qsl, several times faster on a biz_content full of escapes. When
    every pair has exactly one "=" (what every client sends), the separators become NUL, %XX
    becomes quoted-printable =XX, and binascii decodes the whole body at once in C. What that
    could misread goes pair by pair through the stdlib: a stray % (binascii keeps or drops it, so
    the length tells), an encoded NUL (one more part), a line break (a soft line break to binascii).
    """
    structure = raw.translate(None, _NOT_STRUCTURE)
    escapes = structure.count(b"%")
    if escapes:
        structure = structure.replace(b"%", b"")
    # Odd and alternating: one "=" in every pair, no empty pair; at most MAX_FIELDS pairs.
    if len(structure) % 2 and structure == _ALTERNATING[: len(structure)]:
        decoded = binascii.a2b_qp(raw.translate(_TO_NUL))
        if len(decoded) == len(raw) - 2 * escapes:  # each %XX decoded to one byte
            parts = decoded.decode("utf-8").split("\x00")
            if len(parts) == len(structure) + 1:
                pairs = iter(parts)
                return dict(zip(pairs, pairs, strict=True))
    if raw.count(b"&") >= MAX_FIELDS:
        raise TooManyFields
    return {
        _unquote(k): _unquote(v) for k, _, v in (pair.partition(b"=") for pair in raw.split(b"&") if pair)
    }


def _unquote(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")


def _parse_qs(raw: bytes, where: str) -> dict[str, str]:
    try:
        return parse_form(raw)
    except UnicodeDecodeError:
        raise _invalid("isv.invalid-charset", f"the {where} is not valid UTF-8") from None
    except TooManyFields:
        raise _invalid("isv.invalid-parameter", f"the {where} has more than {MAX_FIELDS} fields") from None


def query_bytes(request: web.Request) -> bytes:
    """The raw query string of the request target (no URL object when it has no "?")."""
    if "?" not in request.raw_path:
        return b""
    return request.rel_url.raw_query_string.encode("utf-8", "surrogateescape")


def check_form_type(request: web.Request) -> None:
    """Refuses a body that is not a UTF-8 form; the usual header values skip parsing it."""
    if request.headers.get(hdrs.CONTENT_TYPE) in USUAL_FORM_HEADERS:
        return
    ctype = request.content_type
    if ctype != FORM_TYPE:
        raise _invalid("isv.invalid-parameter", f"the body must be {FORM_TYPE}, not {ctype}")
    charset = request.charset
    if charset and charset.lower() not in ("utf-8", "utf8"):
        raise _invalid("isv.invalid-charset", f"charset {charset} is not supported; use utf-8")


def form_params(query: bytes, body: bytes, not_form: Refusal | None = None) -> dict[str, str]:
    """Query-string params merged with the form body's (the form wins on a clash); a body that
    is not a UTF-8 form (`not_form`) is refused once the query is read, as it always was."""
    params = _parse_qs(query, "query string") if query else {}
    if not_form is not None:
        raise not_form
    if body:
        params.update(_parse_qs(body, "request body"))
    return params


class AlipayWire:
    """How the gateway answers: HTTP 200 (405/413 for the gateway's own refusals) and the envelope
    `{"<method>_response" | "error_response": {...}, "sign": ...}`, signed with the mock's key when
    the request was signed (or --sign-responses)."""

    __slots__ = ("_signer",)
    handlers = METHODS
    answers = (GatewayError,)

    def __init__(self, private_key: RSAPrivateKey) -> None:
        self._signer = lambda data: signing.sign(private_key, data)

    def success(self, method: str, result: dict[str, Any], sign: Sign) -> Reply:
        inner = envelope.success(result)
        body = envelope.render(envelope.node_name(method), inner, self._signer if sign else None)
        return Reply(200, JSON_HEADERS, body, "10000")

    def failure(self, method: str, error: Exception, sign: Sign) -> Reply:
        assert isinstance(error, GatewayError)
        node = envelope.ERROR_NODE if error.error_node else envelope.node_name(method)
        body = envelope.render(node, error.body(), self._signer if sign else None)
        status = error.status
        outcome = f"{error.code}/{error.sub_code}" if error.sub_code else error.code
        return Reply(status, _ALLOW_POST if status == 405 else JSON_HEADERS, body, outcome)

    def injected(self, decision: Decision) -> Exception:
        return GatewayError(decision.code, decision.sub_code or None, decision.sub_msg or None)

    def internal_error(self, method: str, sign: Sign) -> Reply:
        """Alipay's 20000, under the method's node (error_response when the method is unknown)."""
        error = GatewayError(
            "20000",
            "isp.unknow-error",
            "internal error in the mock platform",
            error_node=method == INVALID_METHOD,
        )
        return self.failure(method, error, sign)


class Gateway:
    """The Alipay dialect's parsing, bound to one mock: `answer` turns a query and a form body
    into a Call for the pipeline (or a refusal), whichever HTTP front end read them."""

    def __init__(self, state: MockState, pipeline: Pipeline) -> None:
        self.state = state
        self.pipeline = pipeline
        self.wire = AlipayWire(state.private_key)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp route: every request `front.py` does not answer itself comes here."""
        started = time.perf_counter()
        try:
            body, not_form = await self._read_form(request)
        except Exception as error:  # 405, 413, or a body aiohttp cannot decode (a bad gzip, ...)
            sign = RSA2 if self.state.config.sign_responses else None
            reply = self.pipeline.refuse(self.wire, INVALID_METHOD, error, sign, started)
        else:
            reply = self.answer(query_bytes(request), body, started, time.time(), not_form)
        return await respond(request, reply)

    async def _read_form(self, request: web.Request) -> tuple[bytes, Refusal | None]:
        """The body (405 and 413 raised), and the refusal of a body that is not a UTF-8 form,
        which `answer` raises once it has read the query."""
        if request.method != "POST":
            raise Refusal("40002", "isv.invalid-parameter", "gateway.do accepts POST only", status=405)
        config = self.state.config
        try:
            body = buffered_body(request, config.max_body_bytes)
            if body is None:
                body = await read_body(request, config.max_body_bytes, config.body_timeout_s)
        except BodyTooLarge as exc:
            raise Refusal("40002", "isv.invalid-parameter", str(exc), status=413) from None
        if body:
            try:
                check_form_type(request)
            except Refusal as error:
                return body, error
        return body, None

    def answer(
        self, query: bytes, body: bytes, started: float, now: float, not_form: Refusal | None = None
    ) -> Reply:
        """Read the params, check method, app and signature, parse biz_content, and answer through
        the pipeline (synchronously: the handler is the ledger's critical section). Never raises.

        `not_form`: the refusal of a body that is not a UTF-8 form, raised after the query is read.
        """
        method = INVALID_METHOD
        sign = RSA2 if self.state.config.sign_responses else None
        try:
            params = form_params(query, body, not_form)
            signature = params.get("sign", "")
            if signature:
                sign = RSA2
            name = params.get("method", "")
            if not name:
                raise Refusal("40001", "isv.missing-method", "the method parameter is missing")
            if name not in METHODS:
                raise _invalid("isv.invalid-method", f"no such method: {name[:100]}")
            method = name
            call = self._check(params, method, signature, now)
        except Exception as error:
            return self.pipeline.refuse(self.wire, method, error, sign, started)
        return self.pipeline.run(self.wire, call, call.app_id, sign, started)

    def _check(self, params: dict[str, str], method: str, sign: str, now: float) -> Call:
        """App id, signature and biz_content; the Call for the handler."""
        app_id = params.get("app_id", "")
        if not app_id:
            raise Refusal("40001", "isv.missing-app-id", "the app_id parameter is missing", error_node=False)
        state = self.state
        pem = state.ledger.app_public_key(app_id)
        if sign:
            if pem is None:
                if state.config.strict:
                    raise Refusal(
                        "40003",
                        "isv.missing-signature-config",
                        f"app {app_id} has no public key registered (POST /admin/apps)",
                        error_node=False,
                    )
            else:
                self._verify(params, pem, sign)
        elif state.config.strict:
            raise Refusal("40001", "isv.missing-signature", "the sign parameter is missing", error_node=False)
        biz_raw = params.get("biz_content", "")
        biz: dict[str, Any] = {}
        if biz_raw:
            try:
                biz = orjson.loads(biz_raw)
            except orjson.JSONDecodeError as exc:
                raise _invalid(
                    "isv.invalid-parameter", f"biz_content is not JSON: {exc}", error_node=False
                ) from None
            if not isinstance(biz, dict):
                raise _invalid("isv.invalid-parameter", "biz_content must be a JSON object", error_node=False)
        return Call(app_id, method, params, biz, now)

    @staticmethod
    def _verify(params: dict[str, str], pem: str, sign: str) -> None:
        sign_type = params.get("sign_type", "")
        if sign_type != "RSA2":
            raise _invalid(
                "isv.invalid-signature-type", f"sign_type must be RSA2, got {sign_type!r}", error_node=False
            )
        try:
            key = signing.load_public_key(pem)
        except ValueError:
            raise Refusal(
                "40003",
                "isv.missing-signature-config",
                "the app's registered public key is unusable",
                error_node=False,
            ) from None
        ok, content = signing.verify_params(key, params, sign)
        if not ok:
            raise _invalid(
                "isv.invalid-signature",
                "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为："
                + content,
                error_node=False,
            )
