"""Mini-program login as the platform sees it: auth code from the phone, then oauth.token.

A real user's phone calls my.getAuthCode and hands the code to the merchant's server, which trades
it for a user id and token (`alipay.system.oauth.token`, legacy top-level params). The mock's
client simulator (`POST /sim/auth_code`) stands in for the phone, so a scenario logs in with no
device. Sessions are cached per process so returning users skip the login, as they do in the app.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from loadkit.platform.client import PlatformClient

OAUTH_METHOD = "alipay.system.oauth.token"
DEFAULT_EXPIRES_S = 3600.0


@dataclass(frozen=True, slots=True)
class Session:
    user_id: str
    open_id: str | None
    access_token: str
    expires_at: float

    @property
    def valid(self) -> bool:
        return time.time() < self.expires_at


def login(platform: PlatformClient, user_id: str, *, info: bool = False) -> Session | None:
    """Log `user_id` in ("login.sim_code", "login.oauth", and "user.info" when `info`); None when
    a step failed (the failure is already reported to Locust)."""
    sim = platform.sim("/sim/auth_code", {"user_id": user_id}, name="login.sim_code", require=("auth_code",))
    if sim is None:
        return None
    node = platform.call(
        OAUTH_METHOD,
        params={"grant_type": "authorization_code", "code": sim["auth_code"]},
        name="login.oauth",
        require=("user_id", "access_token"),
    )
    if node is None:
        return None
    token = str(node["access_token"])
    if (
        info
        and platform.call("alipay.user.info.share", params={"auth_token": token}, name="user.info") is None
    ):
        return None
    try:
        expires_s = float(node.get("expires_in", DEFAULT_EXPIRES_S))
    except (TypeError, ValueError):
        expires_s = DEFAULT_EXPIRES_S
    return Session(str(node["user_id"]), node.get("open_id"), token, time.time() + expires_s)


class SessionCache:
    """Bounded (oldest out first) map user_id -> Session, shared by the users of one process."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, Session] = OrderedDict()

    def get(self, user_id: str) -> Session | None:
        session = self._data.get(user_id)
        if session is not None and not session.valid:
            del self._data[user_id]
            return None
        return session

    def put(self, session: Session) -> None:
        self._data[session.user_id] = session
        self._data.move_to_end(session.user_id)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
