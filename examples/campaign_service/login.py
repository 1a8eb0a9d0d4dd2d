"""The logins: `POST /api/login` (an Alipay auth code -> `alipay.system.oauth.token`) and
`POST /api/wx/login` (a wx.login code -> `jscode2session`), each -> a session of its platform.

Both codes are single-use, so the call is not repeated after an attempt that may have reached
the platform (a timeout): the repeat would be refused as a used code and the user told their code
was bad. It is repeated only when it certainly did not arrive (throttled, no connection). WeChat's
session_key stays on the server side: it is never sent to the mini-program.
"""

from __future__ import annotations

import re
import time

from campaign_service.answers import Answer, error, platform_rejected, try_later
from campaign_service.calls import Outcome
from campaign_service.gateway import PlatformClient
from campaign_service.sessions import SessionSigner
from campaign_service.wechat import CODE2SESSION, WeChatClient

__all__ = ["OAUTH_TOKEN", "login", "wechat_login"]

OAUTH_TOKEN = "alipay.system.oauth.token"
CODE_INVALID = ("isv.code-invalid",)
WX_CODE_INVALID = (40029, 40163)  # invalid code; code been used
WX_MINUTE_QUOTA = 45011  # the user's 100 logins a minute: "retry next minute"
WX_BLOCKED = 40226  # "code blocked": a high-risk user
_USER_ID = re.compile(r"2088[0-9]{12}")
_OPENID = re.compile(r"[A-Za-z0-9_-]{1,64}")


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


async def wechat_login(wechat: WeChatClient, signer: SessionSigner, code: str, deadline: float) -> Answer:
    result = await wechat.code2session(code, deadline=deadline)
    reply = result.reply
    if reply is None:
        return try_later(result.retry_after_s)
    if result.outcome is not Outcome.OK:
        if reply.errcode in WX_CODE_INVALID:
            return error(401, "invalid_code", "the wx.login code is invalid, used or expired; get a new one")
        if reply.errcode == WX_MINUTE_QUOTA:  # the code is spent; a new one works from the next minute
            return try_later(60 - int(time.time()) % 60)
        if reply.errcode == WX_BLOCKED:
            return error(403, "login_blocked", "WeChat refused this user's login (errcode 40226, high risk)")
        return platform_rejected(CODE2SESSION, reply)
    openid = reply.fields.get("openid")
    if not isinstance(openid, str) or not _OPENID.fullmatch(openid):
        return error(502, "platform_rejected", f"{CODE2SESSION} answered without a valid openid")
    session = signer.issue(openid, time.time(), wechat=True)
    return Answer(200, {"session": session, "user_id": openid, "openid": openid, "expires_in": signer.ttl_s})
