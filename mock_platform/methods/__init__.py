"""Handlers of both dialects: `METHODS[name](ledger, call)` (Alipay gateway methods) and
`WECHAT[name](ledger, call)` (jscode2session and WeChat Pay v3) -> success fields, or an error.

Each handler is synchronous (the ledger's critical section). The wrapper here is the one place
that counts outcomes per method for the audit totals (`ok`; replays and effects are counted by
`_common.replay`/`remember`) and turns a FieldError into the dialect's argument error: 40001/40002
for Alipay, 400 PARAM_ERROR for WeChat Pay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mock_platform.codes import BUSINESS_FAILED
from mock_platform.errors import GatewayError, WeChatError
from mock_platform.fields import FieldError
from mock_platform.ledger import Ledger
from mock_platform.methods import cash, follow, oauth, points, voucher, wechat
from mock_platform.methods._common import Call, argument_error

Handler = Callable[[Ledger, Call], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Dialect:
    """How a dialect reports a bad field, and which of its errors are business outcomes."""

    argument_error: Callable[[FieldError], Exception]
    is_business_failure: Callable[[Exception], bool]


ALIPAY = Dialect(argument_error, lambda e: isinstance(e, GatewayError) and e.code == BUSINESS_FAILED)
WECHAT_PAY = Dialect(
    wechat.field_error, lambda e: isinstance(e, WeChatError) and e.code in wechat.BUSINESS_FAILURES
)


def _counted(method: str, handler: Handler, dialect: Dialect) -> Handler:
    def counted(ledger: Ledger, call: Call) -> dict[str, Any]:
        stats = ledger.method_stats(method)
        try:
            result = handler(ledger, call)
        except FieldError as error:
            raise dialect.argument_error(error) from None
        except (GatewayError, WeChatError) as error:
            if dialect.is_business_failure(error):
                stats.business_failures += 1
            raise
        stats.ok += 1
        return result

    counted.__name__ = handler.__name__
    counted.__doc__ = handler.__doc__
    return counted


METHODS: dict[str, Handler] = {
    name: _counted(name, handler, ALIPAY)
    for module in (oauth, follow, voucher, cash, points)
    for name, handler in module.HANDLERS.items()
}
WECHAT: dict[str, Handler] = {
    name: _counted(name, handler, WECHAT_PAY) for name, handler in wechat.HANDLERS.items()
}

__all__ = ["ALIPAY", "METHODS", "WECHAT", "WECHAT_PAY", "Call", "Dialect", "Handler"]
