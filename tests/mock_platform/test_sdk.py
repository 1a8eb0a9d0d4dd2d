"""Fidelity: Alipay's official Python SDK (alipay-sdk-python, unchanged) against the mock, for every
gateway method, with every response signature verified by the SDK itself.

The SDK always connects to port 80 whatever the server_url says (platform-apis.md §1.1 PITFALL),
so the mock is bound to 127.0.0.1:80 here; the module is skipped where that port cannot be bound.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.domain.AlipayMarketingActivityVoucherCreateModel import (
    AlipayMarketingActivityVoucherCreateModel,
)
from alipay.aop.api.domain.AlipayMarketingActivityVoucherQueryModel import (
    AlipayMarketingActivityVoucherQueryModel,
)
from alipay.aop.api.domain.AlipayMarketingActivityVoucherSendModel import (
    AlipayMarketingActivityVoucherSendModel,
)
from alipay.aop.api.domain.AlipayMarketingCampaignCashCreateModel import (
    AlipayMarketingCampaignCashCreateModel,
)
from alipay.aop.api.domain.AlipayMarketingCampaignCashTriggerModel import (
    AlipayMarketingCampaignCashTriggerModel,
)
from alipay.aop.api.domain.AlipayOpenPublicUserFollowQueryModel import (
    AlipayOpenPublicUserFollowQueryModel,
)
from alipay.aop.api.domain.AlipayUserAlipaypointBudgetlibQueryModel import (
    AlipayUserAlipaypointBudgetlibQueryModel,
)
from alipay.aop.api.domain.AlipayUserAlipaypointSendModel import AlipayUserAlipaypointSendModel
from alipay.aop.api.exception.Exception import ResponseException
from alipay.aop.api.request.AlipayMarketingActivityVoucherCreateRequest import (
    AlipayMarketingActivityVoucherCreateRequest,
)
from alipay.aop.api.request.AlipayMarketingActivityVoucherQueryRequest import (
    AlipayMarketingActivityVoucherQueryRequest,
)
from alipay.aop.api.request.AlipayMarketingActivityVoucherSendRequest import (
    AlipayMarketingActivityVoucherSendRequest,
)
from alipay.aop.api.request.AlipayMarketingCampaignCashCreateRequest import (
    AlipayMarketingCampaignCashCreateRequest,
)
from alipay.aop.api.request.AlipayMarketingCampaignCashTriggerRequest import (
    AlipayMarketingCampaignCashTriggerRequest,
)
from alipay.aop.api.request.AlipayOpenPublicUserFollowQueryRequest import (
    AlipayOpenPublicUserFollowQueryRequest,
)
from alipay.aop.api.request.AlipaySystemOauthTokenRequest import AlipaySystemOauthTokenRequest
from alipay.aop.api.request.AlipayUserAlipaypointBudgetlibQueryRequest import (
    AlipayUserAlipaypointBudgetlibQueryRequest,
)
from alipay.aop.api.request.AlipayUserAlipaypointSendRequest import AlipayUserAlipaypointSendRequest
from alipay.aop.api.request.AlipayUserInfoShareRequest import AlipayUserInfoShareRequest
from alipay.aop.api.response.AlipayMarketingActivityVoucherCreateResponse import (
    AlipayMarketingActivityVoucherCreateResponse,
)
from alipay.aop.api.response.AlipayMarketingActivityVoucherQueryResponse import (
    AlipayMarketingActivityVoucherQueryResponse,
)
from alipay.aop.api.response.AlipayMarketingActivityVoucherSendResponse import (
    AlipayMarketingActivityVoucherSendResponse,
)
from alipay.aop.api.response.AlipayMarketingCampaignCashCreateResponse import (
    AlipayMarketingCampaignCashCreateResponse,
)
from alipay.aop.api.response.AlipayMarketingCampaignCashTriggerResponse import (
    AlipayMarketingCampaignCashTriggerResponse,
)
from alipay.aop.api.response.AlipayOpenPublicUserFollowQueryResponse import (
    AlipayOpenPublicUserFollowQueryResponse,
)
from alipay.aop.api.response.AlipaySystemOauthTokenResponse import AlipaySystemOauthTokenResponse
from alipay.aop.api.response.AlipayUserAlipaypointBudgetlibQueryResponse import (
    AlipayUserAlipaypointBudgetlibQueryResponse,
)
from alipay.aop.api.response.AlipayUserAlipaypointSendResponse import (
    AlipayUserAlipaypointSendResponse,
)
from alipay.aop.api.response.AlipayUserInfoShareResponse import AlipayUserInfoShareResponse
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mock_platform.app import create_app
from mock_platform.config import MockConfig
from mock_platform.serving import start_serving

HOST, PORT = "127.0.0.1", 80
TOKEN = "sdk-test-token"
APP_ID = "2021000000000777"
USER = "2088000000000777"
BUDGET = "JFB-SDK"
GMT8 = datetime.timezone(datetime.timedelta(hours=8))


def _port_80_problem() -> str | None:
    """Why 127.0.0.1:80 cannot be bound here, or None when it can."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((HOST, PORT))
    except OSError as exc:
        return f"cannot bind {HOST}:{PORT} ({exc.strerror}); the official Alipay SDK only connects to port 80"
    finally:
        probe.close()
    return None


class ThreadedMock:
    """The mock app served on its own event loop in a thread: the SDK under test is blocking."""

    def __init__(self, config: MockConfig, *, front: bool) -> None:
        self.app = create_app(config)
        self.front = front
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="mock-port-80", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            serving = self.loop.run_until_complete(start_serving(self.app, HOST, PORT, front=self.front))
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(serving.stop())
        self.loop.close()

    def __enter__(self) -> ThreadedMock:
        self.thread.start()
        if not self.ready.wait(10) or self.error is not None:
            raise RuntimeError(f"the mock did not start on {HOST}:{PORT}: {self.error}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def admin(method: str, path: str, body: Any = None, *, token: str | None = TOKEN) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{HOST}:{PORT}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Admin-Token", token)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _client(alipay_public_pem: str, app_private_pem: str) -> DefaultAlipayClient:
    config = AlipayClientConfig()
    config.server_url = f"http://{HOST}/gateway.do"
    config.app_id = APP_ID
    config.app_private_key = app_private_pem
    config.alipay_public_key = alipay_public_pem
    config.timeout = 10
    return DefaultAlipayClient(alipay_client_config=config)


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "aiohttp-only"])
def sdk(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The SDK against a mock on port 80, through the gateway front and then through aiohttp alone."""
    problem = _port_80_problem()
    if problem:
        pytest.skip(problem)
    config = MockConfig.from_mapping(
        {
            "seed": {
                "users": [{"user_id": USER, "nick_name": "sdk-user"}],
                "point_budgets": [{"budget_code": BUDGET, "total_amount": 100_000, "budget_desc": "sdk"}],
            }
        },
        admin_token=TOKEN,
    )
    app_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # The SDK loads a PKCS#1 app private key ("BEGIN RSA PRIVATE KEY"); the mock wants SPKI.
    private_pem = app_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        app_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with ThreadedMock(config, front=request.param):
        admin("POST", "/admin/apps", {"app_id": APP_ID, "public_key": public_pem})
        alipay_public = admin("GET", "/admin/keys")["alipay_public_key"]
        yield {"client": _client(alipay_public, private_pem), "private_pem": private_pem}


def call(client: DefaultAlipayClient, request: Any, response: Any) -> Any:
    """execute() (which verifies the response signature) and parse into the SDK response class."""
    response.parse_response_content(client.execute(request))
    return response


def _time(delta_days: float) -> str:
    return (datetime.datetime.now(GMT8) + datetime.timedelta(days=delta_days)).strftime("%Y-%m-%d %H:%M:%S")


def test_oauth_token_user_info_share_and_follow_query(sdk: dict[str, Any]) -> None:
    client = sdk["client"]
    code = admin("POST", "/sim/auth_code", {"user_id": USER}, token=None)["auth_code"]
    request = AlipaySystemOauthTokenRequest()
    request.grant_type = "authorization_code"
    request.code = code
    token = call(client, request, AlipaySystemOauthTokenResponse())
    assert token.is_success(), token.body
    assert token.user_id == USER and token.access_token and token.refresh_token

    again = call(client, request, AlipaySystemOauthTokenResponse())  # codes are single-use
    assert (again.code, again.sub_code) == ("40002", "isv.code-invalid")
    assert '"error_response"' not in again.body  # the SDK hands back the inner node only

    refresh = AlipaySystemOauthTokenRequest()
    refresh.grant_type = "refresh_token"
    refresh.refresh_token = token.refresh_token
    renewed = call(client, refresh, AlipaySystemOauthTokenResponse())
    assert renewed.is_success() and renewed.user_id == USER and renewed.access_token != token.access_token

    share = AlipayUserInfoShareRequest()
    share.udf_params = {"auth_token": renewed.access_token}  # how the Python SDK passes auth_token
    info = call(client, share, AlipayUserInfoShareResponse())
    assert info.is_success(), info.body
    assert (info.user_id, info.nick_name) == (USER, "sdk-user")
    share.udf_params = {"auth_token": "bogus"}
    bad = call(client, share, AlipayUserInfoShareResponse())
    assert (bad.code, bad.sub_code) == ("20001", "aop.invalid-auth-token")

    follow = AlipayOpenPublicUserFollowQueryRequest(AlipayOpenPublicUserFollowQueryModel())
    follow.biz_model.user_id = USER
    assert call(client, follow, AlipayOpenPublicUserFollowQueryResponse()).is_follow == "F"
    admin("POST", "/sim/follow", {"user_id": USER}, token=None)
    followed = call(client, follow, AlipayOpenPublicUserFollowQueryResponse())
    assert followed.is_success() and followed.is_follow == "T"


def test_voucher_create_send_query(sdk: dict[str, Any]) -> None:
    client = sdk["client"]
    # the SDK's own model, unchanged: voucher_send_rule / voucher_quantity / fix_voucher_info
    model = AlipayMarketingActivityVoucherCreateModel()
    model.out_biz_no, model.activity_name = "sdk-create-1", "SDK fidelity"
    model.publish_start_time, model.publish_end_time = _time(-1), _time(30)
    model.voucher_send_rule = {"voucher_quantity": 2, "voucher_quantity_limit_per_user": 1}
    model.voucher_deduct_info = {"voucher_type": "FIX_VOUCHER", "fix_voucher_info": {"amount": "5.00"}}
    create = AlipayMarketingActivityVoucherCreateRequest(model)
    created = call(client, create, AlipayMarketingActivityVoucherCreateResponse())
    assert created.is_success(), created.body
    activity_id = created.activity_id
    assert activity_id

    def send(out_biz_no: str, user_id: str) -> AlipayMarketingActivityVoucherSendResponse:
        model = AlipayMarketingActivityVoucherSendModel()
        model.activity_id, model.out_biz_no, model.user_id = activity_id, out_biz_no, user_id
        return call(
            client,
            AlipayMarketingActivityVoucherSendRequest(model),
            AlipayMarketingActivityVoucherSendResponse(),
        )

    first = send("sdk-send-1", USER)
    assert first.is_success() and first.voucher_id, first.body
    assert send("sdk-send-1", USER).voucher_id == first.voucher_id  # idempotent replay
    assert send("sdk-send-2", USER).sub_code == "EXCEED_USER_LIMIT"
    assert send("sdk-send-3", "2088000000000778").is_success()
    sold_out = send("sdk-send-4", "2088000000000779")
    assert (sold_out.code, sold_out.sub_code) == ("40004", "BUDGET_NOT_ENOUGH_ERROR")

    query = AlipayMarketingActivityVoucherQueryRequest(AlipayMarketingActivityVoucherQueryModel())
    query.biz_model.activity_id = activity_id
    found = call(client, query, AlipayMarketingActivityVoucherQueryResponse())
    assert found.is_success(), found.body
    assert (found.activity_id, found.activity_name, found.activity_status) == (
        activity_id,
        "SDK fidelity",
        "ACTIVE",
    )
    assert json.loads(found.body)["voucher_inventory_info"]["send_count"] == 2


def test_cash_create_and_trigger(sdk: dict[str, Any]) -> None:
    client = sdk["client"]
    model = AlipayMarketingCampaignCashCreateModel()
    model.coupon_name, model.prize_type, model.prize_msg = "SDK red envelope", "fixed", "well done"
    model.total_money, model.total_num, model.send_freqency = "4.00", "2", "L1"
    model.start_time, model.end_time = "NowTime", _time(30)
    created = call(
        client, AlipayMarketingCampaignCashCreateRequest(model), AlipayMarketingCampaignCashCreateResponse()
    )
    assert created.is_success() and created.crowd_no, created.body

    def trigger(out_biz_no: str, user_id: str) -> AlipayMarketingCampaignCashTriggerResponse:
        m = AlipayMarketingCampaignCashTriggerModel()
        m.crowd_no, m.out_biz_no, m.user_id = created.crowd_no, out_biz_no, user_id
        return call(
            client, AlipayMarketingCampaignCashTriggerRequest(m), AlipayMarketingCampaignCashTriggerResponse()
        )

    won = trigger("sdk-cash-1", USER)
    assert won.is_success(), won.body
    assert (won.trigger_result, won.prize_amount, won.out_biz_no) == ("true", "2.00", "sdk-cash-1")
    assert trigger("sdk-cash-1", USER).biz_no == won.biz_no  # replay
    assert trigger("sdk-cash-2", USER).sub_code == "EXCEED_TRIGGER_LIMIT"
    assert trigger("sdk-cash-3", "2088000000000780").is_success()
    assert trigger("sdk-cash-4", "2088000000000781").sub_code == "CASH_CAMP_BUDGET_INSUFFICIENT"


def test_points_send_and_budget_query(sdk: dict[str, Any]) -> None:
    client = sdk["client"]
    model = AlipayUserAlipaypointSendModel()
    model.budget_code, model.partner_biz_no, model.point_amount, model.user_id = (
        BUDGET,
        "sdk-pts-1",
        300,
        USER,
    )
    sent = call(client, AlipayUserAlipaypointSendRequest(model), AlipayUserAlipaypointSendResponse())
    assert sent.is_success() and sent.record_id, sent.body
    assert call(
        client, AlipayUserAlipaypointSendRequest(model), AlipayUserAlipaypointSendResponse()
    ).record_id == (sent.record_id)
    query = AlipayUserAlipaypointBudgetlibQueryRequest(AlipayUserAlipaypointBudgetlibQueryModel())
    query.biz_model.budget_code = BUDGET
    budget = call(client, query, AlipayUserAlipaypointBudgetlibQueryResponse())
    assert budget.is_success(), budget.body
    assert (budget.budget_code, int(budget.remain_amount)) == (BUDGET, 100_000 - 300)
    model.partner_biz_no, model.point_amount = "sdk-pts-2", 10**6
    assert call(
        client, AlipayUserAlipaypointSendRequest(model), AlipayUserAlipaypointSendResponse()
    ).sub_code == ("BUDGET_NOT_ENOUGH")


def test_sdk_really_verifies_signatures(sdk: dict[str, Any]) -> None:
    """With the wrong Alipay public key every answer must be refused by the SDK: proof that the
    passing calls above had their signatures checked, not skipped."""
    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    query = AlipayUserAlipaypointBudgetlibQueryRequest(AlipayUserAlipaypointBudgetlibQueryModel())
    query.biz_model.budget_code = BUDGET
    with pytest.raises(ResponseException, match="sign verify failed"):
        _client(other, sdk["private_pem"]).execute(query)


def test_tampered_request_signature_is_refused(sdk: dict[str, Any]) -> None:
    """A request signed with a key that is not the registered one gets 40002 isv.invalid-signature
    (signed, so the SDK still verifies the answer)."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    alipay_public = admin("GET", "/admin/keys")["alipay_public_key"]
    query = AlipayUserAlipaypointBudgetlibQueryRequest(AlipayUserAlipaypointBudgetlibQueryModel())
    query.biz_model.budget_code = BUDGET
    refused = call(
        _client(alipay_public, stranger.decode()), query, AlipayUserAlipaypointBudgetlibQueryResponse()
    )
    assert (refused.code, refused.sub_code) == ("40002", "isv.invalid-signature")


def test_audit_is_clean_after_the_sdk_calls(sdk: dict[str, Any]) -> None:
    audit = admin("GET", "/admin/audit")
    assert audit["ok"], audit["violations"]
