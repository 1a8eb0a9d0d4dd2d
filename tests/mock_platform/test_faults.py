"""Faults: distributions, throttles, outages and spec validation (unit); the same faults seen
through the real gateway over HTTP (integration, with the `mock_server` fixture)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop

from mock_platform.faults import Decision, Faults, load_profile, profile_names

SEND = "alipay.marketing.activity.voucher.send"


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _samples(spec: dict, n: int = 20_000, method: str = SEND) -> list[float]:
    faults = Faults.from_config({"seed": 7, method: {"latency": spec}})
    return [faults.latency_s(method) * 1000 for _ in range(n)]


def test_lognormal_by_median_and_p99() -> None:
    xs = _samples({"dist": "lognormal", "median_ms": 60, "p99_ms": 250})
    assert _quantile(xs, 0.5) == pytest.approx(60, rel=0.10)
    assert _quantile(xs, 0.99) == pytest.approx(250, rel=0.10)


def test_pareto_by_scale_and_alpha() -> None:
    xs = _samples({"dist": "pareto", "scale_ms": 10, "alpha": 3})
    assert min(xs) >= 10
    # Quantile q of Pareto(xm, a) is xm * (1 - q) ** (-1 / a).
    assert _quantile(xs, 0.5) == pytest.approx(10 * 2 ** (1 / 3), rel=0.10)
    assert _quantile(xs, 0.99) == pytest.approx(10 * 100 ** (1 / 3), rel=0.10)


def test_pareto_by_median_and_p99() -> None:
    xs = _samples({"dist": "pareto", "median_ms": 30, "p99_ms": 120})
    assert _quantile(xs, 0.5) == pytest.approx(30, rel=0.10)
    assert _quantile(xs, 0.99) == pytest.approx(120, rel=0.10)


def test_constant_uniform_normal() -> None:
    assert set(_samples({"dist": "constant", "ms": 100}, n=100)) == {100.0}
    xs = _samples({"dist": "uniform", "min_ms": 5, "max_ms": 15})
    assert 5 <= min(xs) < 5.1 and 14.9 < max(xs) <= 15
    assert sum(xs) / len(xs) == pytest.approx(10, rel=0.02)
    xs = _samples({"dist": "normal", "mean_ms": 50, "stddev_ms": 10})
    assert sum(xs) / len(xs) == pytest.approx(50, rel=0.02)
    assert _quantile(xs, 0.8413) == pytest.approx(60, rel=0.03)
    assert min(_samples({"dist": "normal", "mean_ms": 1, "stddev_ms": 10})) == 0.0


def test_seed_makes_draws_repeatable_and_no_latency_is_zero() -> None:
    spec = {"seed": 3, "*": {"latency": {"dist": "lognormal", "median_ms": 10, "p99_ms": 50}}}
    a, b = Faults.from_config(spec), Faults.from_config(spec)
    assert [a.latency_s("x") for _ in range(50)] == [b.latency_s("x") for _ in range(50)]
    assert Faults.from_config(None).latency_s(SEND) == 0.0
    assert Faults.from_config(None).decide(SEND, "app", 0.0) is None


def test_method_entry_wins_over_wildcard_key_by_key() -> None:
    faults = Faults.from_config(
        {
            "*": {"latency": {"dist": "constant", "ms": 5}, "error": {"rate": 1.0}},
            SEND: {"latency": {"dist": "constant", "ms": 50}},
            "quiet.method": {"error": None},
        }
    )
    assert faults.latency_s(SEND) == pytest.approx(0.050)
    assert faults.latency_s("other.method") == pytest.approx(0.005)
    assert faults.decide(SEND, "app", 0.0) == Decision(
        "error", "20000", "isp.unknow-error", "injected fault: service currently unavailable"
    )
    assert faults.latency_s("quiet.method") == pytest.approx(0.005)
    assert faults.decide("quiet.method", "app", 0.0) is None


def test_error_rate_is_honoured() -> None:
    faults = Faults.from_config(
        {"seed": 1, SEND: {"error": {"rate": 0.2, "code": 40004, "sub_code": "SYSTEM_ERROR", "sub_msg": "x"}}}
    )
    hits = [faults.decide(SEND, "app", 0.0) for _ in range(20_000)]
    errors = [d for d in hits if d is not None]
    assert len(errors) / len(hits) == pytest.approx(0.2, rel=0.05)
    assert errors[0] == Decision("error", "40004", "SYSTEM_ERROR", "x")


@pytest.mark.parametrize(("rate", "burst", "seconds"), [(100, 10, 2.0), (5000, 1, 1.0), (0.5, 3, 20.0)])
def test_token_bucket_admits_rate_times_t_plus_burst(rate: float, burst: int, seconds: float) -> None:
    faults = Faults.from_config({SEND: {"throttle": {"rate": rate, "burst": burst}}}, now=0.0)
    step = 1 / (rate * 20)  # offered at 20x the allowed rate
    n = int(seconds / step)
    admitted = sum(faults.decide(SEND, "app", 1000.0 + i * step) is None for i in range(n))
    assert admitted == pytest.approx(rate * seconds + burst, abs=1)
    # Another app (and another method) has its own bucket, full.
    assert faults.decide(SEND, "other-app", 1000.0 + seconds) is None


def test_throttle_decision_is_40005_by_default() -> None:
    faults = Faults.from_config({"*": {"throttle": {"rate": 1, "burst": 1}}})
    assert faults.decide(SEND, "app", 0.0) is None
    assert faults.decide(SEND, "app", 0.0) == Decision(
        "throttle", "40005", "isv.app-call-limited", "injected throttle: app call limit exceeded"
    )


def test_outage_windows_relative_and_absolute() -> None:
    t0 = 1_000_000.0
    faults = Faults.from_config(
        {
            SEND: {
                "outage": {
                    "mode": "hang",
                    "hang_s": 2,
                    "windows": [{"start_s": 10, "duration_s": 5}, {"start_at": t0 + 100, "duration_s": 1}],
                }
            },
            "m.reset": {"outage": {"mode": "reset"}},
            "m.error": {"outage": {"mode": "error", "start_s": 1, "duration_s": 1, "sub_code": "aop.unknow"}},
        },
        now=t0,
    )
    hang = Decision("hang", hang_s=2.0)
    assert faults.decide(SEND, "a", t0 + 9.99) is None
    assert faults.decide(SEND, "a", t0 + 10) == hang
    assert faults.decide(SEND, "a", t0 + 14.99) == hang
    assert faults.decide(SEND, "a", t0 + 15) is None
    assert faults.decide(SEND, "a", t0 + 100.5) == hang
    assert faults.decide("m.reset", "a", t0 + 1e6) == Decision("reset")
    assert faults.decide("m.error", "a", t0 + 0.5) is None
    error = faults.decide("m.error", "a", t0 + 1.5)
    assert error is not None and (error.kind, error.code, error.sub_code) == ("error", "20000", "aop.unknow")
    assert Faults.from_config({"*": {"outage": {"mode": "hang"}}}).decide("x", "a", 0).hang_s == 300.0


def test_configure_replaces_the_spec_and_snapshot_returns_it() -> None:
    faults = Faults.from_config({"*": {"error": {"rate": 1.0}}})
    assert faults.decide(SEND, "a", 0.0) is not None
    new = {"seed": 5, SEND: {"latency": {"dist": "constant", "ms": 3}}}
    faults.configure(new)
    assert faults.decide(SEND, "a", 0.0) is None
    assert faults.snapshot() == new
    with pytest.raises(ValueError):
        faults.configure({SEND: {"latency": {"dist": "bogus"}}})
    assert faults.snapshot() == new and faults.latency_s(SEND) == pytest.approx(0.003)


def test_production_profile_loads_and_can_be_overridden() -> None:
    assert "production" in profile_names()
    prod = load_profile("production")
    assert prod[SEND]["latency"]["dist"] == "lognormal"
    faults = Faults.from_config({"seed": 1, SEND: {"latency": {"dist": "constant", "ms": 1}}}, "production")
    assert faults.latency_s(SEND) == pytest.approx(0.001)
    token = [faults.latency_s("alipay.system.oauth.token") * 1000 for _ in range(5000)]
    assert _quantile(token, 0.5) == pytest.approx(35, rel=0.10)
    with pytest.raises(ValueError, match=r"faults\.profile: unknown profile 'nope' \(known: .*production"):
        Faults.from_config(None, "nope")


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ([1, 2], "faults"),
        ({"*": 5}, "faults.*"),
        ({SEND: {"latncy": {}}}, f"faults.{SEND}.latncy"),
        ({SEND: {"latency": {"dist": "gamma"}}}, f"faults.{SEND}.latency.dist"),
        ({SEND: {"latency": {"dist": "constant", "ms": -1}}}, f"faults.{SEND}.latency.ms"),
        ({SEND: {"latency": {"dist": "constant", "ms": "5"}}}, f"faults.{SEND}.latency.ms"),
        ({SEND: {"latency": {"dist": "constant", "ms": math.inf}}}, f"faults.{SEND}.latency.ms"),
        ({SEND: {"latency": {"dist": "constant", "mss": 1}}}, f"faults.{SEND}.latency.mss"),
        ({SEND: {"latency": {"dist": "uniform", "min_ms": 5, "max_ms": 1}}}, "latency.max_ms"),
        ({SEND: {"latency": {"dist": "lognormal", "median_ms": 50, "p99_ms": 40}}}, "latency.p99_ms"),
        ({SEND: {"latency": {"dist": "lognormal", "median_ms": 0, "p99_ms": 40}}}, "latency.median_ms"),
        ({SEND: {"latency": {"dist": "pareto", "scale_ms": 1}}}, "latency.alpha"),
        ({SEND: {"latency": {"dist": "pareto", "scale_ms": 1, "alpha": 2, "median_ms": 3}}}, "latency"),
        ({SEND: {"error": {"rate": 1.5}}}, f"faults.{SEND}.error.rate"),
        ({SEND: {"error": {"rate": -0.1}}}, "error.rate"),
        ({SEND: {"error": {"rate": True}}}, "error.rate"),
        ({SEND: {"error": {"rate": 0.1, "code": ""}}}, "error.code"),
        ({SEND: {"throttle": {"burst": 5}}}, "throttle.rate"),
        ({SEND: {"throttle": {"rate": 0, "burst": 5}}}, "throttle.rate"),
        ({SEND: {"throttle": {"rate": 10, "burst": 0.5}}}, "throttle.burst"),
        ({SEND: {"outage": {"mode": "explode"}}}, "outage.mode"),
        ({SEND: {"outage": {"windows": []}}}, "outage.windows"),
        (
            {SEND: {"outage": {"windows": [{"start_s": 1, "durration_s": 2}]}}},
            "outage.windows[0].durration_s",
        ),
        ({SEND: {"outage": {"start_s": 1, "windows": [{"start_s": 1}]}}}, "outage"),
        ({SEND: {"outage": {"duration_s": 0}}}, "outage.duration_s"),
        ({SEND: {"outage": {"mode": "hang", "hang_s": -1}}}, "outage.hang_s"),
        ({"seed": 1.5}, "faults.seed"),
        ({"profile": 3}, "faults.profile"),
    ],
)
def test_bad_spec_names_the_key(spec: object, names: str) -> None:
    with pytest.raises(ValueError, match=re.escape(names)):
        Faults.from_config(spec)  # type: ignore[arg-type]


# --- through the real gateway -------------------------------------------------------------------

FOLLOW = "alipay.open.public.user.follow.query"
QUERY = "alipay.user.alipaypoint.budgetlib.query"
ADMIN_TOKEN = "faults-test-token"


@pytest.fixture
def mock_process(tmp_path: Path) -> Iterator[Callable[[dict], str]]:
    """Start `python -m mock_platform` with a config; its own process so that the client's work does
    not share a GIL with the server and distort the latency it measures. Returns the URL."""
    procs: list[subprocess.Popen[str]] = []

    def start(config: dict) -> str:
        path = tmp_path / f"mock{len(procs)}.json"
        path.write_text(json.dumps(config))
        cmd = [sys.executable, "-m", "mock_platform", "--port", "0", "--config", str(path)]
        proc = subprocess.Popen(
            [*cmd, "--admin-token", ADMIN_TOKEN], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        procs.append(proc)
        deadline = time.monotonic() + 15
        assert proc.stdout is not None
        for line in proc.stdout:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                return match.group(1)
            if time.monotonic() > deadline:
                break
        raise RuntimeError(f"the mock did not start: {line!r}")

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _form(method: str, biz: dict, app_id: str = "2021000000000001") -> dict[str, str]:
    return {
        "app_id": app_id,
        "method": method,
        "charset": "utf-8",
        "version": "1.0",
        "biz_content": json.dumps(biz),
    }


async def _paced(
    url: str, forms: list[dict[str, str]], rate: float, warm: dict[str, str] | None = None
) -> list[tuple[float, float, dict]]:
    """Send the forms at `rate` per second; (sent_at, latency_s, response node) for each."""
    connector = aiohttp.TCPConnector(limit=1000)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=20)) as session:

        async def one(form: dict[str, str]) -> tuple[float, float, dict]:
            sent = time.perf_counter()
            async with session.post(url + "/gateway.do", data=form) as resp:
                doc = json.loads(await resp.read())
            return sent, time.perf_counter() - sent, next(v for k, v in doc.items() if k != "sign")

        # Warm the connection pool, so connection set-up is not counted as injected latency.
        await asyncio.gather(*(one(warm or forms[0]) for _ in range(100)))
        t0 = time.perf_counter()
        tasks = []
        for i, form in enumerate(forms):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(form)))
        return await asyncio.gather(*tasks)


@pytest.mark.timeout(60)
def test_injected_lognormal_is_what_clients_measure(mock_process: Callable[[dict], str]) -> None:
    # Large enough that the client's and server's own few milliseconds stay well inside 10%.
    median, p99 = 200.0, 800.0
    url = mock_process(
        {
            "faults": {
                "seed": 11,
                FOLLOW: {"latency": {"dist": "lognormal", "median_ms": median, "p99_ms": p99}},
            }
        }
    )
    forms = [_form(FOLLOW, {"user_id": f"2088{i:012d}"}) for i in range(2000)]
    results = uvloop.run(_paced(url, forms, rate=300))
    assert all(node["code"] == "10000" for _, _, node in results)
    latencies_ms = [lat * 1000 for _, lat, _ in results]
    seen = (_quantile(latencies_ms, 0.5), _quantile(latencies_ms, 0.99))
    close = seen[0] == pytest.approx(median, rel=0.10) and seen[1] == pytest.approx(p99, rel=0.10)
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    if not close and load > 1.0:
        # Other processes held the CPUs: wake-ups come late, and that is not the mock's doing.
        pytest.skip(f"machine overloaded (load {load:.1f} per CPU): measured median/p99 {seen} ms")
    assert seen[0] == pytest.approx(median, rel=0.10)
    assert seen[1] == pytest.approx(p99, rel=0.10)
    mid = results[len(results) // 2][0]
    assert sum(sent <= mid < sent + lat for sent, lat, _ in results) > 20, "calls must overlap"


@pytest.mark.timeout(60)
def test_throttle_holds_its_rate(mock_process: Callable[[dict], str]) -> None:
    rate, burst = 200, 100  # a bucket that refills in 0.5 s: a loaded client's hiccups waste no tokens
    url = mock_process({"faults": {FOLLOW: {"throttle": {"rate": rate, "burst": burst}}}})
    forms = [_form(FOLLOW, {"user_id": f"2088{i:012d}"}, app_id="2021000000000042") for i in range(1200)]
    warm = _form(FOLLOW, {"user_id": "2088000000000001"}, app_id="2021000000000099")
    results = uvloop.run(_paced(url, forms, rate=600, warm=warm))
    span = results[-1][0] - results[0][0]
    codes = [(node["code"], node.get("sub_code")) for _, _, node in results]
    admitted = codes.count(("10000", None))
    assert admitted + codes.count(("40005", "isv.app-call-limited")) == len(codes)
    assert admitted == pytest.approx(rate * span + burst, rel=0.10)
    # Another app has a bucket of its own.
    other = asyncio.run(
        _paced(url, [_form(FOLLOW, {"user_id": "2088000000000001"}, app_id="2021000000000043")], 1)
    )
    assert other[-1][2]["code"] == "10000"


def test_put_admin_faults_takes_effect_at_run_time(mock_server: Any) -> None:
    biz = {"user_id": "2088000000000001"}
    assert mock_server.gateway(FOLLOW, biz)[1]["code"] == "10000"
    spec = {
        FOLLOW: {"error": {"rate": 1.0, "code": "20000", "sub_code": "isp.unknow-error", "sub_msg": "boom"}}
    }
    status, body = mock_server.admin("PUT", "/admin/faults", spec)
    assert (status, body) == (200, spec)
    node, answer = mock_server.gateway(FOLLOW, biz)
    assert (node, answer["code"], answer["sub_code"], answer["sub_msg"]) == (
        "alipay_open_public_user_follow_query_response",
        "20000",
        "isp.unknow-error",
        "boom",
    )
    assert (
        mock_server.gateway(QUERY, {"budget_code": "NONE"})[1]["code"] == "40004"
    )  # other methods unaffected
    status, body = mock_server.admin("PUT", "/admin/faults", {FOLLOW: {"error": {"rate": 2}}})
    assert status == 400 and f"faults.{FOLLOW}.error.rate" in json.dumps(body)
    assert mock_server.admin("GET", "/admin/faults") == (200, spec)  # the bad spec changed nothing
    assert mock_server.admin("PUT", "/admin/faults", {}) == (200, {})
    assert mock_server.gateway(FOLLOW, biz)[1]["code"] == "10000"


async def _post(url: str, form: dict[str, str], timeout: float = 5.0) -> dict | BaseException:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(url + "/gateway.do", data=form) as resp,
        ):
            return json.loads(await resp.read())
    except (aiohttp.ClientError, TimeoutError) as exc:
        return exc


def test_reset_and_hang_outages_drop_the_call_and_the_server_keeps_serving(mock_server: Any) -> None:
    follow, query = _form(FOLLOW, {"user_id": "2088000000000001"}), _form(QUERY, {"budget_code": "NONE"})
    spec = {FOLLOW: {"outage": {"mode": "reset"}}, QUERY: {"outage": {"mode": "hang", "hang_s": 5}}}
    assert mock_server.admin("PUT", "/admin/faults", spec)[0] == 200
    reset = asyncio.run(_post(mock_server.url, follow))
    assert isinstance(reset, aiohttp.ClientError), reset
    started = time.monotonic()
    hung = asyncio.run(_post(mock_server.url, query, timeout=0.5))
    assert isinstance(hung, TimeoutError), hung
    assert time.monotonic() - started < 2
    # Other methods are served meanwhile, and the outage ends when the spec is replaced.
    other = asyncio.run(_post(mock_server.url, _form("alipay.user.info.share", {})))
    assert isinstance(other, dict) and other["alipay_user_info_share_response"]["code"] == "20001"
    assert mock_server.admin("PUT", "/admin/faults", {})[0] == 200
    again = asyncio.run(_post(mock_server.url, follow))
    assert (
        isinstance(again, dict) and again["alipay_open_public_user_follow_query_response"]["code"] == "10000"
    )


def test_outage_window_opens_and_closes_on_time(mock_server: Any) -> None:
    form = _form(FOLLOW, {"user_id": "2088000000000001"})
    spec = {
        FOLLOW: {
            "outage": {"mode": "error", "start_s": 0.3, "duration_s": 0.5, "sub_code": "aop.unknow-error"}
        }
    }
    assert mock_server.admin("PUT", "/admin/faults", spec)[0] == 200
    t0 = time.monotonic()
    seen = []
    while time.monotonic() - t0 < 1.2:
        answer = asyncio.run(_post(mock_server.url, form))
        assert isinstance(answer, dict)
        seen.append(
            (round(time.monotonic() - t0, 2), answer["alipay_open_public_user_follow_query_response"]["code"])
        )
        time.sleep(0.05)
    assert [code for t, code in seen if t < 0.25] and all(code == "10000" for t, code in seen if t < 0.25)
    assert any(code == "20000" for t, code in seen if 0.35 < t < 0.75)
    assert all(code == "10000" for t, code in seen if t > 0.85)


# --- fault layers (drills) ----------------------------------------------------------------------

T0 = 2_000_000.0


def test_layer_applies_only_inside_its_window_by_the_mocks_clock() -> None:
    faults = Faults.from_config({SEND: {"latency": {"dist": "constant", "ms": 10}}}, now=T0)
    faults.put_layer("slow", {SEND: {"latency": {"scale": 3}}}, start_at=T0 + 120, duration_s=60, now=T0)
    assert faults.decide(SEND, "a", T0 + 119.9) is None and faults.latency_s(SEND) == pytest.approx(0.010)
    assert faults.decide(SEND, "a", T0 + 120) is None and faults.latency_s(SEND) == pytest.approx(0.030)
    assert faults.latency_s("other.method") == 0.0  # the scale of no latency is none
    assert faults.decide(SEND, "a", T0 + 180) is None and faults.latency_s(SEND) == pytest.approx(0.010)
    assert [(x["name"], x["state"], x["end_at"]) for x in faults.layers(T0 + 200)] == [
        ("slow", "ended", T0 + 180)
    ]


def test_a_late_put_still_ends_on_time_and_outage_of_every_method() -> None:
    faults = Faults.from_config({}, now=T0)
    # The drill was due at T0 for 30 s; the caller is 10 s late: 20 s of outage remain.
    listing = faults.put_layer("down", {"*": {"outage": {}}}, start_at=T0, duration_s=30, now=T0 + 10)
    assert (listing["state"], listing["start_at"], listing["end_at"], listing["duration_s"]) == (
        "active",
        T0,
        T0 + 30,
        30,
    )
    assert faults.decide(SEND, "a", T0 + 10).kind == "error"
    assert faults.decide("any.method", "a", T0 + 29.9).code == "20000"
    assert faults.decide(SEND, "a", T0 + 30) is None


def test_layer_keys_go_over_the_base_key_by_key_and_the_latest_layer_wins() -> None:
    base = {
        "*": {"latency": {"dist": "constant", "ms": 5}},
        SEND: {"latency": {"dist": "constant", "ms": 50}, "error": {"rate": 1.0}},
    }
    faults = Faults.from_config(base, now=T0)
    faults.put_layer("throttle", {"*": {"throttle": {"rate": 1, "burst": 1}}}, now=T0)
    faults.put_layer("x2", {"*": {"latency": {"scale": 2}}, SEND: {"error": None}}, now=T0)
    assert faults.decide(SEND, "a", T0) is None  # the base error is off in the layer, a token taken
    assert faults.decide(SEND, "a", T0).kind == "throttle"
    assert faults.latency_s(SEND) == pytest.approx(0.100)  # the layer's "*" scales the method's own
    assert faults.latency_s("other") == pytest.approx(0.010)
    faults.put_layer("x2", {"*": {"latency": {"dist": "constant", "ms": 1}}}, now=T0)
    assert faults.latency_s(SEND) == pytest.approx(0.001)
    assert faults.delete_layer("x2", now=T0) and not faults.delete_layer("x2", now=T0)
    assert faults.latency_s(SEND) == pytest.approx(0.050)
    assert faults.decide(SEND, "b", T0).kind == "error"  # the base error is back
    faults.configure({}, now=T0)  # a new base keeps the layers
    assert [x["name"] for x in faults.layers(T0)] == ["throttle"]
    assert faults.decide("m", "c", T0) is None and faults.decide("m", "c", T0).kind == "throttle"


@pytest.mark.parametrize(
    ("name", "spec", "kwargs", "names"),
    [
        ("d", {SEND: {"latency": {"scale": 0}}}, {}, f"layers.d.faults.{SEND}.latency.scale"),
        (
            "d",
            {SEND: {"latency": {"scale": 2, "dist": "constant"}}},
            {},
            f"layers.d.faults.{SEND}.latency.dist",
        ),
        ("d", {SEND: {"latncy": {}}}, {}, f"layers.d.faults.{SEND}.latncy"),
        ("d", {"*": {"throttle": {"rate": -1}}}, {}, "layers.d.faults.*.throttle.rate"),
        ("d", {"*": 3}, {}, "layers.d.faults.*"),
        ("d", [1], {}, "layers.d.faults"),
        ("d", {}, {"duration_s": 0}, "layers.d.duration_s"),
        ("d", {}, {"start_at": "soon"}, "layers.d.start_at"),
        ("a/b", {}, {}, "layers"),
    ],
)
def test_bad_layer_names_the_key_and_changes_nothing(
    name: str, spec: object, kwargs: dict, names: str
) -> None:
    faults = Faults.from_config({}, now=T0)
    with pytest.raises(ValueError, match=re.escape(names)):
        faults.put_layer(name, spec, now=T0, **kwargs)
    assert faults.layers(T0) == []


def test_without_layers_the_hot_path_never_recomposes() -> None:
    faults = Faults.from_config({SEND: {"latency": {"dist": "constant", "ms": 1}}}, now=T0)
    calls = 0
    original = faults._compose

    def counting(now: float) -> None:
        nonlocal calls
        calls += 1
        original(now)

    faults._compose = counting  # type: ignore[method-assign]
    for i in range(1000):
        faults.decide(SEND, "a", T0 + i)
    assert calls == 0
    faults.put_layer("later", {SEND: {"latency": {"scale": 2}}}, start_at=T0 + 5000, duration_s=1, now=T0)
    for i in range(1000):
        faults.decide(SEND, "a", T0 + 4000 + i * 2)  # crosses the start and the end once each
    assert calls == 1 + 2


def test_layers_over_http(mock_server: Any) -> None:
    biz = {"user_id": "2088000000000001"}
    status, listing = mock_server.admin(
        "PUT", "/admin/faults/layers/outage", {"faults": {"*": {"outage": {}}}, "duration_s": 0.6}
    )
    assert status == 200 and listing["state"] == "active" and listing["duration_s"] == 0.6
    assert mock_server.gateway(FOLLOW, biz)[1]["code"] == "20000"
    status, body = mock_server.admin("GET", "/admin/faults/layers")
    assert status == 200 and [x["name"] for x in body["layers"]] == ["outage"] and body["now"] > 1.7e9
    time.sleep(0.7)
    assert mock_server.gateway(FOLLOW, biz)[1]["code"] == "10000"  # the window closed by itself
    assert mock_server.admin("GET", "/admin/faults") == (200, {})  # the base spec is untouched
    assert mock_server.admin("DELETE", "/admin/faults/layers/outage") == (200, {"ok": True, "name": "outage"})
    status, body = mock_server.admin("DELETE", "/admin/faults/layers/outage")
    assert status == 404 and "outage" in body["error"]
    for bad, key in (
        ({"faults": {"*": {"latency": {"scale": -2}}}}, "layers.x.faults.*.latency.scale"),
        ({"fault": {}}, "layers.x.fault"),
        ({}, "layers.x.faults"),
        ({"faults": {}, "duration_s": "1m"}, "layers.x.duration_s"),
    ):
        status, body = mock_server.admin("PUT", "/admin/faults/layers/x", bad)
        assert status == 400 and body["error"].startswith(key), body
    assert mock_server.admin("GET", "/admin/faults/layers")[1]["layers"] == []
