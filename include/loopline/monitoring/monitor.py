"""Monitoring: drift of each scored schedule interval against the serving model's training reference.

The unit is the spec's schedule interval (a date of a daily pipeline, a month of a monthly
one), so each PSI compares a sample the size the schedule produces. Stores per-feature PSI
and a per-interval verdict in PostgreSQL; the verdict says whether retraining should be
requested (any monitored feature above the spec's PSI threshold), and the distribution of the
interval's predictions, so the loop view draws it without rescanning them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from loopline.core import db
from loopline.core.interval import Interval
from loopline.core.run_artifacts import PROFILE_ARTIFACT
from loopline.core.spec import PipelineSpec
from loopline.core.storage import Lake
from loopline.core.drift import drift_scores


@dataclass(frozen=True)
class DriftResult:
    interval: Interval
    model_version: int
    rows: int
    scores: dict[str, float]
    drifted_features: list[str]
    psi_threshold: float
    predictions: dict | None  # {"rows", "mean", "quantiles": {"0.05": ...}} of the stored predictions

    @property
    def max_psi(self) -> float:
        return max(self.scores.values(), default=0.0)

    @property
    def retrain_requested(self) -> bool:
        return bool(self.drifted_features)


def reference_profile(model_name: str, version: int) -> dict:
    """The drift reference stored with the training run behind a registered version."""
    import mlflow
    from mlflow import MlflowClient

    run_id = MlflowClient().get_model_version(model_name, str(version)).run_id
    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{PROFILE_ARTIFACT}"))


def check_drift(db_url: str, spec: PipelineSpec, lake: Lake, interval: Interval,
                model_version: int) -> list[DriftResult]:
    """PSI per monitored feature for each schedule interval within the run's interval that
    has valid entities (a run over a range of a daily pipeline still gets one verdict a date)."""
    from loopline.core.interval import schedule_intervals
    from loopline.models.store import load_version

    builder = load_version(db_url, spec.model_name, model_version).builder  # the version's own feature code
    reference, threshold = reference_profile(spec.model_name, model_version), spec.monitoring.psi_threshold
    results = []
    for unit in schedule_intervals(spec.cron, interval.first, interval.last):
        rows = _entities(spec, lake, unit)
        if rows is None:
            continue
        scores = drift_scores(reference, builder.build(rows))
        result = DriftResult(unit, model_version, len(rows), scores,
                             sorted(f for f, v in scores.items() if v > threshold), threshold,
                             prediction_summary(db_url, spec.name, unit))
        _store(db_url, spec.name, result)
        results.append(result)
    return results


PREDICTION_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def prediction_summary(db_url: str, pipeline: str, interval: Interval) -> dict | None:
    """Count, mean and quantiles of the interval's stored predictions (None: none stored)."""
    with db.connect(db_url) as conn:
        [row] = db.fetch_all(conn, "SELECT count(*) AS rows, avg(prediction) AS mean, percentile_cont(%s::float8[]) "
                                   "WITHIN GROUP (ORDER BY prediction) AS quantiles FROM loopline.predictions "
                                   "WHERE pipeline = %s AND score_date BETWEEN %s AND %s",
                             (list(PREDICTION_QUANTILES), pipeline, interval.first, interval.last))
    if not row["rows"]:
        return None
    return {"rows": row["rows"], "mean": row["mean"],
            "quantiles": {str(q): v for q, v in zip(PREDICTION_QUANTILES, row["quantiles"])}}


def _entities(spec: PipelineSpec, lake: Lake, interval: Interval) -> pd.DataFrame | None:
    """The valid entity rows of the interval's dates, or None when no date has any."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    locations = [lake.location(spec.entity_dataset, day) for day in interval.dates]
    tables = [pq.read_table(loc.arrow_path, filesystem=loc.filesystem()) for loc in locations if loc.exists()]
    return pa.concat_tables(tables, promote_options="permissive").to_pandas() if tables else None


def _store(db_url: str, pipeline: str, result: DriftResult) -> None:
    first, last = result.interval.first, result.interval.last
    with db.connect(db_url) as conn:
        for feature, value in result.scores.items():
            db.upsert(conn, "loopline.drift_metrics", {
                "pipeline": pipeline, "logical_date": first, "last_date": last, "feature": feature, "psi": value,
                "model_version": result.model_version}, key=["pipeline", "logical_date", "feature"])
        db.upsert(conn, "loopline.monitor_runs", {
            "pipeline": pipeline, "logical_date": first, "last_date": last, "model_version": result.model_version,
            "rows_scored": result.rows, "max_psi": result.max_psi, "drifted_features": result.drifted_features,
            "retrain_requested": result.retrain_requested, "psi_threshold": result.psi_threshold,
            "predictions": result.predictions}, key=["pipeline", "logical_date"])
