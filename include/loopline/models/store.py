"""The model store: how a model goes into MLflow with everything it needs to score, and the
only way Loopline loads one back.

A logged model carries, beside the fitted model, Loopline's metadata in its MLmodel file
(model type, task type, the resolved features with learned vocabularies) and the pipeline's
feature module as a code file. Loading takes all three from the registry version, so a
version scores with the feature code it was trained with, even after the module changed.
Models are loaded only from the registry (`models:/...`): run artifacts, files and URLs
are refused, so what serves is always a registered, audited version. Registering records a
SHA-256 digest of the version's artifact files in `loopline.model_digests`; every load checks
the files against it before anything in them is read, so a model changed in the registry or
the bucket after registration never runs.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.core import db
from loopline.core.spec import Features
from loopline.models.features import FeatureBuilder, load_function

if TYPE_CHECKING:
    from loopline.models.types import ModelType, Scorer

REGISTRY_SCHEME = "models:/"
METADATA_KEY = "loopline"
CODE_DIR = "code"  # where MLflow puts a model's code_paths files


LOCAL_ONLY = {"registered_model_meta"}  # written by the MLflow client into each download, not stored
# The model card is documentation, added after registration (loopline.release.model_card) and
# never loaded: it is the one folder the digests leave out.
DOCUMENTATION_DIR = "model_card"


class UnregisteredModelError(ValueError):
    """A model was asked for by a path that is not a registry URI."""


class TamperedModelError(RuntimeError):
    """A version's artifact files differ from those recorded when it was registered."""


def artifact_digests(directory: Path) -> dict[str, str]:
    """SHA-256 of every artifact file, by path relative to the model's folder."""
    digests = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in LOCAL_ONLY
                       and p.relative_to(directory).parts[0] != DOCUMENTATION_DIR):
        sha = hashlib.sha256()
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                sha.update(block)
        digests[path.relative_to(directory).as_posix()] = sha.hexdigest()
    return digests


def register_version(db_url: str, pipeline: str, model_uri: str, name: str, tags: dict | None = None) -> int:
    """Register a logged model as a version of `name` and record its artifact digests."""
    import mlflow

    version = int(mlflow.register_model(model_uri, name, tags=tags).version)
    record_digests(db_url, pipeline, name, version)
    return version


def record_digests(db_url: str, pipeline: str, name: str, version: int) -> None:
    """Record the version's artifact digests once: a later call never replaces them, so
    re-recording cannot launder a changed artifact (the application role may only insert)."""
    import mlflow

    files = artifact_digests(Path(mlflow.artifacts.download_artifacts(f"{REGISTRY_SCHEME}{name}/{version}")))
    with db.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO loopline.model_digests (pipeline, model_name, version, files) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (model_name, version) DO NOTHING", (pipeline, name, version, db.as_json(files)))


def recorded_digests(db_url: str, name: str, version: int) -> dict[str, str]:
    with db.connect(db_url) as conn:
        rows = db.fetch_all(conn, "SELECT files FROM loopline.model_digests WHERE model_name = %s AND version = %s",
                            (name, version))
    if not rows:
        raise TamperedModelError(f"model {name} version {version} has no recorded artifact digests: it was not "
                                 "registered through Loopline (loopline.models.store.register_version), so "
                                 "nothing proves its files are the ones trained. Register a fresh version.")
    return rows[0]["files"]


def load_version(db_url: str, name: str, version: int) -> "Scorer":
    """Load a registered version after checking its files against the recorded digests."""
    return load_model(f"{REGISTRY_SCHEME}{name}/{version}", recorded_digests(db_url, name, version))


def download_verified(uri: str, expected: dict[str, str]) -> Path:
    """Download a registered version's artifacts and check them against `expected` before any
    file is opened by a model loader (unpickling a changed file would run its code)."""
    if not uri.startswith(REGISTRY_SCHEME):
        raise UnregisteredModelError(f"refusing to load {uri!r}: models are loaded only from the registry "
                                     f"({REGISTRY_SCHEME}<name>/<version>); register it first")
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(uri))
    found = artifact_digests(local)
    changed = sorted(path for path in expected.keys() | found.keys() if expected.get(path) != found.get(path))
    if changed:
        raise TamperedModelError(f"{uri}: refusing to load it, its artifact files differ from those recorded at "
                                 f"registration ({', '.join(changed)} changed, added or missing). Someone with write "
                                 "access to the MLflow registry or the artifact bucket changed them: find out who, "
                                 "then restore the files or retrain and register a fresh version.")
    return local


def log_model(kind: "ModelType", model: Any, task: str, builder: FeatureBuilder, **kwargs) -> Any:
    """Log `model` with its type, task, resolved features and feature module (MLflow model info)."""
    metadata = {METADATA_KEY: {"model_type": kind.name, "task": task,
                               "features": builder.features.model_dump(mode="json"),
                               "feature_code": builder.code_file.name if builder.code_file else None}}
    code_paths = [str(builder.code_file)] if builder.code_file else None
    return kind.log_model(model, name="model", metadata=metadata, code_paths=code_paths, **kwargs)


def load_model(uri: str, expected: dict[str, str]) -> "Scorer":
    """Load a registered version (`models:/<name>/<version>`) whose artifact files match
    `expected` (its recorded digests), with the feature builder it was logged with."""
    return load_local(download_verified(uri, expected), uri)


def load_local(local: Path, uri: str) -> "Scorer":
    """A model from its verified, downloaded artifacts (the MLmodel file, the model, its code)."""
    from mlflow.models import Model

    from loopline.models.types import Scorer, model_type

    recorded = (Model.load(str(local)).metadata or {}).get(METADATA_KEY)
    if recorded is None:
        raise UnregisteredModelError(f"{uri} has no Loopline metadata (model type, task, features): it was not "
                                     "logged by loopline.training.train; retrain it")
    features = Features.model_validate(recorded["features"])
    code = recorded["feature_code"]
    derive = load_function(local / CODE_DIR / code, features.code.function) if code else None
    kind = model_type(recorded["model_type"])
    return Scorer(kind.load_model(local), kind, recorded["task"], FeatureBuilder(features, derive))
