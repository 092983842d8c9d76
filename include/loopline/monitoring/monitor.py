"""Monitoring: each scored schedule interval against the serving model's training reference.

The unit is the spec's schedule interval (a date of a daily pipeline, a month of a monthly
one), so each PSI compares a sample the size the schedule produces. Per interval it measures

  - feature drift: PSI per monitored feature against the training features' profile;
  - prediction drift: the interval's stored predictions against the champion's holdout
    predictions (PSI over the holdout's bins);
  - label drift and calibration, once labels are back: of the predictions scored in the last
    `monitoring.label_window_days`, the realised target mean (a binary target's positive rate)
    against the training data's, the mean prediction on the same rows against it, and the
    primary metric realised on them against the version's holdout score.

The spec's retraining triggers (loopline.monitoring.retraining) judge these measures.

It stores the verdict, the predictions' distribution and these measures in PostgreSQL (the
loop view draws them without rescanning predictions) and writes the interval's drift report
(loopline.monitoring.drift_report) to the tier the spec places `drift_reports` on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from loopline.core import db, metrics, telemetry
from loopline.core.drift import Comparison, compare
from loopline.core.interval import Interval
from loopline.core.run_artifacts import OUTCOMES_ARTIFACT, PROFILE_ARTIFACT

if TYPE_CHECKING:
    from loopline.core.pipeline import Pipeline
    from loopline.monitoring.retraining import Reason

PREDICTION_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


@dataclass(frozen=True)
class LabelDrift:
    """Labels returned for recently scored predictions, against the training data."""
    window: Interval  # the score dates whose labelled predictions count
    labelled_rows: int
    target_mean: float  # realised
    reference_mean: float  # of the training data's target
    mean_prediction: float  # on the same labelled rows
    metric: str  # the spec's primary metric
    realised_score: float | None  # on the same rows (None: fewer than feedback.min_labelled_rows, or one class)
    holdout_score: float | None  # of the version at training (None: not recorded)

    @property
    def change(self) -> float:
        return self.target_mean - self.reference_mean

    @property
    def calibration_gap(self) -> float:
        return self.mean_prediction - self.target_mean


@dataclass(frozen=True)
class DriftResult:
    interval: Interval
    model_version: int
    rows: int
    features: dict[str, Comparison]
    psi_threshold: float
    predictions: dict | None  # {"rows", "mean", "quantiles": {"0.05": ...}} of the stored predictions
    prediction_drift: Comparison | None  # None: no predictions, or no holdout reference for the version
    labels: LabelDrift | None  # None: no labels back yet, or no reference for the version
    reasons: list["Reason"] = field(default_factory=list)  # the retraining triggers it fires

    @property
    def scores(self) -> dict[str, float]:
        return {feature: comparison.psi for feature, comparison in self.features.items()}

    @property
    def drifted_features(self) -> list[str]:
        return sorted(f for f, psi in self.scores.items() if psi > self.psi_threshold)

    @property
    def max_psi(self) -> float:
        return max(self.scores.values(), default=0.0)

    @property
    def retrain_requested(self) -> bool:
        return bool(self.reasons)

    def outcomes(self) -> dict:
        """What monitor_runs.outcomes keeps: prediction drift, label drift, calibration, the
        realised metric and the retraining reasons."""
        labels = self.labels
        return {"prediction_psi": self.prediction_drift.psi if self.prediction_drift else None,
                "retrain_reasons": [reason.__dict__ for reason in self.reasons],
                **({"labelled_rows": labels.labelled_rows, "target_mean": labels.target_mean,
                    "reference_mean": labels.reference_mean, "mean_prediction": labels.mean_prediction,
                    "label_window": str(labels.window), "metric": labels.metric,
                    "realised_score": labels.realised_score, "holdout_score": labels.holdout_score}
                   if labels else {})}


def training_reference(model_name: str, version: int) -> tuple[dict, dict | None]:
    """The version's feature profile and outcome reference, stored with its training run (a
    version trained before outcome references existed has none)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    run_id = MlflowClient().get_model_version(model_name, str(version)).run_id
    features = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{PROFILE_ARTIFACT}"))
    try:
        outcomes = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{OUTCOMES_ARTIFACT}"))
    except (MlflowException, OSError):
        outcomes = None
    return features, outcomes


def check_drift(p: "Pipeline", interval: Interval, model_version: int) -> list[DriftResult]:
    """Measure each schedule interval within the run's interval that has valid entities (a run
    over a range of a daily pipeline still gets one verdict a date), store it, write its report."""
    from loopline.core.interval import schedule_intervals
    from loopline.models.store import load_version
    from loopline.monitoring.drift_report import publish_report
    from loopline.monitoring.retraining import reasons

    spec, db_url = p.spec, p.settings.db_url
    builder = load_version(db_url, spec.model_name, model_version).builder  # the version's own feature code
    reference, outcomes = training_reference(spec.model_name, model_version)
    results = []
    for unit in schedule_intervals(spec.cron, interval.first, interval.last):
        rows = _entities(p, unit)
        if rows is None:
            continue
        predictions = _stored_predictions(db_url, spec.name, unit)
        result = DriftResult(
            unit, model_version, len(rows), compare(reference, builder.build(rows)), spec.monitoring.psi_threshold,
            _summary(predictions),
            compare({"prediction": outcomes["prediction"]}, pd.DataFrame({"prediction": predictions}))["prediction"]
            if outcomes and len(predictions) else None,
            label_drift(p, model_version, unit, outcomes) if outcomes else None)
        result = replace(result, reasons=reasons(result, spec))
        _store(db_url, spec.name, result, publish_report(p, result))
        _emit(spec.name, result)
        results.append(result)
    return results


def label_drift(p: "Pipeline", version: int, interval: Interval, reference: dict) -> LabelDrift | None:
    """The labels known at the interval's end for `version`'s predictions scored within the
    label window before it, against `reference` (the version's outcomes artifact; None: no
    label back yet)."""
    from loopline.monitoring.feedback import labelled_predictions

    window = Interval(interval.last - timedelta(days=p.spec.monitoring.label_window_days - 1), interval.last)
    rows = labelled_predictions(p, version, interval.last)
    rows = rows[rows["score_date"] >= window.first.isoformat()]
    if rows.empty:
        return None
    spec, target = p.spec, rows[p.spec.target].to_numpy(dtype=float)
    metric = spec.gate.primary_metric
    judgeable = len(rows) >= spec.monitoring.feedback.min_labelled_rows and metrics.judgeable(spec.task.type, target)
    realised = metrics.evaluate_one(spec.task.type, metric, rows["prediction"].to_numpy(), target) if judgeable \
        else None
    return LabelDrift(window, len(rows), float(target.mean()), reference["target_mean"],
                      float(rows["prediction"].mean()), metric, realised, reference.get("holdout", {}).get(metric))


def _emit(pipeline: str, result: DriftResult) -> None:
    for feature, psi in result.scores.items():
        telemetry.gauge("feature.psi", psi, pipeline=pipeline, feature=feature)
    telemetry.gauge("drift.max_psi", result.max_psi, pipeline=pipeline)
    telemetry.gauge("drift.psi_threshold", result.psi_threshold, pipeline=pipeline)
    if result.predictions:
        telemetry.gauge("prediction.mean", result.predictions["mean"], pipeline=pipeline)
    if result.prediction_drift:
        telemetry.gauge("prediction.psi", result.prediction_drift.psi, pipeline=pipeline)


def _stored_predictions(db_url: str, pipeline: str, interval: Interval) -> np.ndarray:
    with db.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT prediction FROM loopline.predictions WHERE pipeline = %s AND score_date BETWEEN %s AND %s",
                    (pipeline, interval.first, interval.last))
        return np.fromiter((value for (value,) in cur.fetchall()), dtype=float)


def _summary(predictions: np.ndarray) -> dict | None:
    """Count, mean and quantiles (linear, as PostgreSQL's percentile_cont) of the predictions."""
    if not len(predictions):
        return None
    return {"rows": len(predictions), "mean": float(predictions.mean()),
            "quantiles": {str(q): float(v) for q, v in zip(PREDICTION_QUANTILES,
                                                            np.quantile(predictions, PREDICTION_QUANTILES))}}


def _entities(p: "Pipeline", interval: Interval) -> pd.DataFrame | None:
    """The valid entity rows of the interval's dates, or None when no date has any."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    locations = [p.lake.location(p.spec.entity_dataset, day) for day in interval.dates]
    tables = [pq.read_table(loc.arrow_path, filesystem=loc.filesystem()) for loc in locations if loc.exists()]
    return pa.concat_tables(tables, promote_options="permissive").to_pandas() if tables else None


def _store(db_url: str, pipeline: str, result: DriftResult, report_uri: str) -> None:
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
            "predictions": result.predictions, "outcomes": result.outcomes(), "report_uri": report_uri},
            key=["pipeline", "logical_date"])
