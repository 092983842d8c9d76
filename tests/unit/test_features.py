import pandas as pd

from loopline.features import build_features
from loopline.spec import load_spec

FEATURES = load_spec("card_fraud").features


def rows(**overrides):
    base = {"event_time": "2026-11-01T23:30:00+00:00", "amount": 100.0, "customer_tx_count_30d": 5,
            "customer_avg_amount_30d": 50.0, "is_new_device": True, "country": "FR",
            "merchant_category": "travel", "channel": "ecom"}
    return pd.DataFrame([{**base, **overrides}])


def test_columns_follow_the_spec_and_derived_values_are_right():
    frame = build_features(rows(), FEATURES)
    assert list(frame.columns) == FEATURES.columns
    assert frame.loc[0, "hour"] == 23.5
    assert frame.loc[0, "amount_to_avg_ratio"] == 2.0
    assert frame.loc[0, "is_foreign"] == 1.0


def test_unseen_category_becomes_missing_not_a_new_code():
    frame = build_features(rows(merchant_category="casino"), FEATURES)
    assert pd.isna(frame.loc[0, "merchant_category"])
    assert list(frame["merchant_category"].cat.categories) == FEATURES.categorical["merchant_category"]
