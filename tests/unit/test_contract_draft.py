"""Drafting a suite from a profile: pure, no Spark."""
from datetime import date, datetime

from loopline.contracts.draft import ColumnProfile, DraftContext, Profile, draft_suite
from loopline.contracts.rules import parse_suite

DAYS = {"2026-01-01": 980, "2026-01-02": 1020}
PROFILE = Profile(2000, [
    ColumnProfile("id", "string", 0, distinct=2000),
    ColumnProfile("amount", "double", 0, 2.5, 802.5, 75.0, 40.0, 1800),
    ColumnProfile("channel", "string", 0, distinct=3, values=["ecom", "mobile_app", "pos"]),
    ColumnProfile("weekday", "string", 0, distinct=2, values=["Fri", "Thu"], constant_within_dates=True),
    ColumnProfile("hhmm", "int", 0, 314, 2545, 1200.0, 500.0, 900),
    ColumnProfile("coupon", "string", 50, distinct=400),
    ColumnProfile("seen_at", "timestamp", 0, datetime(2026, 1, 1), datetime(2026, 1, 2, 23, 59), distinct=1990),
    ColumnProfile("source_offset", "bigint", 0, 0, 999, 499.5, 288.0, 1000),
], DAYS)
CONTEXT = DraftContext(key="id", time_field="seen_at", required=frozenset({"id", "amount", "channel", "weekday",
                                                                            "hhmm", "seen_at"}),
                       managed=("source_offset",))


def rules(profile=PROFILE, context=CONTEXT):
    suite = draft_suite("s", "d", date(2026, 1, 1), date(2026, 1, 2), profile, context)
    return {r.name: r for r in parse_suite(suite).rules}


def test_volume_spans_the_reference_days_and_schema_is_exact():
    drafted = rules()
    assert drafted["volume"].kwargs == {"min_value": 490, "max_value": 2040}
    assert drafted["schema"].kwargs["column_set"] == ["id", "amount", "channel", "weekday", "hhmm", "coupon", "seen_at",
                                                      "source_offset"]


def test_numbers_stop_nothing_beyond_sign_and_keep_integer_bounds():
    drafted = rules()
    assert drafted["amount:non_negative"].severity == "row" and drafted["amount:non_negative"].kwargs["min_value"] == 0
    reference = drafted["hhmm:reference_range"]
    assert reference.severity == "warn" and reference.kwargs["min_value"] == 90 and reference.kwargs["max_value"] == 2769
    assert all(isinstance(reference.kwargs[k], int) for k in ("min_value", "max_value"))
    assert drafted["amount:mean_to_be_between"].severity == "warn"
    assert drafted["amount:mean_to_be_between"].kwargs == {"column": "amount", "min_value": 35.0, "max_value": 115.0}


def test_value_sets_leave_out_keys_identifiers_and_columns_that_describe_the_date():
    drafted = rules()
    assert drafted["channel:values_to_be_in_set"].kwargs["value_set"] == ["ecom", "mobile_app", "pos"]
    assert "weekday:values_to_be_in_set" not in drafted  # one value within each date: a property of the date
    assert "coupon:values_to_be_in_set" not in drafted  # 400 distinct values: not a category
    assert "id:values_to_be_in_set" not in drafted and drafted["id:values_to_be_unique"].severity == "row"


def test_nullability_follows_the_schema_and_freshness_the_time_field():
    drafted = rules()
    assert drafted["coupon:null_rate"].severity == "warn" and drafted["coupon:null_rate"].kwargs["mostly"] == 0.94
    assert drafted["amount:values_to_not_be_null"].severity == "row"
    assert drafted["freshness"].kwargs["min_value"] == {"$PARAMETER": "freshness_cutoff"}


def test_a_source_that_can_be_empty_drafts_rules_an_empty_date_keeps():
    empty_day = Profile(PROFILE.rows, PROFILE.columns, {**DAYS, "2026-01-03": 0})
    drafted = rules(empty_day)
    assert drafted["volume"].kwargs["min_value"] == 0
    assert "freshness" not in drafted and "amount:mean_to_be_between" not in drafted
    labels = rules(context=DraftContext(key="id", time_field="seen_at", may_be_empty=True))
    assert labels["volume"].kwargs["min_value"] == 0 and "freshness" not in labels


def test_managed_lineage_columns_only_get_their_type_checked():
    assert [n for n in rules() if n.startswith("source_offset")] == ["source_offset:values_to_be_of_type"]
