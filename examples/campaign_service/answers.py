"""What an endpoint answers, as data: the status, the JSON body and, for "try later", the
Retry-After seconds. The workflows return Answers; api.py turns them into HTTP responses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Answer", "Refusal", "error", "platform_rejected", "try_later"]


class Refusal(Protocol):
    """A platform's definite refusal (an Alipay Reply, a WeChat Pay answer): its words."""

    @property
    def detail(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    retry_after_s: int | None = None

    @property
    def result(self) -> str:
        """The metrics label: the body's `result`, its `error` code, or "ok"."""
        label = self.body.get("result") or self.body.get("error")
        if label is None:
            return "ok" if self.status < 400 else str(self.status)
        return str(label)


def try_later(seconds: int) -> Answer:
    """503: the platform is in trouble the service could not get past within its deadline."""
    seconds = max(1, seconds)
    return Answer(503, {"result": "try_later", "retry_after_s": seconds}, seconds)


def error(status: int, code: str, message: str) -> Answer:
    return Answer(status, {"error": code, "message": message})


def platform_rejected(method: str, reply: Refusal) -> Answer:
    """502: the platform refused the call for a reason that is not the user's (a configuration
    problem: unknown activity, bad signature, missing permission...)."""
    return error(502, "platform_rejected", f"the platform refused {method}: {reply.detail}")
