"""Each model type learns its task types, deterministically, from the same features."""
from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from card_fraud_simulator import SimulationConfig, transactions_for_day
from loopline.core import metrics
from loopline.core.spec import PIPELINES_DIR, load_spec
from loopline.models.features import FeatureBuilder
from loopline.models.types import MODEL_TYPES, UnsupportedModelType, model_type
from loopline.training.train import Recipe

SPEC = load_spec("card_fraud")
BUILDER = FeatureBuilder.for_spec(SPEC.features, PIPELINES_DIR)


def simulated(days: range) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Card features, the fraud label, and a regression target (the amount, from the other features)."""
    rows = pd.DataFrame([tx for d in days for tx in transactions_for_day(
        SimulationConfig(seed=11, transactions_per_day=3000), date(2026, 3, d))])
    features = BUILDER.build(rows)
    return features.drop(columns=["amount", "amount_to_avg_ratio"]), rows["_is_fraud"], np.log1p(rows["amount"])


@pytest.mark.parametrize("name,task", [(name, task) for name, kind in sorted(MODEL_TYPES.items())
                                       for task in kind.tasks])
def test_each_model_type_learns_its_tasks_and_is_deterministic(name, task):
    (x_train, *y_train), (x_valid, *y_valid), (x_test, *y_test) = (simulated(range(1, 4)), simulated(range(4, 5)),
                                                                   simulated(range(5, 6)))
    pick = 0 if task == "binary" else 1
    x_test.loc[x_test.index[:20], "merchant_category"] = None  # an unseen value becomes missing
    kind = model_type(name)
    params = SPEC.training.params.get(name, {"num_boost_round": 60} if name == "lightgbm" else {})
    params = {k: v for k, v in params.items() if k != "objective"}
    fit = lambda: kind.fit(x_train, y_train[pick], x_valid, y_valid[pick], params, 7, task)  # noqa: E731
    first, again = kind.predict(fit(), x_test), kind.predict(fit(), x_test)
    assert np.array_equal(first, again)
    assert metrics.valid_output(task, first).all()
    scores = metrics.evaluate(task, first, y_test[pick].to_numpy())
    if task == "binary":
        assert scores["roc_auc"] > 0.7
    else:  # the category explains the amount: far better than predicting the mean
        assert scores["r2"] > 0.3


def test_unknown_model_types_are_refused_with_the_known_ones():
    with pytest.raises(UnsupportedModelType, match="'xgboost' is not one of"):
        model_type("xgboost")


def test_a_recipe_survives_its_record():
    recipe = Recipe.from_spec(SPEC)
    assert Recipe.from_record(recipe.record()) == recipe
    assert recipe.model_type == "lightgbm" and "num_boost_round" in recipe.params
    assert recipe.feature_code_sha256 and recipe.fingerprint() != replace(recipe, feature_code_sha256="x").fingerprint()
