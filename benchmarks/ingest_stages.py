"""Where an ingest batch spends its time: each stage timed on its own, 1M events by default.

Not part of `make bench` (which times the whole ingest against a baseline); this explains
the figure. On the running stack (`make up`, `source .loopline/env`):

    .venv/bin/python benchmarks/ingest_stages.py [ROWS]
"""
from __future__ import annotations

import sys
import tempfile
import time
import uuid

from ingest import produce_events
from loopline.core.pipeline import Pipeline
from loopline.ingest.parsing import classify
from loopline.ops.bootstrap import TOPIC_PARTITIONS


def timed(label: str, action) -> None:
    started = time.perf_counter()
    action()
    print(f"{label:<40} {time.perf_counter() - started:6.2f} s")


def main(rows: int) -> int:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from pyspark.sql import functions as F

    p = Pipeline.load("card_fraud")
    spark, versions = p.spark(), p.spec.entity_source.versions
    topic = f"bench_stages_{uuid.uuid4().hex[:8]}"
    kafka = p.settings.kafka("admin")  # a scratch topic of its own: the admin principal reads and writes it
    admin = KafkaAdminClient(**kafka.python())
    admin.create_topics([NewTopic(topic, num_partitions=TOPIC_PARTITIONS, replication_factor=1)])
    try:
        produce_events(spark, kafka, topic, rows)

        def raw():
            return (spark.read.format("kafka").options(**kafka.spark())
                    .option("subscribe", topic).option("startingOffsets", "earliest").load()
                    .select("key", "value", "timestamp", F.col("topic").alias("source"),
                            F.col("partition").alias("source_partition"), F.col("offset").alias("source_offset")))

        def noop(frame):
            return lambda: frame.write.format("noop").mode("overwrite").save()

        print(f"{rows} events, Spark Connect server {p.settings.spark_remote or '(local session)'}")
        timed("warm-up read (not a result)", noop(raw()))
        timed("read from Kafka", noop(raw()))
        timed("read + parse + checks", noop(classify(raw(), versions, p.spec.ingest.max_record_bytes)))
        batch = classify(raw(), versions, p.spec.ingest.max_record_bytes).persist()
        timed("read + parse + checks + cache", batch.count)
        with tempfile.TemporaryDirectory() as target:
            timed("bronze Parquet write from the cache", lambda: batch.where("reject_reason IS NULL")
                  .select("record.*").write.mode("overwrite").parquet(f"file://{target}/bronze"))
        batch.unpersist()
    finally:
        admin.delete_topics([topic])
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
