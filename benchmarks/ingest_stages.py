"""Where an ingest batch spends its time: each step timed on its own, 1M events by default.

Not part of `make bench` (which times the whole ingest against its floors); this explains
the figure. Each step reads the same topic (the benchmark's events: three dates, 2% bad
records) and writes nothing (Spark's `noop` sink), twice; the first pass warms up. On the
running stack (`make up`, `source .loopline/env`):

    .venv/bin/python benchmarks/ingest_stages.py [ROWS]
"""
from __future__ import annotations

import sys
import time
import uuid

from ingest import produce_events
from loopline.core.pipeline import Pipeline
from loopline.ingest.parsing import classify
from loopline.ingest.streaming import KAFKA_READ_OPTIONS, kafka_records
from loopline.ops.bootstrap import TOPIC_PARTITIONS


def timed(label: str, action) -> None:
    started = time.perf_counter()
    action()
    print(f"{label:<45} {time.perf_counter() - started:6.2f} s")


def main(rows: int) -> int:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from pyspark.sql import functions as F

    p = Pipeline.load("card_fraud")
    spark, source = p.spark(), p.spec.entity_source
    ddl = ", ".join(f"`{name}` {kind}" for name, kind in source.versions[0].fields.items())
    topic = f"bench_stages_{uuid.uuid4().hex[:8]}"
    kafka = p.settings.kafka("admin")  # a scratch topic of its own: the admin principal reads and writes it
    admin = KafkaAdminClient(**kafka.python())
    admin.create_topics([NewTopic(topic, num_partitions=TOPIC_PARTITIONS, replication_factor=1)])
    try:
        produce_events(spark, kafka, topic, rows)

        def raw():
            return kafka_records(spark.read.format("kafka").options(**kafka.spark(), **KAFKA_READ_OPTIONS)
                                 .option("subscribe", topic).option("startingOffsets", "earliest").load())

        def text():
            return raw().withColumn("_text", F.col("value").cast("string"))

        steps = {
            "read from Kafka": raw,
            "+ parse with the schema (from_json)": lambda: text().withColumn("record", F.from_json("_text", ddl)),
            "+ list the top-level keys (json_object_keys)": lambda: text().withColumns(
                {"record": F.from_json("_text", ddl), "keys": F.json_object_keys("_text")}),
            "every check (loopline.ingest.parsing.classify)": lambda: classify(raw(), source.versions,
                                                                              p.spec.ingest.max_record_bytes),
        }
        print(f"{rows} events, Spark Connect server {p.settings.spark_remote or '(local session)'}")
        for attempt in ("warm-up, not a result", "measured"):
            print(f"-- {attempt}")
            for label, frame in steps.items():
                timed(label, lambda: frame().write.format("noop").mode("overwrite").save())
    finally:
        admin.delete_topics([topic])
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
