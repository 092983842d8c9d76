"""Scoring: Spark applies a registry model version to a run's valid entities (bronze that passed its contract).

A run scores every date of its interval in one job, with one version. Each prediction names
the entity (the entities source's key, as text), its event time, the model version, the
task type and the prediction: a probability for binary tasks, a value for regression.
Predictions go to Parquet on the predictions tier (replacing the dates' partitions), are
upserted into PostgreSQL's `loopline.predictions` (one table for every pipeline, keyed by
prediction id `<pipeline>:<entity key>`), so a rerun replaces its rows and leaves exactly
one row per valid entity, and are published to the spec's predictions topic, keyed by
prediction id. Every prediction is checked first: one NaN or infinity fails the run with the
count per date, before anything is written where readers look. Scoring is point-in-time: a
date is never scored by a model that trained on it (`scoring_version`). A date is published once: a
rerun that produces the same predictions publishes nothing; one whose predictions changed
(late events validated since) publishes the date again, and consumers keep the latest
message per key. Publishing is exactly once for consumers reading `read_committed`: one
Kafka transaction per publish, and a rerun checks what an interrupted one left
(loopline.scoring.publish).
"""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import psycopg2

from loopline.core import db, partitions
from loopline.core.interval import Interval
from loopline.scoring.publish import Publisher

if TYPE_CHECKING:
    from loopline.core.pipeline import Pipeline

PREDICTION_SCHEMA = "entity_key string, event_time timestamp, score_date date, prediction double"


class NoPointInTimeModel(RuntimeError):
    """Every champion so far trained on the date to be scored (or later)."""


class NonFinitePredictions(RuntimeError):
    """The model gave NaN or infinite predictions: nothing of the run was written or published."""


@dataclass(frozen=True)
class ScoreResult:
    interval: str
    model_version: int
    rows: int
    rows_by_date: dict[str, int]
    predictions_uri: str
    published: int  # messages sent to the predictions topic by this call (0: already published)


def _predict_batches(model_name: str, version: int, digests: dict[str, str], key: str, time_field: str):
    """The function Spark runs on its Python workers: load the model once (its files checked
    against the digests the driver read), score each batch."""

    def predict(batches):
        import pandas as pd

        from loopline.models.store import load_model

        model = load_model(f"models:/{model_name}/{version}", digests)
        for batch in batches:
            predictions = model.score(batch) if len(batch) else []
            yield pd.DataFrame({"entity_key": batch[key].astype(str), "event_time": batch[time_field],
                                "score_date": batch["date"], "prediction": predictions})

    return predict


UPSERT_SQL = """
DELETE FROM loopline.predictions p
 WHERE p.pipeline = %(pipeline)s AND p.score_date BETWEEN %(first)s AND %(last)s
   AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.prediction_id = p.prediction_id);
INSERT INTO loopline.predictions (prediction_id, pipeline, score_date, entity_key, event_time, task, prediction,
                                  model_version)
SELECT prediction_id, pipeline, score_date, entity_key, event_time::timestamptz, task, prediction, model_version
  FROM {stage}
ON CONFLICT (prediction_id) DO UPDATE SET
    score_date = EXCLUDED.score_date, event_time = EXCLUDED.event_time, task = EXCLUDED.task,
    prediction = EXCLUDED.prediction, model_version = EXCLUDED.model_version, scored_at = now();
"""


def recorded_version(db_url: str, pipeline: str, logical_date: date) -> int | None:
    """The model version that first scored this date; a rerun scores with it again."""
    with db.connect(db_url) as conn:
        rows = db.fetch_all(conn, "SELECT model_version FROM loopline.score_runs WHERE pipeline=%s AND logical_date=%s",
                            (pipeline, logical_date))
    return rows[0]["model_version"] if rows else None


def scoring_version(p: "Pipeline", first_day: date) -> int | None:
    """The model that scores a run starting on `first_day`, point-in-time: the version that first
    scored it (so reruns reproduce it), else the newest champion in the alias history that
    trained only on events before it (usually today's champion; for a backfill, an earlier one).
    None before the first champion; NoPointInTimeModel if every champion so far saw the date."""
    from mlflow import MlflowClient

    from loopline.models.aliases import CHAMPION, history

    recorded = recorded_version(p.settings.db_url, p.spec.name, first_day)
    if recorded:
        return recorded
    client, name = MlflowClient(), p.spec.model_name
    champions = list(dict.fromkeys(row["to_version"] for row in reversed(history(p.settings.db_url, name))
                                   if row["alias"] == CHAMPION))
    seen = {version: trained_through(client, name, version) for version in champions}
    for version in champions:
        if seen[version] is None or seen[version] < first_day:
            return version
    if champions:
        raise NoPointInTimeModel(
            f"{p.spec.name} {first_day}: no champion so far trained only on earlier events ("
            + ", ".join(f"v{v} through {seen[v]}" for v in champions) + "), and scoring with a model that "
            f"learned from {first_day} would overstate its quality. The date stays unscored; score it only with a "
            "model trained before it.")
    return None


def trained_through(client, name: str, version: int) -> date | None:
    """The newest event date `version` trained on (None: its run does not say, e.g. a model
    registered by hand, and it is then trusted as point-in-time)."""
    from loopline.core.run_artifacts import LAST_EVENT_DATE_TAG

    run_id = client.get_model_version(name, str(version)).run_id
    tag = client.get_run(run_id).data.tags.get(LAST_EVENT_DATE_TAG) if run_id else None
    return date.fromisoformat(tag) if tag else None


def _published_rows(db_url: str, pipeline: str, interval: Interval) -> dict[str, int | None]:
    with db.connect(db_url) as conn:
        rows = db.fetch_all(conn, "SELECT logical_date::text AS day, published_rows FROM loopline.score_runs "
                                  "WHERE pipeline=%s AND logical_date BETWEEN %s AND %s",
                            (pipeline, interval.first, interval.last))
    return {r["day"]: r["published_rows"] for r in rows}


def _messages(predictions):
    """Each prediction as a message: key = prediction id, value = the row as JSON."""
    from pyspark.sql import functions as F

    return predictions.select("prediction_id", F.to_json(F.struct(*predictions.columns)).alias("value"),
                              "model_version")


def predictions_frame(p: "Pipeline", interval: Interval, model_version: int):
    """The interval's valid entities scored by `model_version` (a lazy Spark DataFrame): Spark's
    Python workers load the version from the registry once per task and score batch by batch."""
    from pyspark.sql import functions as F

    from loopline.models.store import REGISTRY_SCHEME, download_verified, recorded_digests

    spec, source = p.spec, p.spec.entity_source
    entities = partitions.read(p, spec.entity_dataset, interval)
    digests = recorded_digests(p.settings.db_url, spec.model_name, model_version)
    download_verified(f"{REGISTRY_SCHEME}{spec.model_name}/{model_version}", digests)  # refused here, not in Spark
    return (
        entities.mapInPandas(_predict_batches(spec.model_name, model_version, digests, source.key, source.time_field),
                             PREDICTION_SCHEMA)
        .select(
            F.concat(F.lit(f"{spec.name}:"), "entity_key").alias("prediction_id"),
            F.lit(spec.name).alias("pipeline"),
            "score_date", "entity_key", "event_time",
            F.lit(spec.task.type).alias("task"),
            "prediction",
            F.lit(model_version).alias("model_version"),
        )
    )


def require_finite(model_name: str, model_version: int):
    """A check for partitions.replace: every prediction of the run is a finite number."""

    def check(staged) -> None:
        from pyspark.sql import functions as F

        bad = F.isnan("prediction") | F.col("prediction").isNull() | (F.abs("prediction") == F.lit(float("inf")))
        counts = staged.groupBy("date").agg(F.count("*").alias("rows"), F.sum(bad.cast("int")).alias("bad")).collect()
        failing = {str(r["date"]): (r["bad"], r["rows"]) for r in counts if r["bad"]}
        if failing:
            raise NonFinitePredictions(
                f"model {model_name} v{model_version} gave NaN or infinite predictions: "
                + ", ".join(f"{day}: {bad} of {rows}" for day, (bad, rows) in sorted(failing.items()))
                + ". Nothing of this run was written or published; the dates keep their previous predictions. "
                "Roll the model back (`loopline rollback`) or fix its features, then rerun the dates.")

    return check


def score(p: "Pipeline", interval: Interval, model_version: int) -> ScoreResult:
    """Score the interval's valid entities with one model version, in one Spark job per step.

    Runs scoring one pipeline take turns (a PostgreSQL session lock): each replaces the dates'
    Parquet, upserts, records and publishes after the other, and sees what it published."""
    with db.session_lock(p.settings.db_url, f"loopline.scoring:{p.spec.name}"):
        return _score(p, interval, model_version)


def _score(p: "Pipeline", interval: Interval, model_version: int) -> ScoreResult:
    from pyspark.sql import functions as F

    db_url, spec = p.settings.db_url, p.spec
    written = partitions.replace(p, predictions_frame(p, interval, model_version), "predictions", interval,
                                 F.col("score_date"), check=require_finite(spec.model_name, model_version))
    with staging_table(db_url, spec.name) as stage_table:
        # event times travel as UTC text: a JDBC timestamp would be shifted by the JVM's zone
        (written.withColumn("event_time",
                            F.concat(F.date_format("event_time", "yyyy-MM-dd HH:mm:ss.SSSSSS"), F.lit("+00")))
         .write.format("jdbc").options(**db.jdbc_options(db_url), dbtable=f"{db.STAGING}.{stage_table}")
         .mode("overwrite").save())
        by_date = {str(r["score_date"]): r["count"] for r in written.groupBy("score_date").count().collect()}
        kafka = Publisher(p)  # fences an interrupted earlier publish; reruns must not publish twice
        kafka.settle(interval)
        already = _published_rows(db_url, spec.name, interval)
        _record_scores(p, interval, model_version, stage_table, by_date, already)
        changed = sorted(day for day, rows in by_date.items() if already.get(day) != rows)  # new, or changed
        published = kafka.publish(_messages(written.where(F.col("score_date").cast("string").isin(changed))),
                                  {day: by_date[day] for day in changed}) if changed else 0
    return ScoreResult(str(interval), model_version, sum(by_date.values()), by_date,
                       p.lake.location("predictions").spark_uri, published)


@contextmanager
def staging_table(db_url: str, pipeline: str) -> Iterator[str]:
    """A new JDBC staging table name for one scoring run, and the pipeline's staging tables
    dropped before and after it. Runs of a pipeline hold its scoring lock, so any table left
    under the pipeline's prefix belongs to a run that died (killed, or its connection lost)."""
    prefix = staging_prefix(pipeline)
    _drop_tables(db_url, prefix)
    try:
        yield prefix + uuid.uuid4().hex
    finally:
        with suppress(psycopg2.Error):  # PostgreSQL gone: the run's own error says so; the next run drops it
            _drop_tables(db_url, prefix)


def staging_prefix(pipeline: str) -> str:
    """The name prefix of one pipeline's staging tables (a digest: PostgreSQL names are at most 63 bytes)."""
    return f"predictions_{hashlib.sha256(pipeline.encode()).hexdigest()[:10]}_"


def _drop_tables(db_url: str, prefix: str) -> None:
    from psycopg2 import sql

    with db.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s AND starts_with(tablename, %s)",
                    (db.STAGING, prefix))
        for (table,) in cur.fetchall():
            cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(db.STAGING, table)))


def _record_scores(p: "Pipeline", interval: Interval, model_version: int, stage_table: str, by_date: dict[str, int],
                   already: dict[str, int | None]) -> None:
    """Upsert the staged predictions and record each date's scoring, in one transaction."""
    from psycopg2 import sql

    db_url, spec = p.settings.db_url, p.spec
    with db.connect(db_url) as conn:
        with conn.cursor() as cur:
            upsert = sql.SQL(UPSERT_SQL).format(stage=sql.Identifier(db.STAGING, stage_table))
            cur.execute(upsert, {"pipeline": spec.name, "first": interval.first, "last": interval.last})
        for day, rows in by_date.items():
            db.upsert(conn, "loopline.score_runs", {
                "pipeline": spec.name, "logical_date": date.fromisoformat(day), "model_version": model_version,
                "rows_scored": rows, "predictions_uri": p.lake.location("predictions", date.fromisoformat(day)).spark_uri,
                "published_rows": already.get(day)}, key=["pipeline", "logical_date"])
