"""Land one batch of classified records: bronze, quarantine, dead letters, reconciliation, record.

Every source (Kafka micro-batch, PostgreSQL increment, landed files) ends here, so bronze
and quarantine have one layout and one contract:

    <pipeline>/<dataset>/date=<event date>/ingest_batch=<n>/part-*.parquet
    <pipeline>/quarantine/<dataset>/date=<event date, or the run's date>/ingest_batch=<n>/part-*.parquet

A rejected record is filed under its event date when that can be read, otherwise under the
run's logical date: never under the producer's clock (Kafka's CreateTime may be anything).
A batch overwrites exactly its own `ingest_batch=<n>` directories, so re-executing a batch
after a crash replaces its output instead of adding to it. Before the batch is recorded, what
was written is read back and must account for every record read; otherwise ReconciliationError
names the numbers. A Kafka range may hold offsets without a record to read (transaction
markers, aborted records, compacted gaps): they are counted as `skipped`, never as landed.
Accepted records that carried fields the schema does not declare are counted per field
(`unknown_fields`), so a producer's new field is reported, not dropped silently.
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
# A dead letter larger than this is republished as a pointer to its quarantined copy: Kafka's
# default limits (a producer request of 1 MiB, a broker batch of 1 MiB + 12 bytes) less room
# for the headers and the record framing.
DEAD_LETTER_MAX_BYTES = 1_000_000


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
    gaps_allowed: bool = False  # Kafka: offsets may hold no record (transaction markers, compaction)


def _partition_date(target: LandingTarget):
    """A row's partition date: its event date when it can be read, else the run's logical date."""
    from pyspark.sql import functions as F

    event_time = F.col("record")[target.source.time_field]
    return F.when(F.year(event_time).between(1, 9999), F.to_date(event_time)).otherwise(F.lit(target.logical_date))


def _bronze_rows(classified, batch_id: int):
    from pyspark.sql import functions as F

    return (classified.where("reject_reason IS NULL")
            .select("record.*", *LINEAGE_COLUMNS, F.col("_date").alias("date"))
            .withColumn(BATCH_KEY, F.lit(batch_id)))


def _quarantine_rows(classified, target: LandingTarget, batch_id: int):
    from pyspark.sql import functions as F

    return (classified.where("reject_reason IS NOT NULL")
            .select("reject_reason", F.col("key").alias("raw_key"), F.col("value").alias("raw_value"),
                    *LINEAGE_COLUMNS, F.col("timestamp").alias("record_time"), F.lit(target.run_id).alias("run_id"),
                    F.col("_date").alias("date"), F.lit(batch_id).alias(BATCH_KEY)))


def publish_dead_letters(quarantined, target: LandingTarget) -> None:
    """Send rejected records, byte for byte, to `<topic>.dlq` with the reason in headers.

    A record too large to republish (DEAD_LETTER_MAX_BYTES) goes without key and value, with
    `loopline.quarantine.location` and `loopline.value_bytes` headers pointing to its copy.
    At least once: a re-executed batch may publish a record twice; consumers dedupe by the
    `loopline.source.*` headers (its original coordinates)."""
    from pyspark.sql import functions as F

    def header(name: str, column):
        return F.struct(F.lit(name).alias("key"), column.cast("string").cast("binary").alias("value"))

    size = F.coalesce(F.length("raw_key"), F.lit(0)) + F.coalesce(F.length("raw_value"), F.lit(0))
    fits = size <= DEAD_LETTER_MAX_BYTES
    context = [header("loopline.reason", F.col("reject_reason")), header("loopline.source.topic", F.col("source")),
               header("loopline.source.partition", F.col("source_partition")),
               header("loopline.source.offset", F.col("source_offset")),
               header("loopline.run_id", F.col("run_id")), header("loopline.ingest_batch", F.col(BATCH_KEY))]
    copy = F.concat(F.lit(f"{target.quarantine.spark_uri}/date="), F.col("date").cast("string"),
                    F.lit(f"/{BATCH_KEY}="), F.col(BATCH_KEY).cast("string"))
    pointer = [header("loopline.quarantine.location", copy), header("loopline.value_bytes", F.length("raw_value"))]
    (quarantined.select(
        F.when(fits, F.col("raw_key")).alias("key"), F.when(fits, F.col("raw_value")).alias("value"),
        F.when(fits, F.array(*context)).otherwise(F.array(*context, *pointer)).alias("headers"))
     .write.format("kafka").options(**target.kafka.spark())
     .option("topic", target.dead_letter_topic).save())


def _written(spark, location: DatasetLocation, dates: list[str], batch_id: int) -> int:
    """Rows of this batch actually on storage (read back, not counted from the plan)."""
    if not dates:
        return 0
    paths = [location.child(f"date={d}/{BATCH_KEY}={batch_id}").spark_uri for d in dates]
    return spark.read.parquet(*paths).count()


def _counts_by_date(classified) -> tuple[dict[str, int], dict[str, int], int]:
    """Rows per partition date, accepted and quarantined, and the accepted rows carrying fields
    the schema does not declare, in one pass over the batch."""
    from pyspark.sql import functions as F

    accepted = F.col("reject_reason").isNull()
    counts: tuple[dict[str, int], dict[str, int]] = ({}, {})
    with_unknown = 0
    for row in (classified.groupBy(accepted.alias("accepted"), F.col("_date").alias("date"))
                .agg(F.count(F.lit(1)).alias("rows"), F.sum((F.size("unknown_fields") > 0).cast("int")).alias("unknown"))
                .collect()):
        counts[0 if row["accepted"] else 1][str(row["date"])] = row["rows"]
        with_unknown += row["unknown"] if row["accepted"] else 0
    return (*counts, with_unknown)


def _unknown_field_counts(classified) -> dict[str, int]:
    """Accepted records per field the schema does not declare (landed without it)."""
    from pyspark.sql import functions as F

    rows = (classified.where("reject_reason IS NULL").select(F.explode("unknown_fields").alias("field"))
            .groupBy("field").count().collect())
    return {row["field"]: row["count"] for row in rows}


def _write_by_date(frame, location: DatasetLocation, dates: list[str]) -> None:
    """Overwrite exactly this batch's directory in each date partition (`date=D/ingest_batch=n`),
    in one job: a re-executed batch replaces its own files and touches no other batch's."""
    if dates:
        (frame.write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
         .partitionBy("date", BATCH_KEY).parquet(location.spark_uri))


def land(classified, batch_id: int, target: LandingTarget, expected: int, offsets: dict) -> None:
    """Write one classified batch, check in = accepted + quarantined on storage, record it.

    `expected`: the records (or, for Kafka, the offsets) the source range holds."""
    classified = classified.withColumn("_date", _partition_date(target)).persist()
    try:
        accepted_by_date, quarantined_by_date, with_unknown = _counts_by_date(classified)
        unknown_fields = _unknown_field_counts(classified) if with_unknown else {}
        consumed = sum(accepted_by_date.values()) + sum(quarantined_by_date.values())
        quarantine = _quarantine_rows(classified, target, batch_id)
        _write_by_date(_bronze_rows(classified, batch_id), target.bronze, sorted(accepted_by_date))
        _write_by_date(quarantine, target.quarantine, sorted(quarantined_by_date))
        if target.dead_letter_topic and quarantined_by_date:
            publish_dead_letters(quarantine, target)
    finally:
        classified.unpersist()
    spark = classified.sparkSession
    accepted = _written(spark, target.bronze, sorted(accepted_by_date), batch_id)
    quarantined = _written(spark, target.quarantine, sorted(quarantined_by_date), batch_id)
    skipped = expected - consumed
    if consumed != accepted + quarantined or skipped < 0 or (skipped and not target.gaps_allowed):
        raise ReconciliationError(
            f"{target.pipeline}/{target.source.dataset} batch {batch_id} ({offsets}): the source range holds "
            f"{expected} {'offsets' if target.gaps_allowed else 'records'}, {consumed} were read, {accepted} "
            f"landed in bronze + {quarantined} in quarantine. The batch is not recorded, so the next run "
            "re-executes it; if this repeats, check the source for deleted records or files."
        )
    with db.connect(target.db_url) as conn:
        db.upsert(conn, "loopline.ingest_batches", {
            "pipeline": target.pipeline, "dataset": target.source.dataset, "batch_id": batch_id,
            "run_id": target.run_id, "logical_date": target.logical_date,
            "source": target.source.topic or target.source.table or target.source.landing_prefix,
            "offsets": offsets, "consumed": consumed, "accepted": accepted, "quarantined": quarantined,
            "skipped": skipped,
            "accepted_by_date": accepted_by_date, "quarantined_by_date": quarantined_by_date,
            "unknown_fields": unknown_fields,
        }, key=["pipeline", "dataset", "batch_id"])
