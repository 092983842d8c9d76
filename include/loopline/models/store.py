"""The model store: how a model goes into MLflow with everything it needs to score, and the
only way Loopline loads one back.

A logged model carries, beside the fitted model, Loopline's metadata in its MLmodel file
(model type, task type, the resolved features with learned vocabularies) and the pipeline's
feature module as a code file. Loading takes all three from the registry version, so a
version scores with the feature code it was trained with, even after the module changed.
Models are loaded only from the registry (`models:/...`): run artifacts, files and URLs
are refused, so what serves is always a registered, audited version.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.core.spec import Features
from loopline.models.features import FeatureBuilder, load_function

if TYPE_CHECKING:
    from loopline.models.types import ModelType, Scorer

REGISTRY_SCHEME = "models:/"
METADATA_KEY = "loopline"
CODE_DIR = "code"  # where MLflow puts a model's code_paths files


class UnregisteredModelError(ValueError):
    """A model was asked for by a path that is not a registry URI."""


def log_model(kind: "ModelType", model: Any, task: str, builder: FeatureBuilder, **kwargs) -> Any:
    """Log `model` with its type, task, resolved features and feature module (MLflow model info)."""
    metadata = {METADATA_KEY: {"model_type": kind.name, "task": task,
                               "features": builder.features.model_dump(mode="json"),
                               "feature_code": builder.code_file.name if builder.code_file else None}}
    code_paths = [str(builder.code_file)] if builder.code_file else None
    return kind.log_model(model, name="model", metadata=metadata, code_paths=code_paths, **kwargs)


def load_model(uri: str) -> "Scorer":
    """Load a registered version (`models:/<name>/<version>` or `models:/<name>@<alias>`) with
    the feature builder it was logged with."""
    if not uri.startswith(REGISTRY_SCHEME):
        raise UnregisteredModelError(f"refusing to load {uri!r}: models are loaded only from the registry "
                                     f"({REGISTRY_SCHEME}<name>/<version>); register it first")
    import mlflow
    from mlflow.models import Model

    from loopline.models.types import Scorer, model_type

    local = Path(mlflow.artifacts.download_artifacts(uri))  # once: the MLmodel file, the model, its code
    recorded = (Model.load(str(local)).metadata or {}).get(METADATA_KEY)
    if recorded is None:
        raise UnregisteredModelError(f"{uri} has no Loopline metadata (model type, task, features): it was not "
                                     "logged by loopline.training.train; retrain it")
    features = Features.model_validate(recorded["features"])
    code = recorded["feature_code"]
    derive = load_function(local / CODE_DIR / code, features.code.function) if code else None
    kind = model_type(recorded["model_type"])
    return Scorer(kind.load_model(str(local)), kind, recorded["task"], FeatureBuilder(features, derive))
