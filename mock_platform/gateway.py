"""POST /gateway.do: the Alipay open-platform gateway.

Per call: read the query and the form (form wins), check method, app and signature, parse
biz_content, ask the faults, run the handler (synchronously: it is the ledger's critical
section), wait the injected latency, answer the envelope. Every failure, bad input included, is
an envelope; nothing here answers 5xx or leaks a traceback.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, cast
from urllib.parse import unquote_to_bytes

import orjson
from aiohttp import hdrs, web
from multidict import CIMultiDict

from mock_platform import envelope, signing
from mock_platform.errors import GatewayError
from mock_platform.faults import Decision
from mock_platform.methods import METHODS, Call

if TYPE_CHECKING:
    from mock_platform.app import MockState

log = logging.getLogger(__name__)

FORM_TYPE = "application/x-www-form-urlencoded"
# What the SDKs and HTTP clients send, accepted without parsing the header on the hot path.
USUAL_FORM_HEADERS = frozenset(
    f"{FORM_TYPE}{suffix}"
    for suffix in ("", ";charset=utf-8", "; charset=utf-8", ";charset=UTF-8", "; charset=UTF-8")
)
MAX_FIELDS = 200
INVALID_METHOD = "(invalid)"  # metrics label for calls whose method is missing or unknown
# Prebuilt: web.Response copies a CIMultiDict faster than it converts a dict.
_JSON_HEADERS = CIMultiDict({hdrs.CONTENT_TYPE: "application/json;charset=utf-8"})


class Refusal(GatewayError):
    """A gateway-level refusal, rendered before any handler ran (`status` != 200 only for 405/413)."""

    def __init__(self, code: str, sub_code: str, sub_msg: str, *, status: int = 200, error_node: bool = True):
        super().__init__(code, sub_code, sub_msg, error_node=error_node)
        self.status = status


def _invalid(sub_code: str, sub_msg: str, *, error_node: bool = True) -> Refusal:
    return Refusal("40002", sub_code, sub_msg, error_node=error_node)


def buffered_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body without awaiting when it is already buffered (a small form arrives with its
    headers), None when it must be read; refuses more than `limit` bytes like `read_body`.

    `request.read()` would copy it through a bytearray and two more awaits: ~4 µs a call under load.
    """
    content = request.content
    if not content.is_eof():
        return None
    body = content.read_nowait()
    if len(body) > limit:
        raise Refusal("40002", "isv.invalid-parameter", f"request body over {limit} bytes", status=413)
    return body


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes before reading them when the length is known."""
    body = buffered_body(request, limit)
    if body is not None:
        return body
    length = request.content_length
    if length is not None:
        if length > limit:
            raise Refusal("40002", "isv.invalid-parameter", f"request body over {limit} bytes", status=413)
        return await request.read()
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise Refusal("40002", "isv.invalid-parameter", f"request body over {limit} bytes", status=413)
    return bytes(body)


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


def _internal_error() -> dict:
    return GatewayError("20000", "isp.unknow-error", "internal error in the mock platform").body()


@dataclass(slots=True)  # not frozen: its __init__ would cost more on the hot path
class Reply:
    """What the gateway answers, before it is rendered: rendering (and the latency metric) waits
    for `delay`, the injected latency; `drop` ("close" or "reset") ends the connection instead.

    Both HTTP fronts (aiohttp's route and `front.py`) carry it out the same way.
    """

    status: int
    node: str
    inner: dict
    signed: bool
    method: str
    started: float
    delay: float = 0.0
    drop: str | None = None


class Gateway:
    """The /gateway.do logic bound to one mock's state, apart from any HTTP server: `dispatch`
    turns a query and a form body into a Reply, `render` turns that into the envelope's bytes."""

    def __init__(self, state: MockState) -> None:
        self.state = state
        self._signer = lambda data: signing.sign(state.private_key, data)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp route: every request `front.py` does not answer itself comes here."""
        started = time.perf_counter()
        try:
            body, not_form = await self._read_form(request)
        except Refusal as error:
            reply = self.refused(error, started)
        except Exception:  # a body aiohttp cannot decode (a bad gzip, ...): still an envelope
            log.exception("gateway: cannot read the request body")
            reply = self.refused(None, started)
        else:
            reply = self.dispatch(query_bytes(request), body, started, time.time(), not_form)
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        if reply.drop is not None:
            drop_connection(request, reset=reply.drop == "reset")
        response = web.Response(status=reply.status, body=self.render(reply), headers=_JSON_HEADERS)
        if reply.status == 405:
            response.headers["Allow"] = "POST"
        elif reply.status == 413:
            response.force_close()  # the rest of the body was never read
        return response

    async def _read_form(self, request: web.Request) -> tuple[bytes, Refusal | None]:
        """The body (405 and 413 raised), and the refusal of a body that is not a UTF-8 form,
        which `dispatch` raises once it has read the query."""
        if request.method != "POST":
            raise Refusal("40002", "isv.invalid-parameter", "gateway.do accepts POST only", status=405)
        limit = self.state.config.max_body_bytes
        body = buffered_body(request, limit)
        if body is None:
            try:  # a body that never completes: closed, as the gateway front closes it
                async with asyncio.timeout(self.state.config.body_timeout_s):
                    body = await read_body(request, limit)
            except TimeoutError:
                drop_connection(request, reset=False)
        if body:
            try:
                check_form_type(request)
            except Refusal as error:
                return body, error
        return body, None

    def refused(self, error: Refusal | None, started: float) -> Reply:
        """The Reply for a refusal before the params were read (405, 413), or for None: the body
        could not be read at all (20000)."""
        signed = self.state.config.sign_responses
        if error is None:
            return Reply(200, envelope.ERROR_NODE, _internal_error(), signed, INVALID_METHOD, started)
        node = envelope.ERROR_NODE if error.error_node else envelope.node_name(INVALID_METHOD)
        return Reply(error.status, node, error.body(), signed, INVALID_METHOD, started)

    def dispatch(
        self, query: bytes, body: bytes, started: float, now: float, not_form: Refusal | None = None
    ) -> Reply:
        """Read the params, check method, app and signature, parse biz_content, ask the faults, run
        the handler (synchronously: it is the ledger's critical section). Never raises.

        `not_form`: the refusal of a body that is not a UTF-8 form, raised after the query is read.
        """
        state = self.state
        method_label = INVALID_METHOD
        signed = state.config.sign_responses
        try:
            params = form_params(query, body, not_form)
            sign = params.get("sign", "")
            signed = signed or bool(sign)
            method = params.get("method", "")
            if not method:
                raise Refusal("40001", "isv.missing-method", "the method parameter is missing")
            handler = METHODS.get(method)
            if handler is None:
                raise _invalid("isv.invalid-method", f"no such method: {method[:100]}")
            method_label = method
            call = self._check(params, method, sign, now)
            decision = state.faults.decide(method, call.app_id, now)
            if decision is not None:
                return self._fault(decision, method, signed, started)
            try:
                result = handler(state.ledger, call)
                node, inner = envelope.node_name(method), envelope.success(result)
            except GatewayError as error:
                node = envelope.ERROR_NODE if error.error_node else envelope.node_name(method)
                inner = error.body()
            return Reply(200, node, inner, signed, method, started, state.faults.latency_s(method))
        except Refusal as error:
            node = envelope.ERROR_NODE if error.error_node else envelope.node_name(method_label)
            return Reply(error.status, node, error.body(), signed, method_label, started)
        except Exception:  # a mock bug must still answer an envelope, as Alipay's 20000 does
            log.exception("gateway: unexpected error")
            node = envelope.ERROR_NODE if method_label == INVALID_METHOD else envelope.node_name(method_label)
            return Reply(200, node, _internal_error(), signed, method_label, started)

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

    def _fault(self, decision: Decision, method: str, signed: bool, started: float) -> Reply:
        if decision.kind in ("error", "throttle"):
            error = GatewayError(decision.code, decision.sub_code or None, decision.sub_msg or None)
            return Reply(200, envelope.node_name(method), error.body(), signed, method, started)
        if decision.kind == "hang":
            self.state.metrics.observe(method, "hang", time.perf_counter() - started)
            return Reply(200, "", {}, signed, method, started, decision.hang_s, drop="close")
        self.state.metrics.observe(method, "reset", time.perf_counter() - started)
        return Reply(200, "", {}, signed, method, started, drop="reset")

    def render(self, reply: Reply) -> bytes:
        """The envelope's bytes, signed when the request was (or --sign-responses); counts the call
        in the metrics, its latency measured up to now. A result that cannot be written (a mock
        bug) answers 20000 instead, as an error raised in the handler would."""
        signer = self._signer if reply.signed else None
        try:
            body = envelope.render(reply.node, reply.inner, signer)
        except Exception:
            log.exception("gateway: cannot render the answer")
            reply.inner = _internal_error()
            body = envelope.render(reply.node, reply.inner, signer)
        inner = reply.inner
        code = inner["code"]
        sub_code = inner.get("sub_code")
        self.state.metrics.observe(
            reply.method, f"{code}/{sub_code}" if sub_code else code, time.perf_counter() - reply.started
        )
        return body


def close_transport(transport: asyncio.BaseTransport, *, reset: bool) -> None:
    """Close a connection without an answer: a TCP RST when `reset`, else a FIN."""
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        cast(asyncio.Transport, transport).abort()
    else:
        transport.close()


def drop_connection(request: web.Request, *, reset: bool) -> NoReturn:
    """Close the client's connection without an answer (see close_transport), ending the handler."""
    if request.transport is not None:
        close_transport(request.transport, reset=reset)
    raise asyncio.CancelledError
