"""Training: labelled valid rows (bronze that passed its contract) up to the logical date → a LightGBM model in an MLflow run.

A run is identified by (pipeline, logical date, DAG) and a fingerprint of its training data;
rerunning the same date on the same data finds and returns the finished run instead of
training a twin, so reruns add no model versions.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.features import build_features
from loopline.drift import profile
from loopline.spec import PipelineSpec
from loopline.storage import Lake

HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
PROFILE_ARTIFACT = "reference/profile.json"


class NotEnoughLabels(RuntimeError):
    """Too few labelled rows to train (normal at cold start: labels arrive days later)."""


@dataclass(frozen=True)
class TrainingResult:
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    train_rows: int
    holdout_rows: int
    reused: bool


def read_partitions(lake: Lake, dataset: str, until: date) -> pd.DataFrame:
    """All partitions of a dataset up to and including `until`, as one pandas frame."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    location = lake.location(dataset)
    if not location.exists():
        return pd.DataFrame()
    partitioning = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")
    partitions = ds.dataset(location.arrow_path, filesystem=location.filesystem(), format="parquet",
                            partitioning=partitioning)
    return partitions.to_table(filter=ds.field("date") <= until.isoformat()).to_pandas()


def labelled_rows(lake: Lake, spec: PipelineSpec, until: date) -> pd.DataFrame:
    """Events joined with their latest label, both as known on `until`."""
    events = read_partitions(lake, spec.valid_dataset("events"), until)
    labels = read_partitions(lake, spec.valid_dataset("labels"), until)
    if events.empty or labels.empty:
        return pd.DataFrame()
    events = events.drop_duplicates("transaction_id", keep="last")
    labels = labels.sort_values("label_time").drop_duplicates("transaction_id", keep="last")
    joined = events.merge(labels[["transaction_id", spec.target]], on="transaction_id", how="inner")
    return joined.sort_values(["event_time", "transaction_id"]).reset_index(drop=True)


def time_split(rows: pd.DataFrame, validation_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Oldest rows train, the most recent `validation_fraction` validate (no look-ahead)."""
    cut = int(len(rows) * (1 - validation_fraction))
    return rows.iloc[:cut], rows.iloc[cut:]


def fingerprint(rows: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(rows[["transaction_id"]], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def evaluate(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    return {
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "average_precision": float(average_precision_score(labels, probabilities)),
        "log_loss": float(log_loss(labels, np.clip(probabilities, 1e-7, 1 - 1e-7))),
    }


def _existing_run(experiment_id: str, tags: dict[str, str]):
    import mlflow

    query = " and ".join(f"tags.{k} = '{v}'" for k, v in tags.items()) + " and attributes.status = 'FINISHED'"
    runs = mlflow.search_runs([experiment_id], filter_string=query, output_format="list", max_results=1)
    return runs[0] if runs else None


def recent(rows: pd.DataFrame, until: date, window_days: int | None) -> pd.DataFrame:
    """Only rows whose event day falls in the last `window_days` days up to `until` (all if None)."""
    if window_days is None or rows.empty:
        return rows
    first_day = pd.Timestamp(until, tz="UTC") - pd.Timedelta(days=window_days - 1)
    return rows[pd.to_datetime(rows["event_time"], utc=True) >= first_day].reset_index(drop=True)


def train(spec: PipelineSpec, lake: Lake, logical_date: date, dag_id: str,
          window_days: int | None = None) -> TrainingResult:
    """Train on labelled rows known at `logical_date` (optionally only the recent window)."""
    import lightgbm as lgb
    import mlflow
    import mlflow.lightgbm

    rows = recent(labelled_rows(lake, spec, logical_date), logical_date, window_days)
    minimum = spec.training["min_labelled_rows"]
    if len(rows) < minimum:
        raise NotEnoughLabels(f"{spec.name} {logical_date}: {len(rows)} labelled rows, need {minimum}; "
                              "labels arrive 1-3 days after payments, so this is expected on the first days")
    train_rows, holdout = time_split(rows, spec.training["validation_fraction"])
    tags = {"pipeline": spec.name, "logical_date": logical_date.isoformat(), "dag_id": dag_id,
            "data_fingerprint": fingerprint(rows)}
    experiment = mlflow.set_experiment(spec.name)
    existing = _existing_run(experiment.experiment_id, tags)
    if existing is not None:
        return TrainingResult(existing.info.run_id, existing.data.tags["model_uri"], dict(existing.data.metrics),
                              int(existing.data.params["train_rows"]), int(existing.data.params["holdout_rows"]), True)

    x_train, x_holdout = build_features(train_rows, spec.features), build_features(holdout, spec.features)
    params = {k: v for k, v in spec.training["params"].items() if k != "num_boost_round"}
    params["seed"] = spec.training["seed"]
    params["deterministic"] = True
    with mlflow.start_run(run_name=f"train-{logical_date}", tags=tags) as run:
        booster = lgb.train(params, lgb.Dataset(x_train, train_rows[spec.target]),
                            num_boost_round=spec.training["params"]["num_boost_round"])
        metrics = evaluate(booster.predict(x_holdout), holdout[spec.target].to_numpy())
        mlflow.log_params({**params, "train_rows": len(train_rows), "holdout_rows": len(holdout),
                           "trained_until": logical_date.isoformat(),
                           "window_days": window_days or "all"})
        mlflow.log_metrics(metrics)
        info = mlflow.lightgbm.log_model(booster, name="model", input_example=x_holdout.head(5))
        with tempfile.TemporaryDirectory() as tmp:
            holdout_file = Path(tmp) / "holdout.parquet"
            holdout.to_parquet(holdout_file, index=False)
            mlflow.log_artifact(str(holdout_file), artifact_path="holdout")
            profile_file = Path(tmp) / "profile.json"
            reference = profile(x_train, spec.monitoring["drift_features"])
            profile_file.write_text(json.dumps(reference))
            mlflow.log_artifact(str(profile_file), artifact_path="reference")
        mlflow.set_tag("model_uri", info.model_uri)
    return TrainingResult(run.info.run_id, info.model_uri, metrics, len(train_rows), len(holdout), False)
