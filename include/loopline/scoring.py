"""Scoring: Spark applies a registry model version to one partition of valid events (bronze that passed its contract).

Predictions go to Parquet on the predictions tier (overwriting the date's partition) and
are upserted into PostgreSQL keyed by prediction id (`<pipeline>:<transaction_id>`), so a
rerun of the date replaces its rows and leaves exactly one row per valid event.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from loopline import db
from loopline.spec import PipelineSpec
from loopline.storage import Lake

PREDICTION_SCHEMA = "transaction_id string, fraud_probability double"


@dataclass(frozen=True)
class ScoreResult:
    logical_date: str
    model_version: int
    rows: int
    predictions_uri: str


def _predict_batches(model_name: str, version: int, features_spec):
    """The function Spark runs on its Python workers: load the model once, score each batch."""

    def predict(batches):
        import pandas as pd

        from loopline.features import build_features
        from loopline.registry import load_model

        booster = load_model(f"models:/{model_name}/{version}")
        for batch in batches:
            probabilities = booster.predict(build_features(batch, features_spec)) if len(batch) else []
            yield pd.DataFrame({"transaction_id": batch["transaction_id"], "fraud_probability": probabilities})

    return predict


UPSERT_SQL = """
DELETE FROM loopline.predictions p
 WHERE p.pipeline = %(pipeline)s AND p.score_date = %(score_date)s
   AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.prediction_id = p.prediction_id);
INSERT INTO loopline.predictions (prediction_id, pipeline, score_date, transaction_id, fraud_probability, model_version)
SELECT prediction_id, pipeline, score_date, transaction_id, fraud_probability, model_version FROM {stage}
ON CONFLICT (prediction_id) DO UPDATE SET
    score_date = EXCLUDED.score_date, fraud_probability = EXCLUDED.fraud_probability,
    model_version = EXCLUDED.model_version, scored_at = now();
DROP TABLE {stage};
"""


def recorded_version(db_url: str, pipeline: str, logical_date: date) -> int | None:
    """The model version that first scored this date; a rerun scores with it again."""
    with db.connect(db_url) as conn:
        rows = db.fetch_all(conn, "SELECT model_version FROM loopline.score_runs WHERE pipeline=%s AND logical_date=%s",
                            (pipeline, logical_date))
    return rows[0]["model_version"] if rows else None


def score(spark, db_url: str, spec: PipelineSpec, lake: Lake, logical_date: date, model_version: int) -> ScoreResult:
    from pyspark.sql import functions as F

    events = spark.read.parquet(lake.location(spec.valid_dataset("events"), logical_date).spark_uri)
    predictions = (
        events.mapInPandas(_predict_batches(spec.model_name, model_version, spec.features), PREDICTION_SCHEMA)
        .select(
            F.concat(F.lit(f"{spec.name}:"), "transaction_id").alias("prediction_id"),
            F.lit(spec.name).alias("pipeline"),
            F.lit(logical_date).alias("score_date"),
            "transaction_id", "fraud_probability",
            F.lit(model_version).alias("model_version"),
        )
    )
    target = lake.location("predictions", logical_date)
    predictions.write.mode("overwrite").parquet(target.spark_uri)
    written = spark.read.parquet(target.spark_uri)
    stage = f"loopline.stage_predictions_{spec.name}_{logical_date:%Y%m%d}"
    written.write.format("jdbc").options(**db.jdbc_options(db_url), dbtable=stage).mode("overwrite").save()
    rows = written.count()
    with db.connect(db_url) as conn:
        with conn.cursor() as cur:
            cur.execute(UPSERT_SQL.format(stage=stage), {"pipeline": spec.name, "score_date": logical_date})
        db.upsert(conn, "loopline.score_runs", {"pipeline": spec.name, "logical_date": logical_date,
                                                "model_version": model_version, "rows_scored": rows,
                                                "predictions_uri": target.spark_uri},
                  key=["pipeline", "logical_date"])
    return ScoreResult(logical_date.isoformat(), model_version, rows, target.spark_uri)
