"""campaign_service: the reference merchant campaign service, loadkit's system under test.

A small aiohttp service that logs mini-program users in, grants Jifenbao points, vouchers, a
follow gift and red envelopes through the Alipay gateway, and WeChat Pay cash coupons (when WeChat
is configured), against the real platforms or loadkit's mock of them, and keeps honest records of
every grant in SQLite. It imports neither loadkit nor mock_platform: it talks
to the platform over HTTP only, as a real merchant service does.
"""

from campaign_service.answers import Answer
from campaign_service.api import create_app
from campaign_service.campaigns import CampaignConfig, CampaignConfigError, WeChatCoupon, load_campaigns
from campaign_service.cli import main
from campaign_service.ready import ReadyLine, format_ready_line, parse_ready_line
from campaign_service.repository import GrantRow, GrantStore
from campaign_service.settings import PlatformTuning, Settings, SettingsError, WeChatSettings, load_settings

__all__ = [
    "Answer",
    "CampaignConfig",
    "CampaignConfigError",
    "GrantRow",
    "GrantStore",
    "PlatformTuning",
    "ReadyLine",
    "Settings",
    "SettingsError",
    "WeChatCoupon",
    "WeChatSettings",
    "create_app",
    "format_ready_line",
    "load_campaigns",
    "load_settings",
    "main",
    "parse_ready_line",
]
