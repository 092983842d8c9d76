"""Features: built-in transforms, learned vocabularies and card_fraud's feature module."""
import pandas as pd
import pytest

from loopline.core.spec import PIPELINES_DIR, load_spec
from loopline.core.spec import Features
from loopline.models.features import FeatureBuilder

CARD = FeatureBuilder.for_spec(load_spec("card_fraud").features, PIPELINES_DIR)


def card_rows(**overrides):
    base = {"event_time": "2026-11-01T23:30:00+00:00", "amount": 100.0, "customer_tx_count_30d": 5,
            "customer_avg_amount_30d": 50.0, "is_new_device": True, "country": "FR",
            "merchant_category": "travel", "channel": "ecom"}
    return pd.DataFrame([{**base, **overrides}])


def test_card_fraud_columns_follow_the_spec_and_its_module_derives_the_rest():
    frame = CARD.build(card_rows())
    assert list(frame.columns) == CARD.features.columns
    assert frame.loc[0, "hour"] == 23.5
    assert frame.loc[0, "amount_to_avg_ratio"] == 2.0
    assert frame.loc[0, "is_foreign"] == 1.0


def test_unseen_category_becomes_missing_not_a_new_code():
    frame = CARD.build(card_rows(merchant_category="casino"))
    assert pd.isna(frame.loc[0, "merchant_category"])
    assert list(frame["merchant_category"].cat.categories) == CARD.features.categorical["merchant_category"]


def test_built_in_transforms():
    features = Features.model_validate({
        "numeric": ["hour", "weekday", "month", "per_head"], "boolean": ["is_clear"],
        "derived": {"hour": {"hour_of_day": "at"}, "weekday": {"day_of_week": "at"}, "month": {"month": "at"},
                    "per_head": {"ratio": ["total", "people"]}, "is_clear": {"equals": ["weather", "Clear"]}}})
    rows = pd.DataFrame({"at": ["2012-02-19T13:00:00Z", "2012-12-31T06:00:00Z"], "total": [10.0, 3.0],
                         "people": [4, 0], "weather": ["Clear", None]})
    frame = FeatureBuilder(features).build(rows)
    assert frame["hour"].tolist() == [13.0, 6.0]
    assert frame["weekday"].tolist() == [6.0, 0.0]  # Sunday, Monday
    assert frame["month"].tolist() == [2.0, 12.0]
    assert frame.loc[0, "per_head"] == 2.5 and pd.isna(frame.loc[1, "per_head"])  # x / 0 is missing, not inf
    assert frame["is_clear"].tolist() == [1.0, 0.0]


def test_a_learned_vocabulary_comes_from_the_training_rows_only():
    builder = FeatureBuilder(Features.model_validate({"categorical": {"season": "learn"}}))
    with pytest.raises(ValueError, match="learned first"):
        builder.build(pd.DataFrame({"season": ["fall"]}))
    learned = builder.learned(pd.DataFrame({"season": ["fall", "winter", None, "fall"]}))
    assert learned.features.categorical == {"season": ["fall", "winter"]}
    frame = learned.build(pd.DataFrame({"season": ["winter", "spring", None]}))
    assert frame["season"].tolist()[0] == "winter" and frame["season"].isna().tolist() == [False, True, True]


def test_a_transform_is_exactly_one_built_in():
    with pytest.raises(ValueError, match="exactly one transform"):
        Features.model_validate({"numeric": ["x"], "derived": {"x": {"month": "a", "hour_of_day": "a"}}})
    with pytest.raises(ValueError, match="Extra inputs"):
        Features.model_validate({"numeric": ["x"], "derived": {"x": {"eval": "a * 2"}}})
