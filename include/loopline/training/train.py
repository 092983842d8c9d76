"""Training: labelled valid rows known on the logical date → a model in an MLflow run.

The spec's recipe (task and model type, parameters, seed, features) is fitted on a time split by
event date (train | validation | holdout). The run records everything needed to explain and
repeat it: its data as `mlflow.data` inputs (source partitions and Kafka offset ranges in the
input tags; the full lineage, contract results and row ids as artifacts), the data hash, the
signature, an input example, pinned requirements and the git commit. `retrain_from_version`
(`loopline retrain --from-version N`) fits the recorded recipe on the recorded rows again.

A run is identified by (pipeline, logical date, DAG) and a fingerprint of its data and
recipe: rerunning the same date finds the finished run instead of training a twin, so reruns
add no model versions.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.core import metrics
from loopline.core.drift import profile
from loopline.core.interval import date_span
from loopline.core.run_artifacts import (HOLDOUT_ARTIFACT, INPUTS_ARTIFACT, LAST_EVENT_DATE_TAG, OUTCOMES_ARTIFACT,
                                        PROFILE_ARTIFACT, ROW_IDS_ARTIFACT)
from loopline.core.spec import Features, PipelineSpec, pipelines_dir
from loopline.core.storage import Lake
from loopline.models.features import FeatureBuilder
from loopline.training import data
from loopline.training.data import NotEnoughLabels


@dataclass(frozen=True)
class TrainingResult:
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    train_rows: int
    holdout_rows: int
    reused: bool


@dataclass(frozen=True)
class Recipe:
    """What is fitted, independent of the data: recorded with every run so it can be repeated.
    The feature module's content is part of it (its hash), so changed feature code is a new recipe."""

    task: str
    model_type: str
    params: dict[str, Any]
    seed: int
    features: Features
    target: str
    stored_columns: list[str]  # what the rows keep (data hashes are over these)
    feature_code_sha256: str | None = None

    @classmethod
    def from_spec(cls, spec: PipelineSpec) -> "Recipe":
        builder = FeatureBuilder.for_spec(spec.features, pipelines_dir())
        code_hash = hashlib.sha256(builder.code_file.read_bytes()).hexdigest() if builder.code_file else None
        return cls(spec.task.type, spec.training.model, spec.training.model_params, spec.training.seed, spec.features,
                   spec.target, data.stored_columns(spec), code_hash)

    @classmethod
    def from_record(cls, record: dict) -> "Recipe":
        return cls(**{**record, "features": Features.model_validate(record["features"])})

    def record(self) -> dict:
        return {**asdict(self), "features": self.features.model_dump(mode="json")}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.record(), sort_keys=True).encode()).hexdigest()

    def builder(self) -> FeatureBuilder:
        """The recipe's features with the pipeline's feature module (which must still match)."""
        builder = FeatureBuilder.for_spec(self.features, pipelines_dir())
        if builder.code_file and hashlib.sha256(builder.code_file.read_bytes()).hexdigest() != self.feature_code_sha256:
            raise ValueError(f"feature module {builder.code_file.name} changed since this recipe was recorded")
        return builder


def _existing_run(experiment_id: str, tags: dict[str, str]):
    import mlflow

    query = " and ".join(f"tags.{k} = '{v}'" for k, v in tags.items()) + " and attributes.status = 'FINISHED'"
    runs = mlflow.search_runs([experiment_id], filter_string=query, output_format="list", max_results=1)
    return runs[0] if runs else None


def _target_summary(task: str, target: pd.Series) -> dict[str, float]:
    return {"positives": int(target.sum())} if task == "binary" else {"target_mean": float(target.mean())}


def _recorded_inputs(spec: PipelineSpec, lake: Lake, db_url: str, splits: dict[str, pd.DataFrame],
                     recipe: Recipe, until: date, window_days: int | None, data_hash: str, null_targets: int) -> dict:
    """The lineage of one training: splits (dates, rows, hash), partitions, offsets, contracts."""
    rows = pd.concat(splits.values(), ignore_index=True)
    partitions = data.partitions(rows, spec, lake)
    offsets = (data.offset_ranges(rows, spec.entity_dataset)
               + data.offset_ranges(rows, spec.label_dataset, data.LABEL_PREFIX))
    return {
        "pipeline": spec.name, "trained_until": until.isoformat(), "window_days": window_days,
        "source": lake.location(spec.entity_dataset).spark_uri,
        "recipe": recipe.record(),
        "splits": {name: {"event_dates": sorted(frame["date"].unique().tolist()), "rows": len(frame),
                          **_target_summary(recipe.task, frame[recipe.target]),
                          "data_hash": data.data_hash(data.model_rows(frame, recipe.stored_columns))}
                   for name, frame in splits.items()},
        "null_target_rows": null_targets,
        "data_hash": data_hash,
        "partitions": partitions,
        "kafka_offsets": [asdict(o) for o in offsets],
        "contracts": data.contract_evidence(db_url, spec, partitions),
    }


def train(spec: PipelineSpec, lake: Lake, db_url: str, logical_date: date, dag_id: str,
          window_days: int | None = None) -> TrainingResult:
    """Train on labelled rows known at `logical_date` (optionally only the recent window)."""
    import mlflow

    labelled = data.labelled_rows(lake, spec, logical_date)
    time_field = spec.entity_source.time_field
    rows = data.recent(labelled.rows, time_field, logical_date, window_days)
    minimum = spec.training.min_labelled_rows
    if len(rows) < minimum:
        raise NotEnoughLabels(f"{spec.name} {logical_date}: {len(rows)} labelled rows, need {minimum} (and "
                              f"{labelled.null_targets} latest labels have a null target); labels arrive after "
                              "the events they describe, so this is expected on a pipeline's first days")
    splits = data.split_by_event_date(rows, time_field, spec.training.split.validation_days,
                                      spec.training.split.holdout_days)
    recipe = Recipe.from_spec(spec)
    data_hash = data.data_hash(data.model_rows(pd.concat(splits.values(), ignore_index=True), recipe.stored_columns))
    fingerprint = hashlib.sha256((data_hash + recipe.fingerprint()).encode()).hexdigest()[:16]
    tags = {"pipeline": spec.name, "logical_date": logical_date.isoformat(), "dag_id": dag_id,
            "data_fingerprint": fingerprint}
    existing = _existing_run(mlflow.set_experiment(spec.name).experiment_id, tags)
    if existing is not None:  # a rerun of the date: the same data and recipe were already trained
        return TrainingResult(existing.info.run_id, existing.data.tags["model_uri"], dict(existing.data.metrics),
                              int(existing.data.params["train_rows"]), int(existing.data.params["holdout_rows"]), True)
    inputs = _recorded_inputs(spec, lake, db_url, splits, recipe, logical_date, window_days, data_hash,
                              labelled.null_targets)
    return fit_and_log(spec, recipe, splits, inputs, f"train-{logical_date}", tags)


def _log_dataset(spec: PipelineSpec, recipe: Recipe, name: str, frame: pd.DataFrame, inputs: dict) -> None:
    """One split as an `mlflow.data` input: its rows, source, partitions and offset ranges."""
    import mlflow

    record = inputs["splits"][name]
    offsets = {}
    for o in (data.offset_ranges(frame, spec.entity_dataset)
              + data.offset_ranges(frame, spec.label_dataset, data.LABEL_PREFIX)):
        offsets.setdefault(f"offsets.{o.dataset}.{o.source}", []).append(f"{o.partition}:{o.first}-{o.last}")
    # MLflow hints about integer columns and calls a file:// source ambiguous: neither applies here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(data.model_rows(frame, recipe.stored_columns),
                                          source=inputs["source"], targets=recipe.target,
                                          name=f"{inputs['pipeline']}.{name}", digest=record["data_hash"][:36])
        mlflow.log_input(dataset, context=name, tags={
            "event_dates": date_span(record["event_dates"]), "rows": str(record["rows"]),
            "data_hash": record["data_hash"], **{k: ",".join(v) for k, v in offsets.items()}})


def last_event_date(inputs: dict) -> str:
    """The newest event date in any split: scoring never uses the model on that date or before."""
    return max(str(day) for split in inputs["splits"].values() for day in split["event_dates"])


def _log_files(writers: dict[str, Callable[[Path], object]]) -> None:
    """Write each artifact into a temporary folder with its writer and log it at its path."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        for artifact, write in writers.items():
            local = Path(tmp) / Path(artifact).name
            write(local)
            mlflow.log_artifact(str(local), artifact_path=str(Path(artifact).parent))


def fit_and_log(spec: PipelineSpec, recipe: Recipe, splits: dict[str, pd.DataFrame], inputs: dict, run_name: str,
                tags: dict[str, str]) -> TrainingResult:
    """Fit `recipe` on the splits and log the run: metrics on validation and holdout, the
    data inputs, the model with signature and pinned requirements, and the lineage artifacts."""
    import mlflow
    from mlflow.models import infer_signature

    from loopline.core.provenance import git_commit, pinned, runtime
    from loopline.models.store import log_model
    from loopline.models.types import model_type

    kind = model_type(recipe.model_type)
    builder = recipe.builder().learned(splits["train"])
    x = {name: builder.build(frame) for name, frame in splits.items()}
    y = {name: frame[recipe.target] for name, frame in splits.items()}
    commit, dirty = git_commit()
    mlflow.set_experiment(spec.name)
    with mlflow.start_run(run_name=run_name, tags={**tags, "mlflow.source.git.commit": commit,
                                                   "loopline.git_dirty": str(dirty).lower(),
                                                   "loopline.runtime": runtime(),
                                                   "loopline.data_hash": inputs["data_hash"],
                                                   LAST_EVENT_DATE_TAG: last_event_date(inputs)}) as run:
        model = kind.fit(x["train"], y["train"], x["validation"], y["validation"], recipe.params, recipe.seed,
                         recipe.task)
        holdout_predictions = kind.predict(model, x["holdout"])
        scores = metrics.evaluate(recipe.task, holdout_predictions, y["holdout"].to_numpy())
        validation = metrics.evaluate(recipe.task, kind.predict(model, x["validation"]), y["validation"].to_numpy())
        mlflow.log_params({"task": recipe.task, "model_type": recipe.model_type, "seed": recipe.seed, **recipe.params,
                           **{f"{name}_rows": len(frame) for name, frame in splits.items()},
                           "trained_until": inputs["trained_until"], "window_days": inputs["window_days"] or "all"})
        mlflow.log_metrics({**scores, **{f"validation_{k}": v for k, v in validation.items()}})
        for name, frame in splits.items():
            _log_dataset(spec, recipe, name, frame, inputs)
        info = log_model(kind, model, recipe.task, builder, input_example=x["holdout"].head(5),
                         signature=infer_signature(x["holdout"], holdout_predictions),
                         pip_requirements=pinned(("mlflow", *kind.packages)))
        holdout = data.model_rows(splits["holdout"], recipe.stored_columns)
        reference = profile(x["train"], spec.monitoring.drift_features)
        outcomes = {"prediction": profile(pd.DataFrame({"prediction": holdout_predictions}), ["prediction"])["prediction"],
                    "target_mean": float(y["train"].mean()), "holdout": scores}
        key = spec.entity_source.key
        row_ids = pd.concat([pd.DataFrame({"entity_key": frame[key].astype(str), "split": name})
                             for name, frame in splits.items()])
        _log_files({HOLDOUT_ARTIFACT: lambda f: holdout.to_parquet(f, index=False),
                    PROFILE_ARTIFACT: lambda f: f.write_text(json.dumps(reference)),
                    OUTCOMES_ARTIFACT: lambda f: f.write_text(json.dumps(outcomes)),
                    INPUTS_ARTIFACT: lambda f: f.write_text(json.dumps(inputs, indent=1, default=str)),
                    ROW_IDS_ARTIFACT: lambda f: row_ids.to_parquet(f, index=False)})
        mlflow.set_tag("model_uri", info.model_uri)
    return TrainingResult(run.info.run_id, info.model_uri, scores, len(splits["train"]), len(splits["holdout"]),
                          False)
