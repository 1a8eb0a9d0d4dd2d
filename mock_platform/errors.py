"""The two ways a handler reports a failure; the gateway and the WeChat routes render them."""

from __future__ import annotations

PUBLIC_MSGS: dict[str, str] = {
    "10000": "Success",
    "20000": "Service Currently Unavailable",
    "20001": "Insufficient Token Permissions",
    "40001": "Missing Required Arguments",
    "40002": "Invalid Arguments",
    "40003": "Insufficient Conditions",
    "40004": "Business Failed",
    "40005": "Call Limited",
    "40006": "Insufficient Permissions",
}


class GatewayError(Exception):
    """An Alipay gateway or business failure: public `code` plus `sub_code`/`sub_msg`.

    `error_node=True` renders under `error_response` instead of `<method>_response`, which is what
    Alipay does for a bad auth code or token.
    """

    status = 200  # the HTTP status it answers with: Alipay's is always 200 (gateway.Refusal: 405/413)

    def __init__(
        self,
        code: str,
        sub_code: str | None = None,
        sub_msg: str | None = None,
        *,
        msg: str | None = None,
        error_node: bool = False,
    ) -> None:
        self.code = code
        self.msg = msg or PUBLIC_MSGS.get(code, "Business Failed")
        self.sub_code = sub_code
        self.sub_msg = sub_msg
        self.error_node = error_node
        super().__init__(f"{code} {sub_code or ''} {sub_msg or ''}".strip())

    def body(self) -> dict[str, str]:
        out = {"code": self.code, "msg": self.msg}
        if self.sub_code:
            out["sub_code"] = self.sub_code
        if self.sub_msg:
            out["sub_msg"] = self.sub_msg
        return out


class WeChatError(Exception):
    """A WeChat failure. Pay v3 uses an HTTP status and `{code, message}`; jscode2session uses
    HTTP 200 and `{errcode, errmsg}` (status 200, `code` holds the errcode as a string)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{status} {code} {message}")
