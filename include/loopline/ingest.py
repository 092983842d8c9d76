"""Ingest: one logical date's Kafka offset range → bronze Parquet partition + quarantine.

Each logical date owns the records whose Kafka timestamp falls within that UTC day (the
producers' event or arrival time). The offset range is looked up with the broker's time
index the first time the date runs and recorded in PostgreSQL; a rerun reads exactly the
same range and overwrites the same partitions, so it gives the same result, and dates can
run in any order. Every consumed record lands in bronze or in quarantine (with the
reason), and the counts are checked: consumed = accepted + quarantined.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from loopline import db
from loopline.config import Settings
from loopline.spec import PipelineSpec, Schema
from loopline.storage import Lake

OffsetRange = dict[int, tuple[int, int]]  # partition -> [start, end)

SUPPORTED_SCHEMA_VERSION = 1


class ReconciliationError(RuntimeError):
    """Records were consumed but did not all land in bronze or quarantine."""


@dataclass(frozen=True)
class IngestResult:
    dataset: str
    logical_date: str
    consumed: int
    accepted: int
    quarantined: int
    offsets: dict[str, list[int]]
    bronze_uri: str
    quarantine_uri: str


def day_window(first_at_or_after: dict[date, dict[int, int | None]], logical_date: date,
               latest: dict[int, int]) -> OffsetRange:
    """The offsets of records timestamped within `logical_date` (UTC), per partition.

    `first_at_or_after[d][p]` is the first offset of partition p whose timestamp is at or
    after midnight of day d (None when there is none yet, i.e. up to the latest offset).
    """
    day_after = logical_date + timedelta(days=1)
    window: OffsetRange = {}
    for partition, end_of_log in sorted(latest.items()):
        start = first_at_or_after[logical_date].get(partition)
        end = first_at_or_after[day_after].get(partition)
        start = end_of_log if start is None else start
        end = end_of_log if end is None else end
        window[partition] = (start, max(start, end))
    return window


def kafka_day_window(bootstrap: str, topic: str, logical_date: date) -> OffsetRange:
    """Ask the broker which offsets hold the records timestamped within `logical_date`."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RuntimeError(f"Kafka topic {topic!r} does not exist on {bootstrap}; run `loopline bootstrap`")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        latest = {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
        lookups = {}
        for day in (logical_date, logical_date + timedelta(days=1)):
            millis = int(datetime.combine(day, time(0), tzinfo=timezone.utc).timestamp() * 1000)
            found = consumer.offsets_for_times({tp: millis for tp in tps})
            lookups[day] = {tp.partition: (hit.offset if hit else None) for tp, hit in found.items()}
        return day_window(lookups, logical_date, latest)
    finally:
        consumer.close()


def recorded_offsets(conn, pipeline: str, dataset: str, logical_date: date) -> OffsetRange | None:
    rows = db.fetch_all(conn, "SELECT offsets FROM loopline.ingest_runs "
                              "WHERE pipeline=%s AND dataset=%s AND logical_date=%s", (pipeline, dataset, logical_date))
    return {int(p): (s, e) for p, (s, e) in rows[0]["offsets"].items()} if rows else None


def classify(raw, schema: Schema):
    """Parse Kafka records with the declared schema; add `reject_reason` (null = accepted)."""
    from pyspark.sql import functions as F

    ddl = ", ".join(f"`{name}` {kind}" for name, kind in schema.fields.items())  # spec types are Spark SQL types
    text = F.col("value").cast("string")
    parsed = F.from_json(text, ddl, {"mode": "PERMISSIVE"})
    checks = [
        (F.col("value").isNull(), F.lit("null_value")),
        (F.col("key").isNull(), F.lit("null_key")),
        (F.try_parse_json(text).isNull(), F.lit("not_json")),
    ]
    for name in schema.fields:
        present = F.get_json_object(text, f"$.{name}").isNotNull()
        checks.append((~present, F.lit(f"missing_field:{name}")))
        checks.append((parsed[name].isNull(), F.lit(f"wrong_type:{name}")))
    if "schema_version" in schema.fields:
        checks.append((parsed["schema_version"] != SUPPORTED_SCHEMA_VERSION, F.lit("unknown_schema_version")))
    reason = F.lit(None).cast("string")
    for condition, label in reversed(checks):  # the first failing check wins
        reason = F.when(condition, label).otherwise(reason)
    return raw.select(
        parsed.alias("record"), text.alias("raw_value"), F.col("key").cast("string").alias("raw_key"),
        "topic", "partition", "offset", reason.alias("reject_reason"),
    )


def ingest(spark, settings: Settings, spec: PipelineSpec, lake: Lake, source_kind: str,
           logical_date: date, run_id: str) -> IngestResult:
    """Ingest the logical date's offset range of one source into bronze and quarantine."""
    from pyspark.sql import functions as F

    source = spec.sources[source_kind]
    with db.connect(settings.db_url) as conn:
        with conn.cursor() as cur:  # one ingest per dataset at a time: offset ranges must not race
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ingest:{spec.name}:{source.dataset}",))
        # A date's range is fixed the first time it runs, so a rerun reads exactly the same records.
        offsets = recorded_offsets(conn, spec.name, source.dataset, logical_date) or kafka_day_window(
            settings.kafka_bootstrap, source.topic, logical_date)
        raw = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
            .option("assign", json.dumps({source.topic: sorted(offsets)}))
            .option("startingOffsets", json.dumps({source.topic: {str(p): s for p, (s, _) in offsets.items()}}))
            .option("endingOffsets", json.dumps({source.topic: {str(p): e for p, (_, e) in offsets.items()}}))
            .option("failOnDataLoss", "true")
            .load()
        )
        bronze = lake.location(source.dataset, logical_date)
        quarantine = lake.location("quarantine", logical_date, subdir=source.dataset)
        classified = classify(raw, source.schema).persist()
        try:
            (classified.where("reject_reason IS NULL")
             .select("record.*", F.col("partition").alias("kafka_partition"), F.col("offset").alias("kafka_offset"))
             .write.mode("overwrite").parquet(bronze.spark_uri))
            (classified.where("reject_reason IS NOT NULL")
             .select("reject_reason", "raw_key", "raw_value", "topic", "partition", "offset",
                     F.lit(run_id).alias("run_id"))
             .write.mode("overwrite").parquet(quarantine.spark_uri))
            consumed = classified.count()
        finally:
            classified.unpersist()
        # Reconcile the offset range against what actually landed (row counts from Parquet footers).
        accepted = spark.read.parquet(bronze.spark_uri).count()
        quarantined = spark.read.parquet(quarantine.spark_uri).count()
        expected = sum(end - start for start, end in offsets.values())
        if not expected == consumed == accepted + quarantined:
            raise ReconciliationError(
                f"{spec.name}/{source.dataset} {logical_date}: offsets cover {expected} records, read {consumed}, "
                f"written accepted {accepted} + quarantined {quarantined}. Nothing was recorded; rerun the task, "
                f"and if it persists check the topic for transactions/compaction."
            )
        result = IngestResult(
            dataset=source.dataset, logical_date=logical_date.isoformat(), consumed=consumed, accepted=accepted,
            quarantined=quarantined, offsets={str(p): [s, e] for p, (s, e) in offsets.items()},
            bronze_uri=bronze.spark_uri, quarantine_uri=quarantine.spark_uri,
        )
        db.upsert(conn, "loopline.ingest_runs", {
            "pipeline": spec.name, "dataset": source.dataset, "logical_date": logical_date, "run_id": run_id,
            "topic": source.topic, "offsets": result.offsets, "consumed": consumed, "accepted": accepted,
            "quarantined": quarantined,
        }, key=["pipeline", "dataset", "logical_date"])
    return result
