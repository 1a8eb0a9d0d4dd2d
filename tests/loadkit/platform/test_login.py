"""Mini-program login against a loopback fake of /sim/auth_code and alipay.system.oauth.token."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl

import pytest
from gevent.pywsgi import WSGIServer
from locust import FastHttpUser, task
from locust.env import Environment

from loadkit.platform.client import PlatformClient
from loadkit.platform.login import Session, SessionCache, login

pytestmark = pytest.mark.timeout(30)


class FakePlatform:
    """Single-use auth codes, like Alipay's: a second use gets isv.code-invalid."""

    def __init__(self, *, token_field: str = "access_token") -> None:
        self.codes: dict[str, str] = {}
        self.token_field = token_field
        self.calls: list[str] = []
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None, error_log=None)

    def app(self, environ, start_response):
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
        start_response("200 OK", [("Content-Type", "application/json")])
        if environ["PATH_INFO"] == "/sim/auth_code":
            self.calls.append("sim")
            user_id = json.loads(raw)["user_id"]
            code = f"code{len(self.codes)}"
            self.codes[code] = user_id
            return [json.dumps({"auth_code": code}).encode()]
        form = dict(parse_qsl(raw))
        self.calls.append(form["method"])
        if form["method"] == "alipay.user.info.share":
            node = {"code": "10000", "msg": "Success", "nick_name": "n"}
            return [json.dumps({"alipay_user_info_share_response": node}).encode()]
        user_id = self.codes.pop(form.get("code", ""), None)
        if user_id is None or form.get("grant_type") != "authorization_code":
            err = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.code-invalid"}
            return [json.dumps({"error_response": err}).encode()]
        node = {"code": "10000", "msg": "Success", "user_id": user_id, "open_id": "o" + user_id}
        node[self.token_field] = "tok" + user_id
        node["expires_in"] = "1296000"
        return [json.dumps({"alipay_system_oauth_token_response": node}).encode()]


@pytest.fixture
def platform_and_events(request):
    fake = FakePlatform(**getattr(request, "param", {}))
    fake.server.start()
    host = f"http://127.0.0.1:{fake.server.server_port}"

    class Probe(FastHttpUser):
        @task
        def noop(self) -> None:
            pass

    Probe.host = host
    env = Environment(user_classes=[Probe], host=host)
    events: list[dict] = []
    env.events.request.add_listener(lambda **kw: events.append(kw))
    try:
        yield fake, PlatformClient(Probe(env).client, app_id="2021000000000001"), events
    finally:
        fake.server.stop(timeout=1)


def test_login_trades_a_sim_code_for_a_session(platform_and_events):
    fake, client, events = platform_and_events
    session = login(client, "2088000000000042", info=True)
    assert session is not None
    assert (session.user_id, session.open_id, session.access_token) == (
        "2088000000000042",
        "o2088000000000042",
        "tok2088000000000042",
    )
    assert session.valid and session.expires_at > time.time() + 1_000_000
    assert [e["name"] for e in events] == ["login.sim_code", "login.oauth", "user.info"]
    assert all(e["exception"] is None for e in events)
    assert fake.calls == ["sim", "alipay.system.oauth.token", "alipay.user.info.share"]


@pytest.mark.parametrize("platform_and_events", [{"token_field": "no_token"}], indirect=True)
def test_a_success_without_a_token_is_a_failure(platform_and_events):
    _, client, events = platform_and_events
    assert login(client, "2088000000000001") is None
    assert "success without access_token" in str(events[-1]["exception"])


def test_a_reused_code_fails_with_the_code_in_the_message(platform_and_events):
    fake, client, events = platform_and_events
    fake.codes["used"] = "2088000000000001"
    assert client.call(
        "alipay.system.oauth.token", params={"grant_type": "authorization_code", "code": "used"}
    )
    assert (
        client.call("alipay.system.oauth.token", params={"grant_type": "authorization_code", "code": "used"})
        is None
    )
    assert "40002 isv.code-invalid" in str(events[-1]["exception"])


def test_session_cache_is_bounded_and_drops_expired():
    cache = SessionCache(max_entries=3)
    for i in range(5):
        cache.put(Session(f"u{i}", None, "t", time.time() + 60))
    assert len(cache) == 3 and cache.get("u0") is None and cache.get("u4") is not None
    cache.put(Session("old", None, "t", time.time() - 1))
    assert cache.get("old") is None


def test_platform_user_reuses_a_returning_visitors_session(platform_and_events):
    from loadkit.platform.population import Visitor
    from loadkit.platform.user import PlatformUser

    fake, client, _ = platform_and_events
    host = client.http.base_url

    class Member(PlatformUser):
        @task
        def noop(self) -> None:
            pass

    Member.host = host
    env = Environment(user_classes=[Member], host=host)
    user = Member(env)
    assert user.platform.app_id == "2021000000000001"
    # the population draws new / returning / dormant at random (60/30/10): take the first new one
    visitor = next(v for v in iter(user.population.next, None) if v.kind == "new")
    first = user.login(visitor)
    again = user.login(Visitor(visitor.user_id, "returning"))
    assert first is not None and again is first
    assert fake.calls.count("sim") == 1  # the returning visit made no login round trip
    other = Member(env)
    assert other.population is user.population  # one population per class per process
