"""`JsonUser`: a Locust user of a merchant's own JSON API (the service under test).

A mini-program talks JSON to its merchant's service, which talks to the platform. `self.api(...)`
sends one call and tells Locust the truth about it: a 2xx JSON object is a success; an answer
whose `result` (or, for a 4xx/5xx, `error`) the scenario declares in `expect` is an expected
business outcome (sold out, limit reached), a success counted apart; anything else (other
4xx/5xx, `{"result": "try_later"}` on a 503 unless declared, non-JSON, a success without a
`require`d field) is an error carrying the status and the code. A 2xx answer that names a grant
(its `told` field, the biz number) is also recorded as what the user was told, for the
three-way reconciliation with the service's records and the platform's ledger.

Each user keeps one keep-alive connection, as each phone does (see `PlatformUser`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import orjson
from locust import FastHttpUser

import loadkit.engine.plugin  # noqa: F401  (registers loadkit's options and listeners)
from loadkit.engine.connections import keep_alive_above_fd_setsize
from loadkit.measure.told import TOLD_KEY
from loadkit.platform.client import _json_dict, _snippet, _transport_failed

OUTCOME_KEY = "loadkit_outcome"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def _outcomes(expect: Iterable[str] | Mapping[str, str]) -> Mapping[str, str]:
    """`expect` as answer code -> outcome name (a plain list names each outcome by its code)."""
    return expect if isinstance(expect, Mapping) else {code: code for code in expect}


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class JsonUser(FastHttpUser):
    abstract = True
    # A call to the service that takes 10 s has failed the event already; don't wait Locust's 60 s.
    network_timeout = 10.0
    connection_timeout = 5.0
    max_retries = 0
    # The user id the service knows this user by, once known (after login): recorded with every
    # grant the user is told about, when the answer itself does not carry `user_id`.
    user_id: str | None = None
    default_headers: ClassVar[Mapping[str, str]] = JSON_HEADERS

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        keep_alive_above_fd_setsize(self)  # one connection per user, however many users

    def api(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        name: str | None = None,
        expect: Iterable[str] | Mapping[str, str] = (),
        require: Iterable[str] = (),
        told: str | Iterable[str] | None = "biz_no",
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """Send one JSON call; the answer (a success or a declared outcome) or None (an error,
        already reported to Locust with its reason).

        `expect`: answer codes that are business outcomes, `{"sold_out": "sold_out"}` or a list.
        `require`: fields a success must carry. `told`: the field naming the grant's biz number
        (or several names, the first present wins; None: record nothing)."""
        body = orjson.dumps(json) if json is not None else None
        all_headers = {**self.default_headers, **headers} if headers else self.default_headers
        with self.client.request(
            method,
            path,
            name=name or path,
            data=body,
            headers=all_headers,
            catch_response=True,
            context={},
        ) as response:
            if _transport_failed(response):
                return None  # Locust records the connection error or timeout itself
            status = response.status_code
            answer = _json_dict(response.content)
            if answer is None:
                response.failure(f"HTTP {status}, not a JSON object: {_snippet(response.content)}")
                return None
            ok = 200 <= status < 300
            code = answer.get("result")
            if not ok and code is None:
                code = answer.get("error")
            outcome = _outcomes(expect).get(code) if isinstance(code, str) else None
            if not ok and outcome is None:
                detail = answer.get("message") or _snippet(response.content)
                response.failure(f"HTTP {status} {code or '-'}: {detail}")
                return None
            if outcome is None:
                missing = [field for field in require if answer.get(field) in (None, "")]
                if missing:
                    response.failure(f"success without {', '.join(missing)}: {_snippet(response.content)}")
                    return None
            context = response.request_meta.get("context") or {}
            if outcome is not None:
                context = {**context, OUTCOME_KEY: outcome}
            if ok and told is not None:
                biz_no = _told_biz_no(answer, told)
                if biz_no is not None:
                    user = _text(answer.get("user_id")) or self.user_id
                    context = {**context, TOLD_KEY: (biz_no, _text(answer.get("grant_id")), user)}
            # a new dict rather than a mutation: the request's default context may be shared
            response.request_meta["context"] = context
            response.success()
            return answer


def _told_biz_no(answer: Mapping[str, Any], told: str | Iterable[str]) -> str | None:
    names = (told,) if isinstance(told, str) else told
    for field in names:
        value = _text(answer.get(field))
        if value is not None:
            return value
    return None
