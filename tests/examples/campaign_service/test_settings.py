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
