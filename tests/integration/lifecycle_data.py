"""Labelled payments for model-lifecycle tests: simulated days in memory, or written to a
pipeline's lake as the contract stage writes them (valid events by event date, valid labels
the day after)."""
from __future__ import annotations

import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from card_fraud_simulator import SimulationConfig, transactions_for_day
from contract_data import write_bronze
from loopline.core.pipeline import Pipeline
from loopline.core.run_artifacts import HOLDOUT_ARTIFACT
from loopline.core.spec import pipelines_dir
from loopline.models.features import FeatureBuilder
from loopline.release.registry import register_and_gate

LABELS_DDL = ("transaction_id string, is_fraud int, label_time timestamp, label_source string, "
              "schema_version int, source string, source_partition int, source_offset bigint")


def labelled(days: list[date], seed: int = 9, per_day: int = 3000, **shift: date) -> pd.DataFrame:
    """Simulated payments of `days` with their `is_fraud` label, as the valid events columns
    (`shift`: the simulator's label_shift_from, concept_shift_from or drift_from)."""
    config = SimulationConfig(seed=seed, transactions_per_day=per_day, **shift)
    rows = [tx for day in days for tx in transactions_for_day(config, day)]
    frame = pd.DataFrame(rows).rename(columns={"_is_fraud": "is_fraud"}).drop(columns="_label_delay")
    frame["event_time"] = [datetime.fromisoformat(t).replace(tzinfo=None) for t in frame["event_time"]]
    return frame


def write_labelled_days(p, frame: pd.DataFrame) -> None:
    """Each event date's rows to `valid_events`, their labels to `valid_labels` of the next day."""
    events_columns = [c for c in frame.columns if c != "is_fraud"]
    for day, rows in frame.groupby(frame["event_time"].dt.date):
        rows = rows.reset_index(drop=True)
        coordinates = {"source": p.spec.sources["events"].topic, "source_partition": 0,
                       "source_offset": range(len(rows))}
        write_bronze(p, p.spec.valid_dataset("events"), day, rows[events_columns].assign(**coordinates))
        labels = pd.DataFrame({"transaction_id": rows["transaction_id"], "is_fraud": rows["is_fraud"],
                               "label_time": rows["event_time"] + timedelta(days=1), "label_source": "chargeback",
                               "schema_version": 1, "source": p.spec.sources["labels"].topic,
                               "source_partition": 0, "source_offset": range(len(rows))})
        write_bronze(p, p.spec.valid_dataset("labels"), day + timedelta(days=1), labels, LABELS_DDL)


def builder(spec) -> FeatureBuilder:
    return FeatureBuilder.for_spec(spec.features, pipelines_dir())


def booster(spec, rows: pd.DataFrame, shuffle_labels: bool = False, seed: int = 7, rounds: int = 60):
    """A LightGBM model on `rows`; with shuffled labels it has learned nothing (a bad model)."""
    import lightgbm as lgb

    target = rows["is_fraud"].sample(frac=1, random_state=3).to_numpy() if shuffle_labels else rows["is_fraud"]
    return lgb.train({"objective": "binary", "verbose": -1, "seed": seed, "deterministic": True},
                     lgb.Dataset(builder(spec).build(rows), target), num_boost_round=rounds)


def log_booster(spec, model) -> str:
    """Log a LightGBM booster as training does (type, task, features, feature module) in the
    active MLflow run; return its model URI."""
    from loopline.models.store import log_model
    from loopline.models.types import model_type

    return log_model(model_type("lightgbm"), model, spec.task.type, builder(spec)).model_uri


def candidate_run(p: Pipeline, holdout: pd.DataFrame, log_model, tags: dict[str, str] | None = None
                  ) -> tuple[str, str]:
    """An MLflow run shaped like training's: a model and the holdout artifact (and `tags`)."""
    import mlflow

    mlflow.set_experiment(p.spec.name)
    with mlflow.start_run(tags=tags) as run, tempfile.TemporaryDirectory() as tmp:
        model_uri = log_model()
        path = Path(tmp) / Path(HOLDOUT_ARTIFACT).name
        holdout.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(HOLDOUT_ARTIFACT).parent))
    return run.info.run_id, model_uri


def gate(p: Pipeline, holdout: pd.DataFrame, log_model, day: date, dag_id: str = "test_gate",
         tags: dict[str, str] | None = None):
    """Log a candidate run and gate it for `day` as `dag_id` would."""
    run_id, model_uri = candidate_run(p, holdout, log_model, tags)
    return run_id, register_and_gate(p.settings.db_url, p.spec, run_id, model_uri, day, dag_id, f"manual__{dag_id}")


def lightgbm_model(spec, model):
    """What `gate` logs: `model` as training logs it."""
    return lambda: log_booster(spec, model)
