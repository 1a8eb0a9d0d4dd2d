"""Campaign config: the defaults match the shipped seeds and plans; a bad file names the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from campaign_service.campaigns import (
    DEFAULT_CONFIG,
    CampaignConfigError,
    OutcomeCodes,
    load_campaigns,
    parse_campaigns,
)

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_defaults_match_the_seeds_and_plans() -> None:
    config = load_campaigns(None)
    seed = _yaml(SCENARIOS / "seeds" / "event_mixed.yaml")
    budgets = {b["budget_code"] for b in _yaml(SCENARIOS / "seeds" / "jifenbao.yaml")["point_budgets"]}
    activities = {a["activity_id"]: a for a in seed["activities"]}
    crowds = {c["crowd_no"]: c for c in seed["cash_campaigns"]}
    assert config.jifenbao is not None and config.jifenbao.budget_code in budgets
    assert config.jifenbao.points_per_claim == 100  # scenarios/jifenbao.py POINTS_PER_VISIT
    gift = config.follow_gift
    assert gift is not None and gift.per_user_limit == activities[gift.activity_id]["quantity_limit_per_user"]
    assert gift.activity_id in {
        a["activity_id"] for a in _yaml(SCENARIOS / "seeds" / "follow_gift.yaml")["activities"]
    }
    sale = config.coupons["flash-sale"]
    plan_activities = _yaml(SCENARIOS / "plans" / "flash_sale.yaml")["mock"]["seed"]["activities"]
    assert sale.activity_id in {a["activity_id"] for a in plan_activities}
    assert sale.per_user_limit == activities[sale.activity_id]["quantity_limit_per_user"]
    rain = config.red_envelope
    plan_crowds = _yaml(SCENARIOS / "plans" / "red_envelope_rain.yaml")["mock"]["seed"]["cash_campaigns"]
    assert rain is not None and rain.crowd_no in {c["crowd_no"] for c in plan_crowds}
    assert f"L{rain.per_user_limit}" == crowds[rain.crowd_no]["send_freqency"]


def test_a_file_replaces_the_campaigns_and_merges_the_codes(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "coupons:\n"
        "  spring-sale: {activity_id: ACT-9, per_user_limit: 2, limit_period: day, title: Spring}\n"
        "platform_codes: {sold_out: [NO_STOCK]}\n"
    )
    config = load_campaigns(path)
    assert config.jifenbao is None and config.follow_gift is None and config.red_envelope is None
    assert config.coupons["spring-sale"].limit_period == "day"
    assert config.codes.classify("NO_STOCK") == "sold_out"
    assert config.codes.classify("BUDGET_NOT_ENOUGH_ERROR") is None  # replaced
    assert config.codes.classify("EXCEED_USER_LIMIT") == "limit_reached"  # default kept
    json_path = tmp_path / "c.json"
    json_path.write_text('{"red_envelope": {"crowd_no": "C1", "per_user_limit": 3}}')
    assert load_campaigns(json_path).red_envelope.per_user_limit == 3
    listing = parse_campaigns(DEFAULT_CONFIG).listing()
    assert [c["name"] for c in listing] == ["jifenbao", "flash-sale", "follow-gift", "red-envelope"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "must be a mapping"),
        ({"jifenbao": {"budget_code": "J"}, "extra": 1}, "extra: unknown key"),
        ({"jifenbao": {"budget_code": "J", "points_per_claim": "100"}}, "jifenbao.points_per_claim"),
        ({"jifenbao": {"budget_code": "J", "points_per_claim": True}}, "jifenbao.points_per_claim"),
        ({"jifenbao": {"points_per_claim": 1}}, "jifenbao.budget_code: required"),
        ({"jifenbao": {"budget_code": "J K", "points_per_claim": 1}}, "jifenbao.budget_code"),
        ({"coupons": []}, "coupons: must be a mapping"),
        ({"coupons": {"Bad Name": {"activity_id": "A", "per_user_limit": 1}}}, "coupons.Bad Name"),
        ({"coupons": {"a": {"activity_id": "A", "per_user_limit": 101}}}, "coupons.a.per_user_limit"),
        (
            {"coupons": {"a": {"activity_id": "A", "per_user_limit": 1, "limit_period": "week"}}},
            "limit_period",
        ),
        (
            {"coupons": {"a": {"activity_id": "A", "per_user_limit": 1, "stock": 5}}},
            "coupons.a.stock: unknown key",
        ),
        ({"follow_gift": "FOLLOW-GIFT"}, "follow_gift: must be a mapping"),
        ({"red_envelope": {"crowd_no": "C", "per_user_limit": 0}}, "red_envelope.per_user_limit"),
        ({"platform_codes": {"sold_out": "X"}}, "platform_codes.sold_out: must be a list"),
        ({"platform_codes": {"sold_out": ["X"], "not_active": ["X"]}}, "X is already listed under sold_out"),
        ({"wechat_coupons": ["9856000"]}, "wechat_coupons: must be a mapping"),
        ({"wechat_coupons": {"a": {"stock_id": "S-1", "per_user_limit": 1}}}, "wechat_coupons.a.stock_id"),
        (
            {"wechat_coupons": {"a": {"stock_id": "1", "per_user_limit": 61}}},
            "wechat_coupons.a.per_user_limit",
        ),
        (
            {"wechat_coupons": {"a": {"stock_id": "1", "per_user_limit": 1, "stock_creator_mchid": "x"}}},
            "wechat_coupons.a.stock_creator_mchid",
        ),
        (
            {
                "wechat_coupons": {
                    "a": {"stock_id": "1", "per_user_limit": 1},
                    "b": {"stock_id": 1, "per_user_limit": 1},
                }
            },
            "wechat_coupons.b.stock_id: 1 is already another campaign's stock",
        ),
    ],
)
def test_bad_configs_name_the_key(data: object, expected: str) -> None:
    with pytest.raises(CampaignConfigError, match=None) as info:
        parse_campaigns(data)
    assert expected in str(info.value)


def test_unreadable_or_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(CampaignConfigError, match="cannot read"):
        load_campaigns(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("coupons: [unclosed\n")
    with pytest.raises(CampaignConfigError, match="not valid YAML or JSON") as info:
        load_campaigns(bad)
    assert "\n" not in str(info.value)


def test_outcome_codes_default_to_the_mocks_sub_codes() -> None:
    codes = OutcomeCodes()
    assert codes.classify("CASH_CAMP_BUDGET_INSUFFICIENT") == "sold_out"
    assert codes.classify("EXCEED_TRIGGER_LIMIT") == "limit_reached"
    assert codes.classify("ACTIVITY_EXPIRED") == "not_active"
    assert codes.classify("ACTIVITY_NOT_EXIST") is None
    assert codes.classify(None) is None


def test_wechat_coupons_the_default_matches_its_seed_and_the_first_is_the_default() -> None:
    config = load_campaigns(None)
    seed = _yaml(SCENARIOS / "seeds" / "wechat_share_coupon.yaml")["wechat"]["stocks"]
    stocks = {s["stock_id"]: s for s in seed}
    (coupon,) = config.wechat_coupons.values()
    assert coupon.per_user_limit == stocks[coupon.stock_id]["max_coupons_per_user"]
    assert config.wechat_coupon() is coupon and config.wechat_coupon(stock_id=coupon.stock_id) is coupon
    config = parse_campaigns(
        {
            "wechat_coupons": {
                "first": {"stock_id": 11, "per_user_limit": 1, "stock_creator_mchid": 1900000002},
                "second": {"stock_id": "22", "per_user_limit": 3, "limit_period": "day", "title": "Two"},
            }
        }
    )
    first, second = config.wechat_coupons.values()
    assert (first.stock_id, first.creator_mchid, second.creator_mchid) == ("11", "1900000002", None)
    assert config.wechat_coupon() is first and config.wechat_coupon("second") is second
    assert config.wechat_coupon(stock_id="22") is second and config.wechat_coupon("third") is None
    assert config.jifenbao is None
    assert config.listing() == []  # WeChat off: not offered
    assert [(c["name"], c["body"]) for c in config.listing(wechat=True)] == [
        ("first", {"campaign": "first"}),
        ("second", {"campaign": "second"}),
    ]
