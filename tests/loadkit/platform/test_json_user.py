"""JsonUser against a tiny loopback JSON server, through a real FastHttpUser client inside a Locust
Environment: how each answer is classified, and what the user is recorded as told."""

from __future__ import annotations

import json

import gevent
import pytest
from gevent.pywsgi import WSGIServer
from locust import task
from locust.env import Environment

from loadkit.measure.told import TOLD_KEY
from loadkit.platform.json_user import JsonUser

pytestmark = pytest.mark.timeout(30)

CANNED: dict[str, tuple[str, bytes]] = {
    "/granted": ("200 OK", b'{"result": "granted", "grant_id": 7, "biz_no": "JFB1", "points": 100}'),
    "/granted-user": ("200 OK", b'{"result": "granted", "biz_no": "VCH2", "user_id": "2088000000000002"}'),
    "/out-biz": ("200 OK", b'{"result": "granted", "out_biz_no": "CSH3"}'),
    "/sold-out": ("200 OK", b'{"result": "sold_out"}'),
    "/already": ("200 OK", b'{"result": "already_claimed", "grant_id": 7, "biz_no": "JFB1"}'),
    "/try-later": ("503 Service Unavailable", b'{"result": "try_later", "retry_after_s": 1}'),
    "/bad-input": ("400 Bad Request", b'{"error": "invalid_json", "message": "the body is not valid JSON"}'),
    "/html": ("200 OK", b"<html>oops</html>"),
    "/array": ("200 OK", b"[1, 2]"),
    "/no-grant-id": ("200 OK", b'{"result": "granted", "biz_no": "X"}'),
    "/crash": ("500 Internal Server Error", b"Traceback (most recent call last)"),
}


class Server:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, str, bytes, dict]] = []
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None, error_log=None)

    def app(self, environ, start_response):
        size = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(size)
        headers = {k: v for k, v in environ.items() if k.startswith("HTTP_") or k == "CONTENT_TYPE"}
        self.bodies.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], raw, headers))
        if environ["PATH_INFO"] == "/slow":
            gevent.sleep(2)
        status, body = CANNED.get(environ["PATH_INFO"], ("404 Not Found", b'{"error": "not_found"}'))
        start_response(status, [("Content-Type", "application/json")])
        return [body]


@pytest.fixture
def server():
    s = Server()
    s.server.start()
    try:
        yield s
    finally:
        s.server.stop(timeout=1)


class Probe(JsonUser):
    network_timeout = 0.5
    connection_timeout = 0.5

    @task
    def noop(self) -> None:  # never run: the test drives the user directly
        pass


def make_user(server: Server) -> tuple[Probe, list[dict]]:
    host = f"http://127.0.0.1:{server.server.server_port}"
    user_class = type("P", (Probe,), {"host": host})
    env = Environment(user_classes=[user_class], host=host)
    events: list[dict] = []
    env.events.request.add_listener(lambda **kw: events.append(kw))
    return user_class(env), events


def test_success_names_the_grant_it_told(server):
    user, events = make_user(server)
    user.user_id = "2088000000000001"
    answer = user.api("POST", "/granted", {"x": 1}, name="points.claim", require=("grant_id",))
    assert answer is not None and answer["points"] == 100
    (ev,) = events
    assert ev["name"] == "points.claim" and ev["exception"] is None
    assert ev["context"][TOLD_KEY] == ("JFB1", "7", "2088000000000001")
    assert "loadkit_outcome" not in ev["context"]
    method, path, raw, headers = server.bodies[0]
    assert (method, path, json.loads(raw)) == ("POST", "/granted", {"x": 1})
    assert headers["CONTENT_TYPE"] == "application/json"


def test_user_id_from_the_answer_wins_and_told_may_name_other_fields(server):
    user, events = make_user(server)
    user.user_id = "2088000000000001"
    user.api("POST", "/granted-user")
    user.api("POST", "/out-biz", told=("biz_no", "out_biz_no"))
    user.api("POST", "/granted", told=None)
    assert events[0]["context"][TOLD_KEY] == ("VCH2", None, "2088000000000002")
    assert events[1]["context"][TOLD_KEY] == ("CSH3", None, "2088000000000001")
    assert TOLD_KEY not in events[2]["context"]


def test_declared_results_are_outcomes(server):
    user, events = make_user(server)
    assert user.api("POST", "/sold-out", expect={"sold_out": "sold_out"}) == {"result": "sold_out"}
    assert user.api("POST", "/already", expect=["already_claimed"]) is not None
    assert user.api("POST", "/try-later", expect={"try_later": "busy"}) is not None
    assert [e["context"].get("loadkit_outcome") for e in events] == ["sold_out", "already_claimed", "busy"]
    assert all(e["exception"] is None for e in events)
    # an already-claimed answer names the grant the user holds: that is what they were told
    assert events[1]["context"][TOLD_KEY] == ("JFB1", "7", None)
    assert TOLD_KEY not in events[2]["context"]  # not 2xx: nothing was granted


@pytest.mark.parametrize(
    ("path", "kwargs", "words"),
    [
        ("/try-later", {}, "HTTP 503 try_later"),
        ("/bad-input", {}, "HTTP 400 invalid_json: the body is not valid JSON"),
        ("/html", {}, "HTTP 200, not a JSON object: <html>oops</html>"),
        ("/array", {}, "not a JSON object"),
        ("/crash", {}, "HTTP 500, not a JSON object: Traceback"),
        ("/no-grant-id", {"require": ("grant_id",)}, "success without grant_id"),
        ("/nowhere", {}, "HTTP 404 not_found"),
    ],
)
def test_errors_carry_status_and_code(server, path, kwargs, words):
    user, events = make_user(server)
    assert user.api("POST", path, **kwargs) is None
    (ev,) = events
    assert ev["exception"] is not None and words in str(ev["exception"])
    assert TOLD_KEY not in (ev["context"] or {})


def test_timeout_is_an_error(server):
    user, events = make_user(server)
    assert user.api("GET", "/slow") is None
    assert events[0]["exception"] is not None


def test_outcome_mark_does_not_leak_into_other_requests(server):
    user, events = make_user(server)
    user.api("POST", "/sold-out", expect=["sold_out"])
    user.api("POST", "/granted")
    assert "loadkit_outcome" not in events[1]["context"]


def test_public_name():
    import loadkit

    assert loadkit.JsonUser is JsonUser
