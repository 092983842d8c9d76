"""Drafting a suite from a profile: pure, no Spark."""
from datetime import date, datetime

from loopline.contract_draft import ColumnProfile, Profile, draft_suite
from loopline.contract_rules import parse_suite

PROFILE = Profile(1000, [
    ColumnProfile("id", "string", 0, distinct=1000),
    ColumnProfile("amount", "double", 0, 2.5, 802.5, 75.0, 40.0, 900),
    ColumnProfile("channel", "string", 0, distinct=3, values=["ecom", "mobile_app", "pos"]),
    ColumnProfile("coupon", "string", 50, distinct=400),
    ColumnProfile("seen_at", "timestamp", 0, datetime(2026, 1, 1), datetime(2026, 1, 1, 23, 59), distinct=990),
    ColumnProfile("source_offset", "bigint", 0, 0, 999, 499.5, 288.0, 1000),
])


def rules():
    suite = draft_suite("s", "d", date(2026, 1, 1), PROFILE, key="id", time_field="seen_at", managed=("source_offset",))
    return {r.name: r for r in parse_suite(suite).rules}


def test_volume_and_schema_are_batch_rules_around_the_reference():
    drafted = rules()
    assert drafted["volume"].kwargs == {"min_value": 500, "max_value": 2000}
    assert drafted["schema"].kwargs["column_set"] == ["id", "amount", "channel", "coupon", "seen_at", "source_offset"]


def test_ranges_get_a_margin_and_stay_non_negative():
    between = rules()["amount:values_to_be_between"]
    assert between.severity == "row"
    assert between.kwargs["min_value"] == 0 and 882 <= between.kwargs["max_value"] <= 883


def test_categoricals_keys_nulls_and_freshness():
    drafted = rules()
    assert drafted["channel:values_to_be_in_set"].kwargs["value_set"] == ["ecom", "mobile_app", "pos"]
    assert drafted["id:values_to_be_unique"].severity == "row"
    assert drafted["coupon:null_rate"].severity == "batch" and drafted["coupon:null_rate"].kwargs["mostly"] == 0.89
    assert "coupon:values_to_be_in_set" not in drafted  # 400 distinct values: not a category
    assert drafted["freshness"].kwargs["min_value"] == {"$PARAMETER": "freshness_cutoff"}
    assert drafted["amount:mean_to_be_between"].kwargs == {"column": "amount", "min_value": 35.0, "max_value": 115.0}


def test_managed_lineage_columns_only_get_their_type_checked():
    assert [n for n in rules() if n.startswith("source_offset")] == ["source_offset:values_to_be_of_type"]
