"""Land one batch of classified records: bronze, quarantine, dead letters, reconciliation, record.

Every source (Kafka micro-batch, PostgreSQL increment, landed files) ends here, so bronze
and quarantine have one layout and one contract:

    <pipeline>/<dataset>/date=<event date>/ingest_batch=<n>/part-*.parquet
    <pipeline>/quarantine/<dataset>/date=<record date>/ingest_batch=<n>/part-*.parquet

A batch overwrites exactly its own `ingest_batch=<n>` directories, so re-executing a batch
after a crash replaces its output instead of adding to it. Before the batch is recorded, what was written is read back and must account
for every record read; otherwise ReconciliationError names the numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from loopline.core import db
from loopline.core.kafka_auth import KafkaLogin
from loopline.core.spec import Source
from loopline.core.storage import DatasetLocation

LINEAGE_COLUMNS = ["source", "source_partition", "source_offset"]
BATCH_KEY = "ingest_batch"


class ReconciliationError(RuntimeError):
    """Records were read but did not all land in bronze or quarantine (or landed twice)."""


@dataclass(frozen=True)
class LandingTarget:
    """Everything a batch needs to land, small enough to ship to a Spark Connect worker."""

    db_url: str
    pipeline: str
    source: Source
    bronze: DatasetLocation
    quarantine: DatasetLocation
    run_id: str
    logical_date: date
    max_record_bytes: int
    dead_letter_topic: str | None = None
    kafka: KafkaLogin | None = None  # the ingest principal: it may write the dead-letter topic


def _bronze_rows(classified, source: Source, batch_id: int):
    from pyspark.sql import functions as F

    return (classified.where("reject_reason IS NULL")
            .select("record.*", *LINEAGE_COLUMNS)
            .withColumn("date", F.to_date(F.col(source.time_field)))
            .withColumn(BATCH_KEY, F.lit(batch_id)))


def _quarantine_rows(classified, target: LandingTarget, batch_id: int):
    from pyspark.sql import functions as F

    return (classified.where("reject_reason IS NOT NULL")
            .select("reject_reason", F.col("key").alias("raw_key"), F.col("value").alias("raw_value"),
                    *LINEAGE_COLUMNS, F.col("timestamp").alias("record_time"), F.lit(target.run_id).alias("run_id"),
                    F.to_date("timestamp").alias("date"), F.lit(batch_id).alias(BATCH_KEY)))


def publish_dead_letters(quarantined, target: LandingTarget) -> None:
    """Send rejected records, byte for byte, to `<topic>.dlq` with the reason in headers.

    At least once: a re-executed batch may publish a record twice; consumers dedupe by the
    `loopline.source.*` headers (its original coordinates)."""
    from pyspark.sql import functions as F

    def header(name: str, column):
        return F.struct(F.lit(name).alias("key"), column.cast("string").cast("binary").alias("value"))

    (quarantined.select(
        F.col("raw_key").alias("key"), F.col("raw_value").alias("value"),
        F.array(header("loopline.reason", F.col("reject_reason")), header("loopline.source.topic", F.col("source")),
                header("loopline.source.partition", F.col("source_partition")),
                header("loopline.source.offset", F.col("source_offset")),
                header("loopline.run_id", F.col("run_id")), header("loopline.ingest_batch", F.col(BATCH_KEY)),
                ).alias("headers"))
     .write.format("kafka").options(**target.kafka.spark())
     .option("topic", target.dead_letter_topic).save())


def _written(spark, location: DatasetLocation, dates: list[str], batch_id: int) -> int:
    """Rows of this batch actually on storage (read back, not counted from the plan)."""
    if not dates:
        return 0
    paths = [location.child(f"date={d}/{BATCH_KEY}={batch_id}").spark_uri for d in dates]
    return spark.read.parquet(*paths).count()


def _counts_by_date(classified, source: Source) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per partition date, accepted and quarantined, in one pass over the batch."""
    from pyspark.sql import functions as F

    accepted = F.col("reject_reason").isNull()
    day = F.when(accepted, F.to_date(F.col("record")[source.time_field])).otherwise(F.to_date("timestamp"))
    counts: tuple[dict[str, int], dict[str, int]] = ({}, {})
    for row in classified.groupBy(accepted.alias("accepted"), day.alias("date")).count().collect():
        counts[0 if row["accepted"] else 1][str(row["date"])] = row["count"]
    return counts


def _write_by_date(frame, location: DatasetLocation, dates: list[str]) -> None:
    """Overwrite exactly this batch's directory in each date partition (`date=D/ingest_batch=n`),
    in one job: a re-executed batch replaces its own files and touches no other batch's."""
    if dates:
        (frame.write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
         .partitionBy("date", BATCH_KEY).parquet(location.spark_uri))


def land(classified, batch_id: int, target: LandingTarget, expected: int, offsets: dict) -> None:
    """Write one classified batch, check in = accepted + quarantined on storage, record it."""
    classified = classified.persist()
    try:
        accepted_by_date, quarantined_by_date = _counts_by_date(classified, target.source)
        consumed = sum(accepted_by_date.values()) + sum(quarantined_by_date.values())
        quarantine = _quarantine_rows(classified, target, batch_id)
        _write_by_date(_bronze_rows(classified, target.source, batch_id), target.bronze, sorted(accepted_by_date))
        _write_by_date(quarantine, target.quarantine, sorted(quarantined_by_date))
        if target.dead_letter_topic and quarantined_by_date:
            publish_dead_letters(quarantine, target)
    finally:
        classified.unpersist()
    spark = classified.sparkSession
    accepted = _written(spark, target.bronze, sorted(accepted_by_date), batch_id)
    quarantined = _written(spark, target.quarantine, sorted(quarantined_by_date), batch_id)
    if not expected == consumed == accepted + quarantined:
        raise ReconciliationError(
            f"{target.pipeline}/{target.source.dataset} batch {batch_id} ({offsets}): the source range holds "
            f"{expected} records, {consumed} were read, {accepted} landed in bronze + {quarantined} in quarantine. "
            "The batch is not recorded, so the next run re-executes it; if this repeats, check the source "
            "for compaction, transactions or deleted files."
        )
    with db.connect(target.db_url) as conn:
        db.upsert(conn, "loopline.ingest_batches", {
            "pipeline": target.pipeline, "dataset": target.source.dataset, "batch_id": batch_id,
            "run_id": target.run_id, "logical_date": target.logical_date,
            "source": target.source.topic or target.source.table or target.source.landing_prefix,
            "offsets": offsets, "consumed": consumed, "accepted": accepted, "quarantined": quarantined,
            "accepted_by_date": accepted_by_date, "quarantined_by_date": quarantined_by_date,
        }, key=["pipeline", "dataset", "batch_id"])
