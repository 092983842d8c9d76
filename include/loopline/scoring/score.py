"""Scoring: a registry model version applied to a run's valid entities (bronze that passed
its contract), by Spark, or in this process for a run below the spec's
`engine.in_process_below_rows` (loopline.scoring.in_process; same predictions, same files).

A run scores every date of its interval in one job, with one version. Each prediction names
the entity (the entities source's key, as text), its event time, the model version, the
task type and the prediction: a probability for binary tasks, a value for regression.
Spark writes the predictions to Parquet on the predictions tier (replacing the dates'
partitions). The client then reads the written files once, batch by batch, and each batch
goes both to PostgreSQL (COPY into `loopline.predictions`, one table for every pipeline, keyed
by prediction id `<pipeline>:<entity key>`; the interval's earlier rows are deleted in the
same transaction, so a rerun leaves exactly one row per valid entity) and to the spec's
predictions topic, keyed by prediction id. Every prediction is checked first: one NaN or
infinity fails the run with the count per date, before anything is written where readers
look. Scoring is point-in-time: a date is never scored by a model that trained on it
(`scoring_version`). A date is published once: a rerun that produces the same predictions
publishes nothing; one whose predictions changed (late events validated since) publishes the
date again, and consumers keep the latest message per key. Publishing is exactly once for
consumers reading `read_committed`: one Kafka transaction per publish, and a rerun checks
what an interrupted one left (loopline.scoring.publish).
"""
from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from loopline.core import db, partitions
from loopline.core.interval import Interval
from loopline.scoring.publish import MESSAGE_FIELDS, Intent, Publisher

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

    from loopline.core.pipeline import Pipeline
    from loopline.core.storage import DatasetLocation

PREDICTION_SCHEMA = "entity_key string, event_time timestamp, score_date date, prediction double"
BATCH_ROWS = 131_072  # the rows the client reads, copies and sends at a time

logger = logging.getLogger(__name__)


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
    engine: str = "spark"  # where the model ran: spark, or in_process (a small run)


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


CLEAR_SQL = """
DELETE FROM loopline.predictions WHERE pipeline = %(pipeline)s AND score_date BETWEEN %(first)s AND %(last)s
"""
COLUMNS = ", ".join(MESSAGE_FIELDS)
STAGE_SQL = f"CREATE TEMPORARY TABLE moved ON COMMIT DROP AS SELECT {COLUMNS} FROM loopline.predictions WITH NO DATA"
MOVE_SQL = f"""
INSERT INTO loopline.predictions ({COLUMNS})
SELECT {COLUMNS} FROM moved
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
    seen: dict[int, date | None] = {}
    for version in champions:  # newest first: usually the first one asked is the answer
        seen[version] = trained_through(client, name, version)
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


def _published_rows(conn, pipeline: str, interval: Interval) -> dict[str, int | None]:
    rows = db.fetch_all(conn, "SELECT logical_date::text AS day, published_rows FROM loopline.score_runs "
                              "WHERE pipeline=%s AND logical_date BETWEEN %s AND %s",
                        (pipeline, interval.first, interval.last))
    return {r["day"]: r["published_rows"] for r in rows}


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
    """A check for partitions.replace: every prediction of the run is a finite number (read
    from the staged files' prediction column with pyarrow, not a Spark job)."""

    def check(staged: "DatasetLocation") -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        partitioning = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")
        staged_rows = ds.dataset(staged.arrow_path, filesystem=staged.filesystem(), format="parquet",
                                 partitioning=partitioning).to_table(columns=["date", "prediction"])
        bad = pc.invert(pc.fill_null(pc.is_finite(staged_rows.column("prediction")), False))
        counts = pa.table({"date": staged_rows.column("date"), "bad": pc.cast(bad, pa.int64())}) \
            .group_by("date").aggregate([("bad", "sum"), ("bad", "count")]).to_pylist()
        failing = {row["date"]: (row["bad_sum"], row["bad_count"]) for row in counts if row["bad_sum"]}
        if failing:
            raise NonFinitePredictions(
                f"model {model_name} v{model_version} gave NaN or infinite predictions: "
                + ", ".join(f"{day}: {bad} of {rows}" for day, (bad, rows) in sorted(failing.items()))
                + ". Nothing of this run was written or published; the dates keep their previous predictions. "
                "Roll the model back (`loopline rollback`) or fix its features, then rerun the dates.")

    return check


def score(p: "Pipeline", interval: Interval, model_version: int) -> ScoreResult:
    """Score the interval's valid entities with one model version: one Spark job writes the
    predictions, then one pass over the written files feeds PostgreSQL and Kafka.

    Runs scoring one pipeline take turns (a PostgreSQL session lock): each replaces the dates'
    Parquet and rows, records and publishes after the other, and sees what it published."""
    with db.session_lock(p.settings.db_url, f"loopline.scoring:{p.spec.name}"):
        return _score(p, interval, model_version)


def _score(p: "Pipeline", interval: Interval, model_version: int) -> ScoreResult:
    """Order matters for exactly-once: the Kafka transaction opens before the pass, the
    database transaction (predictions, records, publish intent) commits before the Kafka one,
    and the dates are marked published after it (loopline.scoring.publish)."""
    spec = p.spec
    engine = _write_predictions(p, interval, model_version)
    written = _written(p, interval)
    by_date = {day: files.count_rows() for day, files in written.items()}  # from the files' footers
    publisher = Publisher(p)  # fences an interrupted earlier publish; reruns must not publish twice
    with db.connect(p.settings.db_url) as conn:
        publisher.settle(conn, interval)
        conn.commit()  # what an interrupted publish left is resolved before a new one starts
        already = _published_rows(conn, spec.name, interval)
        changed = {day: rows for day, rows in by_date.items() if already.get(day) != rows}  # new, or changed
        with publisher.transaction(conn, changed) as intent:
            published = _store_and_send(conn, p, interval, written, publisher, intent)
            _record_scores(conn, p, model_version, by_date, already)
            if intent:
                publisher.record_intent(conn, intent)
            conn.commit()  # before the Kafka transaction's
        conn.commit()  # the dates marked published
    return ScoreResult(str(interval), model_version, sum(by_date.values()), by_date,
                       p.lake.location("predictions").spark_uri, published, engine)


def _write_predictions(p: "Pipeline", interval: Interval, model_version: int) -> str:
    """Replace the interval's prediction partitions (staged, checked finite, moved into place):
    in this process when the valid entities, counted from their files' footers, are fewer than
    the spec's `engine.in_process_below_rows`, else with Spark. Return the engine that scored."""
    import pyarrow as pa

    from loopline.scoring.in_process import predictions_table

    spec = p.spec
    finite = require_finite(spec.model_name, model_version)
    entities = partitions.local_dataset(p, spec.entity_dataset, interval)
    if entities is not None and entities.count_rows() < spec.engine.in_process_below_rows:
        predictions = predictions_table(p, entities, model_version)
        partitions.replace_table(p, predictions, "predictions", interval,
                                 predictions.column("score_date").cast(pa.string()), check=finite)
        return "in_process"
    from pyspark.sql import functions as F  # only the Spark path needs pyspark

    partitions.replace(p, predictions_frame(p, interval, model_version), "predictions", interval,
                       F.col("score_date"), check=finite)
    return "spark"


def _store_and_send(conn, p: "Pipeline", interval: Interval, written: dict[str, "ds.Dataset"], publisher: Publisher,
                    intent: Intent | None) -> int:
    """Replace the interval's rows in loopline.predictions and send the intent's dates, in one
    pass over the written files; return the messages sent.

    The interval's previous rows are deleted and each batch is COPY'd straight into the table,
    on a thread of its own, so PostgreSQL parses one batch while the client sends it. An entity
    already scored on a date outside the interval (its key came back on a later date) stops the
    COPY on the primary key: the rows then go through a temporary table and an upsert, which
    moves that entity's row to its new date, as a rerun would."""
    sent, conflict = 0, None
    with conn.cursor() as cur, ThreadPoolExecutor(1, thread_name_prefix="copy") as copier:
        cur.execute(CLEAR_SQL, {"pipeline": p.spec.name, "first": interval.first, "last": interval.last})
        cur.execute("SAVEPOINT direct")
        copying = None
        for batch in prediction_batches(written.values()):
            conflict = conflict or _finished(copying)
            copying = None if conflict else copier.submit(copy_batch, cur, "loopline.predictions", batch)
            sent += publisher.send(intent, batch) if intent else 0
        conflict = conflict or _finished(copying)
        if conflict:
            logger.info("%s: %s; the rows go through an upsert instead", p.spec.name, conflict.diag.message_detail)
            cur.execute("ROLLBACK TO SAVEPOINT direct")
            cur.execute(STAGE_SQL)
            for batch in prediction_batches(written.values()):
                copy_batch(cur, "moved", batch)
            cur.execute(MOVE_SQL)
    return sent


def _finished(copying: "Future | None"):
    """Wait for a batch's COPY; the primary-key violation it hit, if any (other errors raise)."""
    from psycopg2 import errors

    try:
        if copying is not None:
            copying.result()
    except errors.UniqueViolation as conflict:
        return conflict
    return None


def _written(p: "Pipeline", interval: Interval) -> dict[str, "ds.Dataset"]:
    """The interval's written prediction files, per date that has any."""
    import pyarrow.dataset as ds

    locations = {day.isoformat(): p.lake.location("predictions", day) for day in interval.dates}
    return {day: ds.dataset(location.arrow_path, filesystem=location.filesystem(), format="parquet")
            for day, location in locations.items() if location.exists()}


def prediction_batches(written) -> Iterator["pa.RecordBatch"]:
    """The predictions' rows, BATCH_ROWS at a time, event times as UTC instants."""
    import pyarrow as pa

    for files in written:
        for batch in files.to_batches(columns=list(MESSAGE_FIELDS), batch_size=BATCH_ROWS):
            at = MESSAGE_FIELDS.index("event_time")
            yield batch.set_column(at, "event_time", batch.column(at).cast(pa.timestamp("us", tz="UTC")))


def copy_batch(cur, table: str, batch: "pa.RecordBatch") -> None:
    """COPY one batch into `table` (as CSV: timestamps with their zone)."""
    import pyarrow.csv as csv

    buffer = io.BytesIO()
    csv.write_csv(batch, buffer, csv.WriteOptions(include_header=False))
    buffer.seek(0)
    cur.copy_expert(f"COPY {table} ({COLUMNS}) FROM STDIN WITH (FORMAT csv)", buffer)


def _record_scores(conn, p: "Pipeline", model_version: int, by_date: dict[str, int],
                   already: dict[str, int | None]) -> None:
    """Record each date's scoring, in `conn`'s transaction."""
    spec = p.spec
    for day, rows in by_date.items():
        db.upsert(conn, "loopline.score_runs", {
            "pipeline": spec.name, "logical_date": date.fromisoformat(day), "model_version": model_version,
            "rows_scored": rows, "predictions_uri": p.lake.location("predictions", date.fromisoformat(day)).spark_uri,
            "published_rows": already.get(day)}, key=["pipeline", "logical_date"])
