"""Settings from the environment: defaults, overrides by flag, the remote-gateway opt-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_service.settings import DEFAULT_APP_ID, PlatformTuning, SettingsError, load_settings
from tests.examples.campaign_service.conftest import KeyFiles


def env_for(keys: KeyFiles, **extra: str) -> dict[str, str]:
    return {
        "CAMPAIGN_GATEWAY_URL": "http://127.0.0.1:1234/gateway.do",
        "CAMPAIGN_APP_PRIVATE_KEY": keys.app_private.read_text(),
        "CAMPAIGN_PLATFORM_PUBLIC_KEY_FILE": str(keys.other_public),
        **extra,
    }


def test_defaults(keys: KeyFiles) -> None:
    s = load_settings(env_for(keys))
    assert (s.host, s.port, s.app_id, s.db_path) == (
        "127.0.0.1",
        8080,
        DEFAULT_APP_ID,
        Path("campaign.sqlite3"),
    )
    assert s.tuning == PlatformTuning()
    assert s.shutdown_grace_s == s.tuning.deadline_s + 1
    assert s.admin_token is None and s.bug is None and s.platform_public_key is not None
    assert len(s.session_secret) == 32 and s.session_secret != load_settings(env_for(keys)).session_secret


def test_environment_and_flags(keys: KeyFiles, tmp_path: Path) -> None:
    env = env_for(
        keys,
        CAMPAIGN_DB=str(tmp_path / "env.sqlite3"),
        CAMPAIGN_BUG="new-biz-no-on-retry",
        CAMPAIGN_PLATFORM_TIMEOUT_S="0.5",
        CAMPAIGN_PLATFORM_RETRIES="4",
        CAMPAIGN_PLATFORM_MAX_INFLIGHT="16",
        CAMPAIGN_REQUEST_DEADLINE_S="3",
        CAMPAIGN_SESSION_SECRET="s" * 16,
    )
    s = load_settings(env, host="::1", port=0, db=str(tmp_path / "flag.sqlite3"))
    assert (s.host, s.port, s.db_path) == ("::1", 0, tmp_path / "flag.sqlite3")
    assert s.bug == "new-biz-no-on-retry" and s.session_secret == b"s" * 16
    assert (s.tuning.timeout_s, s.tuning.retries, s.tuning.max_inflight, s.tuning.deadline_s) == (
        0.5,
        4,
        16,
        3.0,
    )
    assert load_settings(env).db_path == tmp_path / "env.sqlite3"


@pytest.mark.parametrize(
    "url", ["http://localhost:8080/gateway.do", "http://[::1]:80/gateway.do", "http://127.5.0.1/g"]
)
def test_loopback_gateways(keys: KeyFiles, url: str) -> None:
    assert load_settings(env_for(keys, CAMPAIGN_GATEWAY_URL=url)).gateway_url == url


def test_a_remote_gateway_needs_the_opt_in(keys: KeyFiles) -> None:
    remote = "https://openapi.alipay.com/gateway.do"
    with pytest.raises(SettingsError, match="not loopback"):
        load_settings(env_for(keys, CAMPAIGN_GATEWAY_URL=remote))
    s = load_settings(env_for(keys, CAMPAIGN_GATEWAY_URL=remote, CAMPAIGN_ALLOW_REMOTE_GATEWAY="1"))
    assert s.gateway_url == remote


def test_insecure_no_verify_leaves_the_platform_key_out(keys: KeyFiles) -> None:
    env = env_for(keys, CAMPAIGN_INSECURE_NO_VERIFY="1")
    del env["CAMPAIGN_PLATFORM_PUBLIC_KEY_FILE"]
    assert load_settings(env).platform_public_key is None
    env["CAMPAIGN_INSECURE_NO_VERIFY"] = "0"
    with pytest.raises(SettingsError, match="CAMPAIGN_INSECURE_NO_VERIFY=1"):
        load_settings(env)


def wx_env(keys: KeyFiles, **extra: str) -> dict[str, str]:
    wechat = {
        "CAMPAIGN_WX_BASE_URL": "http://127.0.0.1:1234/",
        "CAMPAIGN_WX_APPID": "wx5f2b8c1d9e3a4b6c",
        "CAMPAIGN_WX_SECRET": "a-secret",
        "CAMPAIGN_WX_MCHID": "1900000001",
        "CAMPAIGN_WX_SERIAL_NO": "5157F09E",
        "CAMPAIGN_WX_PRIVATE_KEY_FILE": str(keys.app_private),
        "CAMPAIGN_WX_PLATFORM_PUBLIC_KEY_FILE": str(keys.other_public),
        "CAMPAIGN_WX_PUBLIC_KEY_ID": "PUB_KEY_ID_0112233",
    }
    return env_for(keys, **{**wechat, **extra})


def test_wechat_is_off_without_its_base_url(keys: KeyFiles) -> None:
    assert load_settings(env_for(keys)).wechat is None
    assert load_settings(env_for(keys, CAMPAIGN_WX_APPID="wx1")).wechat is None  # the rest is not read


def test_wechat_settings(keys: KeyFiles) -> None:
    wx = load_settings(wx_env(keys)).wechat
    assert wx is not None
    assert (wx.base_url, wx.pay_url, wx.mchid, wx.public_key_id) == (
        "http://127.0.0.1:1234",
        "http://127.0.0.1:1234",
        "1900000001",
        "PUB_KEY_ID_0112233",
    )
    assert wx.private_key.key_size == 2048 and wx.platform_public_key is not None
    pay = load_settings(wx_env(keys, CAMPAIGN_WX_PAY_BASE_URL="http://localhost:9/wx")).wechat
    assert pay is not None and pay.pay_url == "http://localhost:9/wx"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"CAMPAIGN_WX_BASE_URL": "https://api.weixin.qq.com"}, "not loopback"),
        ({"CAMPAIGN_WX_PAY_BASE_URL": "https://api.mch.weixin.qq.com"}, "not loopback"),
        ({"CAMPAIGN_WX_BASE_URL": "http://127.0.0.1:1/?x=1"}, "without a query"),
        ({"CAMPAIGN_WX_BASE_URL": "ftp://127.0.0.1"}, "http"),
        ({"CAMPAIGN_WX_APPID": ""}, "CAMPAIGN_WX_APPID is required"),
        ({"CAMPAIGN_WX_APPID": "wx 1"}, "CAMPAIGN_WX_APPID"),
        ({"CAMPAIGN_WX_SECRET": ""}, "CAMPAIGN_WX_SECRET"),
        ({"CAMPAIGN_WX_SECRET": "two words"}, "printable"),
        ({"CAMPAIGN_WX_MCHID": "19000000a1"}, "CAMPAIGN_WX_MCHID"),
        ({"CAMPAIGN_WX_SERIAL_NO": "5157-F09E"}, "CAMPAIGN_WX_SERIAL_NO"),
        ({"CAMPAIGN_WX_PRIVATE_KEY_FILE": ""}, "CAMPAIGN_WX_PRIVATE_KEY_FILE"),
        ({"CAMPAIGN_WX_PRIVATE_KEY_FILE": "/nonexistent/key.pem"}, "cannot read"),
        ({"CAMPAIGN_WX_PLATFORM_PUBLIC_KEY_FILE": ""}, "CAMPAIGN_INSECURE_NO_VERIFY=1"),
        ({"CAMPAIGN_WX_PUBLIC_KEY_ID": "0112233"}, "PUB_KEY_ID_"),
        ({"CAMPAIGN_WX_PUBLIC_KEY_ID": ""}, "CAMPAIGN_WX_PUBLIC_KEY_ID is required"),
    ],
)
def test_wechat_settings_are_checked(keys: KeyFiles, change: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(wx_env(keys, **change))


def test_wechat_remote_and_insecure_opt_ins(keys: KeyFiles) -> None:
    remote = wx_env(
        keys,
        CAMPAIGN_WX_BASE_URL="https://api.weixin.qq.com",
        CAMPAIGN_WX_PAY_BASE_URL="https://api.mch.weixin.qq.com",
        CAMPAIGN_ALLOW_REMOTE_GATEWAY="1",
    )
    wx = load_settings(remote).wechat
    assert wx is not None and wx.pay_url == "https://api.mch.weixin.qq.com"
    insecure = wx_env(keys, CAMPAIGN_WX_PLATFORM_PUBLIC_KEY_FILE="", CAMPAIGN_INSECURE_NO_VERIFY="1")
    wx = load_settings(insecure).wechat
    assert wx is not None and wx.platform_public_key is None and wx.public_key_id is None
