"""Life-account follow status: alipay.open.public.user.follow.query (set by /sim/follow)."""

from __future__ import annotations

from typing import Any

from mock_platform.fields import Reader
from mock_platform.ledger import Ledger
from mock_platform.methods._common import Call, resolve_user

FOLLOW_QUERY = "alipay.open.public.user.follow.query"


def follow_query(ledger: Ledger, call: Call) -> dict[str, Any]:
    user = resolve_user(ledger, Reader(call.biz), create=False)
    return {"is_follow": "T" if user is not None and user.followed else "F"}


HANDLERS = {FOLLOW_QUERY: follow_query}
