"""The one request pipeline: every platform call, whichever front end read it, in the same steps.

A front end (the gateway front over llhttp, the aiohttp gateway route, the aiohttp WeChat routes)
parses its transport into a `Call` for one dialect's `Wire` and hands it to `Pipeline.run`, or,
when the request cannot become a call (a bad signature, a body that is not JSON, ...), the error
to `Pipeline.refuse`. Here, and nowhere else: the fault is decided (base spec and drill layers),
the handler runs (sync, over the ledger: the ledger's critical section), the dialect renders the
answer (signing it when asked), the injected latency is drawn, and the call is counted once in
the metrics. The front end gets a transport-neutral `Reply` and carries it out: waits `delay`,
then writes status, headers and body, or drops the connection (`drop`).

What differs between dialects (the Alipay envelope and its RSA2 signature; WeChat Pay's status,
`{code, message}` and Wechatpay-* headers; jscode2session's errcode in an HTTP 200) is a `Wire`,
named by the front end for each call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mock_platform.faults import Decision, Faults
from mock_platform.ledger import Ledger
from mock_platform.methods import Call, Handler
from mock_platform.metrics import Metrics

__all__ = ["CLOSE", "NO_HEADERS", "RESET", "Pipeline", "Reply", "Sign", "Wire"]

log = logging.getLogger(__name__)

CLOSE = "close"  # Reply.drop of a hang: close the connection (FIN) once the delay is over
RESET = "reset"  # Reply.drop of a reset: abort the connection (RST) at once
NO_HEADERS: Mapping[str, str] = {}
Sign = str | None  # how to sign the answer: None (unsigned), or the dialect's signing mode


@dataclass(slots=True)  # not frozen: its __init__ would cost more on the hot path
class Reply:
    """A call's answer, rendered but not yet sent: the front end waits `delay` (the injected
    latency, or a hang's length), then writes `status`, `headers` and `body`, or, when `drop` is
    set, ends the connection without an answer (status 0). `outcome` is its metrics label."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    outcome: str
    delay: float = 0.0
    drop: str | None = None


class Wire(Protocol):
    """One dialect's half of the pipeline: its handlers and how it answers.

    `answers` are the exceptions that are answers in this dialect (a handler's business failure,
    a refused request); anything else raised is a mock bug, answered by `internal_error`.
    """

    @property
    def handlers(self) -> Mapping[str, Handler]: ...

    @property
    def answers(self) -> tuple[type[Exception], ...]: ...

    def success(self, method: str, result: dict[str, Any], sign: Sign) -> Reply: ...

    def failure(self, method: str, error: Exception, sign: Sign) -> Reply: ...

    def injected(self, decision: Decision) -> Exception:
        """The dialect's answer to an injected error or throttle."""
        ...

    def internal_error(self, method: str, sign: Sign) -> Reply: ...


class Pipeline:
    """Fault, handler, answer, latency and metrics for the calls of one mock."""

    __slots__ = ("_faults", "_ledger", "_metrics")

    def __init__(self, faults: Faults, ledger: Ledger, metrics: Metrics) -> None:
        self._faults = faults
        self._ledger = ledger
        self._metrics = metrics

    def run(self, wire: Wire, call: Call, key: str, sign: Sign, started: float) -> Reply:
        """Answer a parsed call; `key` is whose throttle bucket it takes (the app or merchant),
        `started` its time.perf_counter() at receipt. Never raises."""
        method = call.method
        faults = self._faults
        try:
            decision = faults.decide(method, key, call.now)
            if decision is None:
                try:
                    result = wire.handlers[method](self._ledger, call)
                except wire.answers as error:
                    reply = wire.failure(method, error, sign)
                else:
                    reply = wire.success(method, result, sign)
                reply.delay = faults.latency_s(method)
            elif decision.kind == "hang":
                reply = Reply(0, NO_HEADERS, b"", "hang", decision.hang_s, CLOSE)
            elif decision.kind == "reset":
                reply = Reply(0, NO_HEADERS, b"", "reset", 0.0, RESET)
            else:
                reply = wire.failure(method, wire.injected(decision), sign)
        except Exception:  # a mock bug still answers, as the platform's own "system error" does
            log.exception("%s: unexpected error", method)
            reply = wire.internal_error(method, sign)
        self._count(method, reply, started)
        return reply

    def refuse(self, wire: Wire, method: str, error: Exception, sign: Sign, started: float) -> Reply:
        """Answer a request that could not become a call, with the error its parsing raised
        (`method`: the metrics label it is counted under). Never raises."""
        if isinstance(error, wire.answers):
            try:
                reply = wire.failure(method, error, sign)
            except Exception:
                log.exception("%s: cannot answer %r", method, error)
                reply = wire.internal_error(method, sign)
        else:
            log.error("%s: unexpected error", method, exc_info=error)
            reply = wire.internal_error(method, sign)
        self._count(method, reply, started)
        return reply

    def _count(self, method: str, reply: Reply, started: float) -> None:
        """Once per call: its latency is up to the answer, the injected delay included; a dropped
        call never answers, so its latency is up to the decision."""
        elapsed = time.perf_counter() - started
        self._metrics.observe(method, reply.outcome, elapsed if reply.drop else elapsed + reply.delay)
