"""Both model types learn the simulated fraud signal, deterministically, from the same features."""
from __future__ import annotations

from dataclasses import asdict
from datetime import date

import numpy as np
import pandas as pd
import pytest

from loopline.features import build_features
from loopline.model_types import MODEL_TYPES, UnsupportedModelType, model_type, model_type_for_flavors
from loopline.simulate import SimulationConfig, transactions_for_day
from loopline.spec import load_spec
from loopline.training import Recipe, evaluate

SPEC = load_spec("card_fraud")


def simulated(days: range) -> tuple[pd.DataFrame, pd.Series]:
    rows = pd.DataFrame([tx for d in days for tx in transactions_for_day(
        SimulationConfig(seed=11, transactions_per_day=3000), date(2026, 3, d))])
    return build_features(rows, SPEC.features), rows["_is_fraud"]


@pytest.mark.parametrize("name", sorted(MODEL_TYPES))
def test_each_model_type_learns_and_is_deterministic(name):
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = simulated(range(1, 4)), simulated(range(4, 5)), \
        simulated(range(5, 6))
    x_test.loc[x_test.index[:20], "merchant_category"] = None  # an unseen value becomes missing
    kind, params = model_type(name), SPEC.training["params"][name]
    first = kind.predict(kind.fit(x_train, y_train, x_valid, y_valid, params, seed=7), x_test)
    again = kind.predict(kind.fit(x_train, y_train, x_valid, y_valid, params, seed=7), x_test)
    assert np.array_equal(first, again)
    assert ((first >= 0) & (first <= 1)).all() and not np.isnan(first).any()
    assert evaluate(first, y_test.to_numpy())["roc_auc"] > 0.7


def test_unknown_model_types_are_refused_with_the_known_ones():
    with pytest.raises(UnsupportedModelType, match="'xgboost' is not one of"):
        model_type("xgboost")
    with pytest.raises(UnsupportedModelType, match="not a model type Loopline serves"):
        model_type_for_flavors({"python_function": {}})
    assert model_type_for_flavors({"python_function": {}, "sklearn": {}}).name == "sklearn_logistic"


def test_a_recipe_survives_its_record():
    recipe = Recipe.from_spec(SPEC)
    assert Recipe.from_record(asdict(recipe)) == recipe
    assert recipe.model_type == "lightgbm" and "num_boost_round" in recipe.params
