"""What the users were told: one row per success that named a grant (its biz number).

The three-way reconciliation needs, by id, every grant a user was told about, so a user class
(`JsonUser`) marks such answers and the role's request listener appends one tuple here. A worker
ships the rows it gathered since its last report (`take`) in its `WorkerReport`; the master
`extend`s its log with them. A tuple of four strings is the whole cost per grant (about 250 bytes
with its strings: 144,000 grants of a 10-minute run at 240/s are ~35 MB on the master).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

TOLD_KEY = "loadkit_told"  # request context key: (biz_no, grant_id, user_id), set by JsonUser
# (request name, biz number, grant id or None, user id or None)
Told = tuple[str, str, str | None, str | None]


class ToldError(ValueError):
    """A worker's told rows do not have the shape `take()` produces."""


class ToldLog:
    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: list[Told] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, name: str, biz_no: str, grant_id: str | None, user_id: str | None) -> None:
        self.rows.append((name, biz_no, grant_id, user_id))

    def take(self) -> list[Told]:
        """The rows gathered since the last call (a worker's share for the master); the log
        starts again empty."""
        rows, self.rows = self.rows, []
        return rows

    def extend(self, rows: Iterable[Told]) -> None:
        self.rows.extend(rows)


def check_told(rows: Any) -> list[Told]:
    """Rows received from a worker (msgpack makes the tuples lists), checked and as tuples."""
    if not isinstance(rows, list):
        raise ToldError(f"told rows must be a list, got {type(rows).__name__}")
    out: list[Told] = []
    for row in rows:
        if (
            not isinstance(row, list | tuple)
            or len(row) != 4
            or not isinstance(row[0], str)
            or not isinstance(row[1], str)
            or not all(v is None or isinstance(v, str) for v in row[2:])
        ):
            raise ToldError(
                f"a told row must be [name, biz_no, grant_id|null, user_id|null], got {row!r:.120}"
            )
        out.append((row[0], row[1], row[2], row[3]))
    return out
