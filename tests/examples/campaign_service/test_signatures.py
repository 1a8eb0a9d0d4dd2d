"""Response signatures: a tiny fake gateway (http.server on 127.0.0.1) that answers every call
as a success, signed properly, signed with a key the service does not trust, or with the signed
bytes altered afterwards. Only the proper one may grant anything."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.examples.campaign_service.conftest import KeyFiles, StartService

USER_ID = "2088000000000777"
ANSWERS = {
    "alipay.system.oauth.token": {"user_id": USER_ID, "access_token": "t", "expires_in": "3600"},
    "alipay.user.alipaypoint.send": {"record_id": "PNT-FAKE-1"},
}
STRANGER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeGateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, trusted: rsa.RSAPrivateKey) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.trusted = trusted
        self.mode = "proper"
        self.calls: list[str] = []

    def envelope(self, method: str) -> bytes:
        node = method.replace(".", "_") + "_response"
        inner = json.dumps({"code": "10000", "msg": "Success", **ANSWERS[method]}, separators=(",", ":"))
        key = STRANGER if self.mode == "wrong_key" else self.trusted
        sign = base64.b64encode(key.sign(inner.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
        if self.mode == "altered":
            inner = inner.replace("PNT-FAKE-1", "PNT-FAKE-2").replace(USER_ID, "2088000000000666")
        return f'{{"{node}":{inner},"sign":"{sign}"}}'.encode()


class _Handler(BaseHTTPRequestHandler):
    server: FakeGateway

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        method = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["method"][0]
        self.server.calls.append(method)
        body = self.server.envelope(method)
        self.send_response(200)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake(keys: KeyFiles) -> Iterator[FakeGateway]:
    server = FakeGateway(keys.other_private)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("mode", ["wrong_key", "altered"])
def test_a_forged_or_altered_response_is_refused(
    fake: FakeGateway, start_service: StartService, keys: KeyFiles, mode: str
) -> None:
    host, port = fake.server_address[:2]
    svc = start_service(
        None,
        gateway=f"http://{host}:{port}/gateway.do",
        env={"CAMPAIGN_PLATFORM_PUBLIC_KEY_FILE": str(keys.other_public), "CAMPAIGN_PLATFORM_RETRIES": "1"},
    )
    status, _, session = svc.request("POST", "/api/login", {"auth_code": "fake-code"})
    assert status == 200  # the fake signs properly at first: the login is trusted
    fake.mode = mode
    status, headers, body = svc.request("POST", "/api/jifenbao/claim", session=session["session"])
    assert status == 503 and body["result"] == "try_later" and "Retry-After" in headers
    assert fake.calls.count("alipay.user.alipaypoint.send") == 2  # retried, as after any unreadable answer
    (row,) = svc.grants()
    assert row["status"] == "unknown" and row["platform_id"] is None  # never taken as a success
    assert "signature does not verify" in svc.stderr()
    _, _, metrics = svc.request("GET", "/metrics")
    assert 'outcome="bad_response"' in metrics

    fake.mode = "proper"  # the same grant, resumed, is trusted once the answer verifies
    status, _, body = svc.request("POST", "/api/jifenbao/claim", session=session["session"])
    assert status == 200 and body["result"] == "granted" and body["biz_no"] == row["biz_no"]


def test_a_login_answer_that_does_not_verify_is_refused_and_not_repeated(
    fake: FakeGateway, start_service: StartService, keys: KeyFiles
) -> None:
    host, port = fake.server_address[:2]
    svc = start_service(
        None,
        gateway=f"http://{host}:{port}/gateway.do",
        env={"CAMPAIGN_PLATFORM_PUBLIC_KEY_FILE": str(keys.other_public)},
    )
    fake.mode = "wrong_key"
    status, _, body = svc.request("POST", "/api/login", {"auth_code": "fake-code"})
    assert status == 503 and body["result"] == "try_later"
    assert fake.calls == ["alipay.system.oauth.token"]  # a single-use code is not sent twice
