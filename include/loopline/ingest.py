"""Ingest: one logical date's Kafka offset range → bronze Parquet partition + quarantine.

Each logical date owns a fixed offset range per partition, recorded in PostgreSQL the first
time the date runs: it starts where the previous date ended and stops at the latest offset
seen then. A rerun reads exactly the same range and overwrites the same partitions, so it
gives the same result. Every consumed record lands in bronze or in quarantine (with the
reason), and the counts are checked: consumed = accepted + quarantined.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from loopline import db
from loopline.config import Settings
from loopline.spec import PipelineSpec, Schema
from loopline.storage import Lake

OffsetRange = dict[int, tuple[int, int]]  # partition -> [start, end)

SPARK_TYPES = {"string": "string", "timestamp": "timestamp", "double": "double", "int": "int", "boolean": "boolean"}
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


def plan_offsets(recorded: dict[date, OffsetRange], logical_date: date,
                 earliest: dict[int, int], latest: dict[int, int]) -> OffsetRange:
    """The offset range a logical date owns.

    A date already recorded keeps its range (idempotent rerun). A new date starts where the
    closest earlier date ended (or at the earliest retained offset) and ends where the
    closest later date started (or at the latest offset), so ranges never overlap.
    """
    if logical_date in recorded:
        return recorded[logical_date]
    plan: OffsetRange = {}
    for partition in sorted(latest):
        start = max((r[partition][1] for d, r in recorded.items() if d < logical_date and partition in r),
                    default=earliest.get(partition, 0))
        end = min((r[partition][0] for d, r in recorded.items() if d > logical_date and partition in r),
                  default=latest[partition])
        plan[partition] = (max(start, earliest.get(partition, 0)), max(end, start))
    return plan


def kafka_watermarks(bootstrap: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """Earliest and latest offsets of every partition of `topic`."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RuntimeError(f"Kafka topic {topic!r} does not exist on {bootstrap}; run `loopline bootstrap`")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        earliest = {tp.partition: o for tp, o in consumer.beginning_offsets(tps).items()}
        latest = {tp.partition: o for tp, o in consumer.end_offsets(tps).items()}
        return earliest, latest
    finally:
        consumer.close()


def recorded_offsets(conn, pipeline: str, dataset: str) -> dict[date, OffsetRange]:
    rows = db.fetch_all(conn, "SELECT logical_date, offsets FROM loopline.ingest_runs WHERE pipeline=%s AND dataset=%s",
                        (pipeline, dataset))
    return {r["logical_date"]: {int(p): (s, e) for p, (s, e) in r["offsets"].items()} for r in rows}


def classify(raw, schema: Schema):
    """Parse Kafka records with the declared schema; add `reject_reason` (null = accepted)."""
    from pyspark.sql import functions as F

    ddl = ", ".join(f"`{name}` {SPARK_TYPES[kind]}" for name, kind in schema.fields.items())
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
        earliest, latest = kafka_watermarks(settings.kafka_bootstrap, source.topic)
        offsets = plan_offsets(recorded_offsets(conn, spec.name, source.dataset), logical_date, earliest, latest)
        raw = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
            .option("assign", json.dumps({source.topic: sorted(offsets)}))
            .option("startingOffsets", json.dumps({source.topic: {str(p): s for p, (s, _) in offsets.items()}}))
            .option("endingOffsets", json.dumps({source.topic: {str(p): e for p, (_, e) in offsets.items()}}))
            .option("failOnDataLoss", "true")
            .load()
        )
        classified = classify(raw, source.schema).persist()
        try:
            counts = {row["accepted"]: row["count"] for row in
                      classified.groupBy(F.col("reject_reason").isNull().alias("accepted")).count().collect()}
            consumed, accepted, quarantined = sum(counts.values()), counts.get(True, 0), counts.get(False, 0)
            bronze = lake.location(source.dataset, logical_date)
            quarantine = lake.location("quarantine", logical_date, subdir=source.dataset)
            (classified.where("reject_reason IS NULL")
             .select("record.*", F.col("partition").alias("kafka_partition"), F.col("offset").alias("kafka_offset"))
             .write.mode("overwrite").parquet(bronze.spark_uri))
            (classified.where("reject_reason IS NOT NULL")
             .select("reject_reason", "raw_key", "raw_value", "topic", "partition", "offset",
                     F.lit(run_id).alias("run_id"))
             .write.mode("overwrite").parquet(quarantine.spark_uri))
        finally:
            classified.unpersist()
        expected = sum(end - start for start, end in offsets.values())
        if consumed != accepted + quarantined or consumed != expected:
            raise ReconciliationError(
                f"{spec.name}/{source.dataset} {logical_date}: offsets cover {expected} records, read {consumed}, "
                f"accepted {accepted} + quarantined {quarantined}. Nothing was recorded; rerun the task, and if it "
                f"persists check the topic for transactions/compaction."
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
