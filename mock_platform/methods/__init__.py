"""Alipay gateway methods: `METHODS[name](ledger, call) -> success fields`, or GatewayError.

Each handler is synchronous (the ledger's critical section). The wrapper here turns a FieldError
into 40001/40002 and counts outcomes per method for the audit totals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mock_platform.codes import BUSINESS_FAILED
from mock_platform.errors import GatewayError
from mock_platform.fields import FieldError
from mock_platform.ledger import Ledger
from mock_platform.methods import cash, follow, oauth, points, voucher
from mock_platform.methods._common import Call, argument_error

Handler = Callable[[Ledger, Call], dict[str, Any]]


def _counted(method: str, handler: Handler) -> Handler:
    def counted(ledger: Ledger, call: Call) -> dict[str, Any]:
        stats = ledger.method_stats(method)
        try:
            result = handler(ledger, call)
        except FieldError as error:
            raise argument_error(error) from None
        except GatewayError as error:
            if error.code == BUSINESS_FAILED:
                stats.business_failures += 1
            raise
        stats.ok += 1
        return result

    counted.__name__ = handler.__name__
    counted.__doc__ = handler.__doc__
    return counted


METHODS: dict[str, Handler] = {
    name: _counted(name, handler)
    for module in (oauth, follow, voucher, cash, points)
    for name, handler in module.HANDLERS.items()
}

__all__ = ["METHODS", "Call", "Handler"]
