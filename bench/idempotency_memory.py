"""Benchmark: the memory each gateway call leaves behind, i.e. what the idempotency bound implies.

Every successful points.send (or voucher.send) stays in the idempotency store until its window
closes or the cap evicts it: that, times the cap, is the memory a soak can reach. This drives
the real `Gateway.answer` (parsing, then the request pipeline) in-process (the same form the load
tests send: a new partner_biz_no per call, users from a population created beforehand) and counts,
with tracemalloc, the bytes still allocated after N calls, per call; then the store's entries, and
the cap's memory.

    .venv/bin/python bench/idempotency_memory.py                 # points.send, ~10 s
    .venv/bin/python bench/idempotency_memory.py --method voucher.send --calls 50000
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
import urllib.parse

from mock_platform.app import GATEWAY, STATE, create_app
from mock_platform.config import MockConfig

APP_ID = "2021000000000001"
USERS = 10_000
SEED = {
    "point_budgets": [{"budget_code": "JFB-MEM", "total_amount": 10**12}],
    "activities": [
        {
            "activity_id": "ACT-MEM",
            "activity_name": "memory",
            "quantity": 99_999_999,
            "quantity_limit_per_user": 0,
            "amount": "1.00",
            "publish_start_time": "2020-01-01 00:00:00",
            "publish_end_time": "2099-01-01 00:00:00",
        }
    ],
}
METHODS = {
    "points.send": (
        "alipay.user.alipaypoint.send",
        "partner_biz_no",
        {"budget_code": "JFB-MEM", "point_amount": 10},
    ),
    "voucher.send": ("alipay.marketing.activity.voucher.send", "out_biz_no", {"activity_id": "ACT-MEM"}),
}


def form(method: str, key_name: str, extra: dict, i: int) -> bytes:
    biz = {**extra, key_name: f"mem-{i:012d}", "user_id": f"2088{i % USERS:012d}"}
    return urllib.parse.urlencode(
        {
            "app_id": APP_ID,
            "method": method,
            "charset": "utf-8",
            "version": "1.0",
            "biz_content": json.dumps(biz),
        }
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", choices=sorted(METHODS), default="points.send")
    parser.add_argument("--calls", type=int, default=50_000, help="measured calls (default 50,000)")
    args = parser.parse_args()
    method, key_name, extra = METHODS[args.method]
    app = create_app(MockConfig.from_mapping({"seed": SEED}))
    gateway, ledger = app[GATEWAY], app[STATE].ledger
    store = ledger.idempotency
    now = time.time()

    def call(i: int) -> None:
        reply = gateway.answer(b"", form(method, key_name, extra, i), time.perf_counter(), now)
        assert b'"code":"10000"' in reply.body, reply

    for i in range(USERS):  # the population, and every cache, before measuring
        call(i)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    entries_before = len(store)
    for i in range(USERS, USERS + args.calls):
        call(i)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    added = len(store) - entries_before
    per_call = (after - before) / args.calls
    print(
        json.dumps(
            {
                "method": method,
                "calls": args.calls,
                "entries_added": added,
                "bytes_per_call": round(per_call),
                "ttl_s": store.ttl_s,
                "max_entries": store.max_entries,
                "cap_mb": round(per_call * store.max_entries / 2**20, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
