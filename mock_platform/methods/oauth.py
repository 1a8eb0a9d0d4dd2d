"""Mini-program login: alipay.system.oauth.token and alipay.user.info.share.

oauth.token takes top-level params (not biz_content). Auth codes and refresh tokens are single-use;
a bad one answers under `error_response`, as Alipay does.
"""

from __future__ import annotations

from typing import Any

from mock_platform.errors import GatewayError
from mock_platform.fields import FieldError, Reader, format_time
from mock_platform.ledger import Ledger
from mock_platform.methods._common import Call
from mock_platform.model import User

OAUTH_TOKEN = "alipay.system.oauth.token"
USER_INFO_SHARE = "alipay.user.info.share"


def oauth_token(ledger: Ledger, call: Call) -> dict[str, Any]:
    p = Reader(call.params, "")
    grant_type = p.text("grant_type", max_len=32)
    user: User | None
    if grant_type == "authorization_code":
        user = ledger.consume_auth_code(p.text("code", max_len=128), call.now)
        if user is None:
            raise GatewayError(
                "40002",
                "isv.code-invalid",
                "授权码code无效 (invalid, used or expired auth code)",
                error_node=True,
            )
    elif grant_type == "refresh_token":
        user_id = ledger.refresh_tokens.pop(p.text("refresh_token", max_len=128), call.now)
        user = None if user_id is None else ledger.users.get(user_id)
        if user is None:
            raise GatewayError(
                "40002",
                "isv.refreshed-token-invalid",
                "刷新令牌refresh_token无效 (invalid, used or expired)",
                error_node=True,
            )
    else:
        raise FieldError("grant_type", 'must be "authorization_code" or "refresh_token"')
    access, refresh = ledger.issue_tokens(user, call.now)
    return {
        "user_id": user.user_id,
        "open_id": user.open_id,
        "access_token": access,
        "expires_in": str(ledger.config.token_ttl_s),
        "refresh_token": refresh,
        "re_expires_in": str(ledger.config.refresh_token_ttl_s),
        "auth_start": format_time(call.now),
    }


def user_info_share(ledger: Ledger, call: Call) -> dict[str, Any]:
    token = call.params.get("auth_token")
    user = ledger.token_user(token, call.now) if isinstance(token, str) and token else None
    if user is None:
        raise GatewayError(
            "20001", "aop.invalid-auth-token", "无效的访问令牌 (missing, unknown or expired auth_token)"
        )
    return {
        "user_id": user.user_id,
        "open_id": user.open_id,
        "nick_name": user.display_name,
        "avatar": user.avatar,
        "gender": user.gender,
        "province": user.province,
        "city": user.city,
    }


HANDLERS = {OAUTH_TOKEN: oauth_token, USER_INFO_SHARE: user_info_share}
