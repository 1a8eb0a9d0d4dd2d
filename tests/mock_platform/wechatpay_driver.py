"""Drive the `wechatpayv3` package (PyPI), unchanged, against a mock: run in its own process by
test_wechatpay.py, because importing `requests` into the test process breaks gevent's later
monkey-patching of ssl (Locust tests in the same run).

Reads a JSON job on stdin (url, mode "public_key" or "certificate", the merchant's mchid, serial,
private key and APIv3 key, the platform's public key and id, appid, openid), prints one JSON
object: each step's name, HTTP status and parsed body, or the exception the SDK raised. The SDK
verifies the signature of every 2xx answer itself and raises when one does not verify.

The SDK hard-codes https://api.mch.weixin.qq.com and, in the certificate mode, downloads the
certificates inside its constructor, before its base URL could be changed: so the requests it
sends are redirected to the mock at the transport (as a hosts entry would), nothing else.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import requests.adapters
from wechatpayv3 import WeChatPay, WeChatPayType

REAL = "https://api.mch.weixin.qq.com"
CN = timezone(timedelta(hours=8))


def redirect_to(url: str) -> None:
    send = requests.adapters.HTTPAdapter.send

    def redirected(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.url.startswith(REAL):
            request.url = url + request.url[len(REAL) :]
        return send(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = redirected  # type: ignore[method-assign]


def main() -> None:
    job = json.load(sys.stdin)
    redirect_to(job["url"])
    keys: dict[str, Any] = {}
    if job["mode"] == "public_key":
        keys = {"public_key": job["platform_public_key"], "public_key_id": job["platform_public_key_id"]}
    pay = WeChatPay(
        wechatpay_type=WeChatPayType.MINIPROG,
        mchid=job["mchid"],
        private_key=job["private_key"],
        cert_serial_no=job["serial_no"],
        appid=job["appid"],
        apiv3_key=job["apiv3_key"],
        timeout=(5, 10),
        **keys,
    )
    steps: list[dict[str, Any]] = []

    def step(name: str, call: Any) -> Any:
        try:
            status, text = call()
        except Exception as exc:  # the SDK raises when an answer's signature does not verify
            steps.append({"step": name, "error": f"{type(exc).__name__}: {exc}"})
            return None
        body = json.loads(text) if isinstance(text, str) and text else None
        steps.append({"step": name, "status": status, "body": body})
        return body

    now = datetime.now(CN).replace(microsecond=0)
    created = step(
        "create",
        lambda: pay.marketing_favor_stock_create(
            stock_name="mock stock",
            belong_merchant=job["mchid"],
            available_begin_time=now.isoformat(),
            available_end_time=(now + timedelta(days=30)).isoformat(),
            stock_use_rule={
                "max_coupons": 2,
                "max_amount": 200,
                "max_coupons_per_user": 1,
                "natural_person_limit": False,
                "prevent_api_abuse": False,
            },
            coupon_use_rule={"fixed_normal_coupon": {"coupon_amount": 100, "transaction_minimum": 100}},
            out_request_no=f"create-{time.time_ns()}",
        ),
    )
    stock_id = (created or {}).get("stock_id", "0")
    mchid, openid = job["mchid"], job["openid"]
    step("send_before_start", lambda: pay.marketing_favor_stock_send(stock_id, openid, "s-0", mchid))
    step("start", lambda: pay.marketing_favor_stock_start(mchid, stock_id))
    step("start_again", lambda: pay.marketing_favor_stock_start(mchid, stock_id))
    step("query_stock", lambda: pay.marketing_favor_stock_detail(mchid, stock_id))
    sent = step("send", lambda: pay.marketing_favor_stock_send(stock_id, openid, "s-1", mchid))
    step("send_replay", lambda: pay.marketing_favor_stock_send(stock_id, openid, "s-1", mchid))
    step("send_rule_limit", lambda: pay.marketing_favor_stock_send(stock_id, openid, "s-2", mchid))
    coupon_id = (sent or {}).get("coupon_id", "0")
    step("query_coupon", lambda: pay.marketing_favor_coupon_detail(coupon_id, openid))
    step("pause", lambda: pay.marketing_favor_stock_pause(mchid, stock_id))
    step("send_paused", lambda: pay.marketing_favor_stock_send(stock_id, openid, "s-3", mchid))
    step("query_missing_stock", lambda: pay.marketing_favor_stock_detail(mchid, "999999999"))
    print(json.dumps({"stock_id": stock_id, "coupon_id": coupon_id, "steps": steps}))


if __name__ == "__main__":
    main()
