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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loopline.core.metrics import MODEL_TYPES as MODEL_TASKS
from loopline.models.features import FeatureBuilder

if TYPE_CHECKING:  # imported on use: specs (and so DAG files) check model types without them
    import numpy as np
    import pandas as pd


class UnsupportedModelType(ValueError):
    """A spec or a registered model names a model type Loopline does not know."""


class UnsafeModelFormat(ValueError):
    """A model's files are in a format whose loading could run code (a pickle)."""


def flavor_settings(local: Path, flavor: str) -> dict[str, Any]:
    """The flavor's block of a downloaded model's MLmodel file (where its data file is)."""
    from mlflow.models import Model

    flavors = Model.load(str(local)).flavors
    if flavor not in flavors:
        raise UnsupportedModelType(f"{local}: the model has no {flavor!r} flavor (it has {sorted(flavors)})")
    return flavors[flavor]


class ModelType(Protocol):
    name: str
    flavor: str  # the MLflow flavor it is logged with
    packages: tuple[str, ...]  # pinned into the logged model's requirements
    tasks: tuple[str, ...]  # the task types it can learn

    def fit(self, train: pd.DataFrame, train_target: pd.Series, validation: pd.DataFrame,
            validation_target: pd.Series, params: dict[str, Any], seed: int, task: str) -> Any: ...

    def predict(self, model: Any, features: pd.DataFrame) -> np.ndarray: ...

    def log_model(self, model: Any, **kwargs) -> Any: ...

    def load_model(self, local: Path) -> Any: ...


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

    def load_model(self, local):
        """LightGBM's own text format, read by LightGBM: nothing in the file is executed."""
        import lightgbm as lgb

        settings = flavor_settings(local, self.flavor)
        if settings.get("model_class", "lightgbm.basic.Booster") != "lightgbm.basic.Booster":
            raise UnsafeModelFormat(f"{local}: a {settings['model_class']} is stored as a pickle; Loopline loads only "
                                    "LightGBM Boosters, stored in LightGBM's text format")
        return lgb.Booster(model_file=str(local / settings["data"]))


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


# What a fitted baseline holds beyond the types skops trusts by default. The list is Loopline's,
# never read from the model: a changed model cannot widen it.
SKOPS_TRUSTED_TYPES = ["numpy.dtype"]


class _Sklearn:
    """scikit-learn pipelines, stored with skops: loading builds only trusted types, it never unpickles."""

    flavor, packages = "sklearn", ("scikit-learn", "numpy", "pandas", "scipy", "skops")

    def log_model(self, model, **kwargs):
        import mlflow.sklearn

        return mlflow.sklearn.log_model(model, serialization_format="skops",
                                        skops_trusted_types=SKOPS_TRUSTED_TYPES, **kwargs)

    def load_model(self, local):
        import skops.io

        settings = flavor_settings(local, self.flavor)
        if settings.get("serialization_format") != "skops":
            raise UnsafeModelFormat(f"{local}: stored as {settings.get('serialization_format')!r}, which runs code "
                                    "when loaded; Loopline loads scikit-learn models stored with skops only. "
                                    "Retrain to register a version in that format.")
        return skops.io.load(local / settings["pickled_model"], trusted=SKOPS_TRUSTED_TYPES)


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
