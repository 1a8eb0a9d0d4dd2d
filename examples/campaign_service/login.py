"""POST /api/login: an auth code from the mini-program -> `alipay.system.oauth.token` -> a session.

The auth code is single-use, so the call is not repeated after an attempt that may have reached
the platform (a timeout): the repeat would be refused as a used code and the user told their code
was bad. It is repeated only when it certainly did not arrive (throttled, no connection).
"""

from __future__ import annotations

import re
import time

from campaign_service.answers import Answer, error, platform_rejected, try_later
from campaign_service.platform import Outcome, PlatformClient
from campaign_service.sessions import SessionSigner

__all__ = ["OAUTH_TOKEN", "login"]

OAUTH_TOKEN = "alipay.system.oauth.token"
CODE_INVALID = ("isv.code-invalid",)
_USER_ID = re.compile(r"2088[0-9]{12}")


async def login(platform: PlatformClient, signer: SessionSigner, auth_code: str, deadline: float) -> Answer:
    result = await platform.call(
        OAUTH_TOKEN,
        deadline=deadline,
        params={"grant_type": "authorization_code", "code": auth_code},
        idempotent=False,
    )
    reply = result.reply
    if reply is None:
        return try_later(result.retry_after_s)
    if result.outcome is not Outcome.OK:
        if reply.sub_code in CODE_INVALID:
            return error(401, "invalid_auth_code", "the auth code is invalid, used or expired; get a new one")
        return platform_rejected(OAUTH_TOKEN, reply)
    user_id = reply.fields.get("user_id")
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
        return error(502, "platform_rejected", f"{OAUTH_TOKEN} answered without a valid user_id")
    return Answer(
        200, {"session": signer.issue(user_id, time.time()), "user_id": user_id, "expires_in": signer.ttl_s}
    )
