"""Land one batch of classified records: bronze, quarantine, dead letters, reconciliation, record.

Every source (Kafka micro-batch, PostgreSQL increment, landed files) ends here, so bronze
and quarantine have one layout and one contract:

    <pipeline>/<dataset>/date=<event date>/ingest_batch=<n>/part-*.parquet
    <pipeline>/quarantine/<dataset>/date=<event date, or the run's date>/ingest_batch=<n>/part-*.parquet

A rejected record is filed under its event date when that can be read, otherwise under the
run's logical date: never under the producer's clock (Kafka's CreateTime may be anything).
A batch overwrites exactly its own `ingest_batch=<n>` directories, so re-executing a batch
after a crash replaces its output instead of adding to it. Before the batch is recorded, the
Parquet footers of what was written must account for every record read; otherwise
ReconciliationError names the numbers. A Kafka range may hold offsets without a record to
read (transaction markers, aborted records, compacted gaps): they are counted as `skipped`,
never as landed.
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


@dataclass(frozen=True)
class BatchCounts:
    """What a batch's write observed as its rows went by (no extra Spark job counts them)."""

    consumed: int
    quarantined: int
    accepted_with_unknown_fields: int
    accepted_dates: list[str]
    quarantined_dates: list[str]


def _observed_counts() -> list:
    """Aggregates that `DataFrame.observe` computes while the batch is written: BatchCounts' fields."""
    from pyspark.sql import functions as F

    rejected = F.col("reject_reason").isNotNull()
    return [F.count(F.lit(1)).alias("consumed"), F.count_if(rejected).alias("quarantined"),
            F.count_if(~rejected & (F.size("unknown_fields") > 0)).alias("accepted_with_unknown_fields"),
            F.collect_set(F.when(~rejected, F.col("_date").cast("string"))).alias("accepted_dates"),
            F.collect_set(F.when(rejected, F.col("_date").cast("string"))).alias("quarantined_dates")]


def _batch_folders(location: DatasetLocation, dates: list[str], batch_id: int) -> dict[str, DatasetLocation]:
    """The batch's folder in each date partition it wrote: `date=D/ingest_batch=n`."""
    return {day: location.child(f"date={day}/{BATCH_KEY}={batch_id}") for day in sorted(dates)}


def _footer_rows(folders: dict[str, DatasetLocation]) -> dict[str, int]:
    """Rows on storage per date folder, from the Parquet footers (the data is not read)."""
    import pyarrow.dataset as ds

    return {day: ds.dataset(folder.arrow_path, filesystem=folder.filesystem(), format="parquet").count_rows()
            for day, folder in folders.items()}


def publish_dead_letters(folders: dict[str, DatasetLocation], target: LandingTarget, batch_id: int) -> None:
    """Send the batch's quarantined records, read from their written files, byte for byte to
    `<topic>.dlq` with the reason in headers.

    A record too large to republish (DEAD_LETTER_MAX_BYTES) goes without key and value, with
    `loopline.quarantine.location` and `loopline.value_bytes` headers pointing to its copy.
    At least once: a re-executed batch may publish a record twice; consumers dedupe by the
    `loopline.source.*` headers (its original coordinates)."""
    import pyarrow.dataset as ds
    from confluent_kafka import KafkaException, Producer

    failures: list[str] = []

    def delivered(error, _message) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer({**target.kafka.librdkafka(), "enable.idempotence": True, "linger.ms": 20})
    columns = ["reject_reason", "raw_key", "raw_value", *LINEAGE_COLUMNS, "run_id"]
    for folder in folders.values():
        files = ds.dataset(folder.arrow_path, filesystem=folder.filesystem(), format="parquet")
        for row in files.to_table(columns=columns).to_pylist():
            key, value = row["raw_key"], row["raw_value"]
            headers = [("loopline.reason", row["reject_reason"]), ("loopline.source.topic", row["source"]),
                       ("loopline.source.partition", str(row["source_partition"])),
                       ("loopline.source.offset", str(row["source_offset"])), ("loopline.run_id", row["run_id"]),
                       ("loopline.ingest_batch", str(batch_id))]
            if len(key or b"") + len(value or b"") > DEAD_LETTER_MAX_BYTES:
                headers += [("loopline.quarantine.location", folder.spark_uri),
                            ("loopline.value_bytes", str(len(value)))]
                key = value = None
            _produce(producer, target.dead_letter_topic, key, value,
                     [(name, text.encode()) for name, text in headers], delivered)
    if producer.flush(60) or failures:
        raise KafkaException(f"dead letters of {target.pipeline}/{target.source.dataset} to "
                             f"{target.dead_letter_topic} not all delivered: {failures[:3] or 'flush timed out'}")


def _produce(producer, topic: str, key: bytes | None, value: bytes | None, headers: list, delivered) -> None:
    """Queue one record, waiting for deliveries while the producer's local queue is full."""
    while True:
        try:
            producer.produce(topic, key=key, value=value, headers=headers, on_delivery=delivered)
            producer.poll(0)
            return
        except BufferError:
            producer.poll(0.5)


def _unknown_field_counts(classified) -> dict[str, int]:
    """Accepted records per field the schema does not declare (landed without it)."""
    from pyspark.sql import functions as F

    rows = (classified.where("reject_reason IS NULL").select(F.explode("unknown_fields").alias("field"))
            .groupBy("field").count().collect())
    return {row["field"]: row["count"] for row in rows}



def _write_by_date(frame, location: DatasetLocation) -> None:
    """Overwrite exactly this batch's directory in each date partition it has rows for
    (`date=D/ingest_batch=n`), in one job: a re-executed batch replaces its own files and
    touches no other batch's."""
    (frame.write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
     .partitionBy("date", BATCH_KEY).parquet(location.spark_uri))


def _landing_rows(classified, target: LandingTarget):
    """The batch as it is kept while it lands: raw key, value and time only on rejected rows
    (bronze needs none of them), plus each row's partition date."""
    from pyspark.sql import functions as F

    rejected = F.col("reject_reason").isNotNull()
    raw = ("key", "value", "timestamp")
    return (classified.select(*[F.when(rejected, F.col(c)).alias(c) if c in raw else c for c in classified.columns])
            .withColumn("_date", _partition_date(target)))


def land(classified, batch_id: int, target: LandingTarget, expected: int, offsets: dict) -> None:
    """Write one classified batch, check in = accepted + quarantined on storage, record it.

    The batch is computed once and kept while it lands: the bronze write counts every row on
    its way (`observe`); the quarantine write, only when rows were rejected, reads the kept
    copy. The Parquet footers of the written files then account for every record, and the
    dead letters are sent from the quarantine files. `expected`: the records (or, for Kafka,
    the offsets) the source range holds."""
    from pyspark.sql import Observation

    batch = _landing_rows(classified, target).persist()
    observed = Observation()
    try:
        _write_by_date(_bronze_rows(batch.observe(observed, *_observed_counts()), batch_id), target.bronze)
        counts = BatchCounts(**observed.get)
        if counts.quarantined:
            _write_by_date(_quarantine_rows(batch, target, batch_id), target.quarantine)
        unknown_fields = _unknown_field_counts(batch) if counts.accepted_with_unknown_fields else {}
    finally:
        batch.unpersist()
    accepted_by_date = _footer_rows(_batch_folders(target.bronze, counts.accepted_dates, batch_id))
    quarantine_folders = _batch_folders(target.quarantine, counts.quarantined_dates, batch_id)
    quarantined_by_date = _footer_rows(quarantine_folders)
    accepted, quarantined = sum(accepted_by_date.values()), sum(quarantined_by_date.values())
    skipped = expected - counts.consumed
    if (counts.consumed != accepted + quarantined or quarantined != counts.quarantined or skipped < 0
            or (skipped and not target.gaps_allowed)):
        raise ReconciliationError(
            f"{target.pipeline}/{target.source.dataset} batch {batch_id} ({offsets}): the source range holds "
            f"{expected} {'offsets' if target.gaps_allowed else 'records'}, {counts.consumed} were read "
            f"({counts.quarantined} rejected), {accepted} landed in bronze + {quarantined} in quarantine. The "
            "batch is not recorded, so the next run re-executes it; if this repeats, check the source for "
            "deleted records or files."
        )
    if target.dead_letter_topic and quarantine_folders:
        publish_dead_letters(quarantine_folders, target, batch_id)
    with db.connect(target.db_url) as conn:
        db.upsert(conn, "loopline.ingest_batches", {
            "pipeline": target.pipeline, "dataset": target.source.dataset, "batch_id": batch_id,
            "run_id": target.run_id, "logical_date": target.logical_date,
            "source": target.source.topic or target.source.table or target.source.landing_prefix,
            "offsets": offsets, "consumed": counts.consumed, "accepted": accepted, "quarantined": quarantined,
            "skipped": skipped,
            "accepted_by_date": accepted_by_date, "quarantined_by_date": quarantined_by_date,
            "unknown_fields": unknown_fields,
        }, key=["pipeline", "dataset", "batch_id"])
