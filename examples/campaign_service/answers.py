"""What an endpoint answers, as data: the status, the JSON body and, for "try later", the
Retry-After seconds. The workflows return Answers; api.py turns them into HTTP responses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from campaign_service.alipay import Reply

__all__ = ["Answer", "error", "platform_rejected", "try_later"]


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


def platform_rejected(method: str, reply: Reply) -> Answer:
    """502: the platform refused the call for a reason that is not the user's (a configuration
    problem: unknown activity, bad signature, missing permission...)."""
    detail = " ".join(str(part) for part in (reply.code, reply.sub_code, reply.fields.get("sub_msg")) if part)
    return error(502, "platform_rejected", f"the platform refused {method}: {detail}")
