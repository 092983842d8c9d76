"""The model types a pipeline can train and serve, behind one interface.

    lightgbm           gradient-boosted trees (LightGBM), early-stopped on the validation split
    sklearn_logistic   the baseline: scikit-learn logistic regression on scaled numerics and
                       one-hot categoricals

Training, the gate, the smoke test and scoring see only `ModelType.fit` and `Scorer.predict`
(a fraud probability per row), so adding a type is one class here. Every type predicts on
one thread: Spark already runs one task per core.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd


class UnsupportedModelType(ValueError):
    """A spec or a registered model names a model type Loopline does not know."""


class ModelType(Protocol):
    name: str
    flavor: str  # the MLflow flavor it is logged with
    packages: tuple[str, ...]  # pinned into the logged model's requirements

    def fit(self, train: pd.DataFrame, train_target: pd.Series, validation: pd.DataFrame,
            validation_target: pd.Series, params: dict[str, Any], seed: int) -> Any: ...

    def predict(self, model: Any, features: pd.DataFrame) -> np.ndarray: ...

    def log_model(self, model: Any, **kwargs) -> Any: ...

    def load_model(self, uri: str) -> Any: ...


class LightGBM:
    name, flavor, packages = "lightgbm", "lightgbm", ("lightgbm", "numpy", "pandas", "scikit-learn")

    def fit(self, train, train_target, validation, validation_target, params, seed):
        import lightgbm as lgb

        params = dict(params)
        rounds, patience = params.pop("num_boost_round"), params.pop("early_stopping_rounds", None)
        params.update(seed=seed, deterministic=True, num_threads=1)
        validation_set = lgb.Dataset(validation, validation_target)
        callbacks = [lgb.early_stopping(patience, verbose=False)] if patience else []
        return lgb.train(params, lgb.Dataset(train, train_target), num_boost_round=rounds,
                         valid_sets=[validation_set], callbacks=callbacks)

    def predict(self, model, features):
        return model.predict(features, num_threads=1)

    def log_model(self, model, **kwargs):
        import mlflow.lightgbm

        # MLflow's JSON serving check sends categoricals as strings, which LightGBM refuses;
        # Loopline serves through Scorer with the spec's category vocabulary instead.
        return mlflow.lightgbm.log_model(model, validate_serving_input=False, **kwargs)

    def load_model(self, uri):
        import mlflow.lightgbm

        return mlflow.lightgbm.load_model(uri)


class SklearnLogistic:
    name, flavor, packages = "sklearn_logistic", "sklearn", ("scikit-learn", "numpy", "pandas", "scipy")

    def fit(self, train, train_target, validation, validation_target, params, seed):
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        categorical = [c for c in train.columns if isinstance(train[c].dtype, pd.CategoricalDtype)]
        numeric = [c for c in train.columns if c not in categorical]
        columns = ColumnTransformer([
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),  # unseen: all zeros
        ])
        model = make_pipeline(columns, LogisticRegression(random_state=seed, **params))
        return model.fit(train, train_target)

    def predict(self, model, features):
        return model.predict_proba(features)[:, 1]

    def log_model(self, model, **kwargs):
        import mlflow.sklearn

        return mlflow.sklearn.log_model(model, serialization_format="cloudpickle", **kwargs)

    def load_model(self, uri):
        import mlflow.sklearn

        return mlflow.sklearn.load_model(uri)


MODEL_TYPES: dict[str, ModelType] = {t.name: t for t in (LightGBM(), SklearnLogistic())}


def model_type(name: str) -> ModelType:
    if name not in MODEL_TYPES:
        raise UnsupportedModelType(f"model type {name!r} is not one of {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[name]


def model_type_for_flavors(flavors: dict[str, Any]) -> ModelType:
    """The type of a logged model, from the flavors in its MLmodel file."""
    for candidate in MODEL_TYPES.values():
        if candidate.flavor in flavors:
            return candidate
    raise UnsupportedModelType(f"a model with flavors {sorted(flavors)} is not a model type Loopline serves "
                               f"({', '.join(f'{t.name} ({t.flavor})' for t in MODEL_TYPES.values())})")


@dataclass(frozen=True)
class Scorer:
    """A loaded model and its type: `predict` gives one fraud probability per feature row."""

    model: Any
    kind: ModelType

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.kind.predict(self.model, features), dtype=float)
