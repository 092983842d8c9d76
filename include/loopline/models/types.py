"""The model types a pipeline can train and serve, behind one interface.

    lightgbm           gradient-boosted trees (LightGBM), binary or regression, early-stopped
                       on the validation split
    sklearn_logistic   the binary baseline: logistic regression on scaled numerics and one-hot
                       categoricals
    sklearn_ridge      the regression baseline: ridge regression on the same columns

Training, the gate, the smoke test and scoring see only `ModelType.fit` and `Scorer`
(a probability per row for binary tasks, a value for regression), so adding a type is one
class here and its row in loopline.core.metrics.MODEL_TYPES. Every type predicts on one thread: Spark already runs one task per core.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from loopline.core.metrics import MODEL_TYPES as MODEL_TASKS
from loopline.models.features import FeatureBuilder

if TYPE_CHECKING:  # imported on use: specs (and so DAG files) check model types without them
    import numpy as np
    import pandas as pd


class UnsupportedModelType(ValueError):
    """A spec or a registered model names a model type Loopline does not know."""


class ModelType(Protocol):
    name: str
    flavor: str  # the MLflow flavor it is logged with
    packages: tuple[str, ...]  # pinned into the logged model's requirements
    tasks: tuple[str, ...]  # the task types it can learn

    def fit(self, train: pd.DataFrame, train_target: pd.Series, validation: pd.DataFrame,
            validation_target: pd.Series, params: dict[str, Any], seed: int, task: str) -> Any: ...

    def predict(self, model: Any, features: pd.DataFrame) -> np.ndarray: ...

    def log_model(self, model: Any, **kwargs) -> Any: ...

    def load_model(self, uri: str) -> Any: ...


class LightGBM:
    name, flavor, packages = "lightgbm", "lightgbm", ("lightgbm", "numpy", "pandas", "scikit-learn")
    tasks = MODEL_TASKS["lightgbm"]

    def fit(self, train, train_target, validation, validation_target, params, seed, task):
        import lightgbm as lgb

        params = {"objective": task, **params}
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


def _linear_columns(train: pd.DataFrame):
    """Scaled numerics (median-imputed) and one-hot categoricals (unseen or missing: all zeros)."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [c for c in train.columns if isinstance(train[c].dtype, pd.CategoricalDtype)]
    numeric = [c for c in train.columns if c not in categorical]
    return ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()),
         numeric),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])


class _Sklearn:
    flavor, packages = "sklearn", ("scikit-learn", "numpy", "pandas", "scipy")

    def log_model(self, model, **kwargs):
        import mlflow.sklearn

        return mlflow.sklearn.log_model(model, serialization_format="cloudpickle", **kwargs)

    def load_model(self, uri):
        import mlflow.sklearn

        return mlflow.sklearn.load_model(uri)


class SklearnLogistic(_Sklearn):
    name, tasks = "sklearn_logistic", MODEL_TASKS["sklearn_logistic"]

    def fit(self, train, train_target, validation, validation_target, params, seed, task):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        return make_pipeline(_linear_columns(train), LogisticRegression(random_state=seed, **params)).fit(
            train, train_target)

    def predict(self, model, features):
        return model.predict_proba(features)[:, 1]


class SklearnRidge(_Sklearn):
    name, tasks = "sklearn_ridge", MODEL_TASKS["sklearn_ridge"]

    def fit(self, train, train_target, validation, validation_target, params, seed, task):
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline

        return make_pipeline(_linear_columns(train), Ridge(random_state=seed, **params)).fit(train, train_target)

    def predict(self, model, features):
        return model.predict(features)


MODEL_TYPES: dict[str, ModelType] = {t.name: t for t in (LightGBM(), SklearnLogistic(), SklearnRidge())}


def model_type(name: str) -> ModelType:
    if name not in MODEL_TYPES:
        raise UnsupportedModelType(f"model type {name!r} is not one of {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[name]


@dataclass(frozen=True)
class Scorer:
    """A loaded model with its type, task and feature builder: `score` turns entity rows into
    one prediction each (a probability for binary tasks, a value for regression)."""

    model: Any
    kind: ModelType
    task: str
    builder: FeatureBuilder

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        import numpy as np

        return np.asarray(self.kind.predict(self.model, features), dtype=float)

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        return self.predict(self.builder.build(rows))
