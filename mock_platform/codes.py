"""Business sub_codes (code 40004) of the mock, one per distinct outcome.

Alipay does not publish most of these (platform-apis.md §3, §4), so every one is configurable: the
defaults follow the names seen in the wild (`BUDGET_NOT_ENOUGH_ERROR`, `CASH_CAMP_BUDGET_INSUFFICIENT`,
`ACTIVITY_EXPIRED`) and invent the rest in the same style.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mock_platform.errors import GatewayError

BUSINESS_FAILED = "40004"


@dataclass(frozen=True, slots=True)
class Code:
    sub_code: str
    sub_msg: str


@dataclass(frozen=True, slots=True)
class BusinessCodes:
    """The table; a field name (e.g. `sold_out`) is what the ledger and the config speak."""

    sold_out: Code = Code("BUDGET_NOT_ENOUGH_ERROR", "voucher activity sold out: no stock left")
    user_limit: Code = Code("EXCEED_USER_LIMIT", "the user has reached the per-user limit of this activity")
    not_started: Code = Code("ACTIVITY_NOT_START", "the activity or budget has not started yet")
    ended: Code = Code("ACTIVITY_EXPIRED", "the activity or budget has ended")
    unknown_activity: Code = Code("ACTIVITY_NOT_EXIST", "no such voucher activity")
    unknown_campaign: Code = Code("CAMP_NOT_EXIST", "no such cash campaign")
    cash_budget_exhausted: Code = Code(
        "CASH_CAMP_BUDGET_INSUFFICIENT", "cash campaign budget insufficient (money or prize count used up)"
    )
    cash_user_limit: Code = Code(
        "EXCEED_TRIGGER_LIMIT", "the user has reached the send_freqency limit of this campaign"
    )
    unknown_budget: Code = Code("BUDGET_NOT_EXIST", "no such point budget")
    budget_disabled: Code = Code("BUDGET_DISABLED", "the point budget is disabled")
    points_budget_exhausted: Code = Code("BUDGET_NOT_ENOUGH", "point budget insufficient for this amount")
    invalid_user: Code = Code("USER_NOT_EXIST", "the user does not exist or the user_id/open_id is invalid")
    idempotency_conflict: Code = Code(
        "IDEMPOTENT_PARAM_CONFLICT", "this out_biz_no was already used with different parameters"
    )

    def error(self, name: str) -> GatewayError:
        """The GatewayError (40004) for outcome `name`."""
        code: Code = getattr(self, name)
        return GatewayError(BUSINESS_FAILED, code.sub_code, code.sub_msg)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> BusinessCodes:
        """Overrides from config: `{name: "SUB_CODE"}` or `{name: {sub_code, sub_msg}}`."""
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError("codes: must be a mapping of outcome name -> sub_code")
        base = cls()
        names = {f.name for f in dataclasses.fields(cls)}
        changes: dict[str, Code] = {}
        for name, value in data.items():
            if name not in names:
                raise ValueError(f"codes.{name}: unknown outcome (known: {', '.join(sorted(names))})")
            old: Code = getattr(base, name)
            if isinstance(value, str) and value:
                changes[name] = Code(value, old.sub_msg)
            elif isinstance(value, Mapping) and set(value) <= {"sub_code", "sub_msg"}:
                sub_code = value.get("sub_code", old.sub_code)
                sub_msg = value.get("sub_msg", old.sub_msg)
                if not (isinstance(sub_code, str) and sub_code and isinstance(sub_msg, str)):
                    raise ValueError(f"codes.{name}: sub_code and sub_msg must be non-empty strings")
                changes[name] = Code(sub_code, sub_msg)
            else:
                raise ValueError(f"codes.{name}: expected a sub_code string or {{sub_code, sub_msg}}")
        table = dataclasses.replace(base, **changes)
        seen: dict[str, str] = {}
        for f in dataclasses.fields(table):
            sub_code = getattr(table, f.name).sub_code
            if sub_code in seen:
                raise ValueError(f"codes.{f.name}: sub_code {sub_code} is already used by {seen[sub_code]}")
            seen[sub_code] = f.name
        return table

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {f.name: dataclasses.asdict(getattr(self, f.name)) for f in dataclasses.fields(self)}
