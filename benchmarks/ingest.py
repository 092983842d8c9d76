"""Ingest benchmark: Loopline's Kafka → lake ingest against Kafka's own consumer perf tool.

For each size, in one run: a fresh 2-partition topic gets N card-payment events of about
300 bytes of JSON (written by Spark); Kafka's `ConsumerPerformance` tool (what
kafka-consumer-perf-test.sh runs) drains it and reports messages/s; then Loopline's ingest
(`loopline.ingest.streaming.ingest_source`: streaming availableNow, parse, bronze + quarantine
Parquet, read-back reconciliation, PostgreSQL records) drains the same topic, timed from the
call to its return on the already running Spark Connect server, after one unmeasured
20k-row warm-up (the server is long-lived; its first query pays for JIT compilation and
Python worker start). ratio = Loopline / baseline.

Between the two, a Spark floor drains the same topic: a bare availableNow query copying the
raw records to Parquet (no parsing, checks, reconciliation or records). spark_floor_ratio is
the best ratio any Spark Structured Streaming ingest could reach on this machine.

    make bench                                   # sizes 100k and 1M
    LOOPLINE_BENCH_SIZES=100000,1000000,10000000 make bench

Writes benchmarks/results/ingest.json (headline: the 1M point) and prints a table.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import yaml

from bench_common import report, scratch_pipelines
from loopline.core.kafka_auth import KafkaLogin
from loopline.core.spark import tools_dir
from loopline.ops.bootstrap import ensure_topics, remove_pipeline_data

TARGET_RATIO = 0.5
HEADLINE_ROWS = 1_000_000
WARM_UP_ROWS = 20_000
DAY = date(2026, 1, 15)


def sizes() -> list[int]:
    return [int(n) for n in os.environ.get("LOOPLINE_BENCH_SIZES", "100000,1000000").split(",")]


def produce_events(spark, kafka: KafkaLogin, topic: str, rows: int, customers: int = 4000) -> float:
    """Write `rows` JSON events of `customers` customers with Spark; return their mean size in bytes."""
    from pyspark.sql import functions as F

    def pick(options: list[str], salt: int):
        index = (F.abs(F.hash(F.col("id"), F.lit(salt))) % len(options) + 1).cast("int")
        return F.element_at(F.array(*[F.lit(o) for o in options]), index)

    events = spark.range(rows).select(
        F.concat(F.lit("tx-bench-"), F.lpad(F.col("id").cast("string"), 9, "0")).alias("transaction_id"),
        F.concat(F.lit("c"), F.lpad((F.col("id") % customers).cast("string"), 7, "0")).alias("customer_id"),
        F.date_format(F.timestamp_seconds(F.lit(int(time.mktime(DAY.timetuple()))) + F.col("id") % 86400),
                      "yyyy-MM-dd'T'HH:mm:ssXXX").alias("event_time"),
        F.round(F.rand(7) * 300 + 1, 2).alias("amount"),
        pick(["grocery", "restaurants", "fuel", "fashion", "travel", "electronics", "gaming", "digital_goods"], 1)
        .alias("merchant_category"),
        pick(["DE", "FR", "NL", "ES", "IT", "GB", "US", "BR", "NG"], 2).alias("country"),
        pick(["pos", "ecom", "mobile_app"], 3).alias("channel"),
        (F.rand(8) < 0.07).alias("is_new_device"),
        (F.col("id") % 40).cast("int").alias("customer_tx_count_30d"),
        F.round(F.rand(9) * 80 + 5, 2).alias("customer_avg_amount_30d"),
        F.lit(1).alias("schema_version"),
    )
    records = events.select(F.col("transaction_id").alias("key"), F.to_json(F.struct("*")).alias("value"))
    records.write.format("kafka").options(**kafka.spark()).option("topic", topic).save()
    return records.select(F.avg(F.length("value"))).first()[0]


def kafka_consumer_perf(kafka: KafkaLogin, topic: str, rows: int) -> float:
    """Messages/s as reported by Kafka's ConsumerPerformance tool (its nMsg.sec column)."""
    classpath = tools_dir() / "classpath" / "kafka.cp"
    with tempfile.NamedTemporaryFile("w", suffix=".properties") as login:  # 0600: it holds the password
        login.write("".join(f"{k.removeprefix('kafka.')}={v}\n" for k, v in kafka.spark().items()))
        login.flush()
        done = subprocess.run(
            ["java", "-Xmx512m", "-cp", classpath.read_text().strip(), "org.apache.kafka.tools.ConsumerPerformance",
             "--bootstrap-server", kafka.bootstrap, "--topic", topic, "--messages", str(rows),
             "--group", f"bench-{uuid.uuid4().hex[:8]}", "--timeout", "30000", "--command-config", login.name],
            capture_output=True, text=True, timeout=1800, check=True)
    header, values = [line for line in done.stdout.splitlines() if "," in line][-2:]
    stats = dict(zip([h.strip() for h in header.split(",")], [v.strip() for v in values.split(",")]))
    consumed = int(stats["data.consumed.in.nMsg"])
    if consumed != rows:
        raise RuntimeError(f"ConsumerPerformance read {consumed} of {rows} messages: {done.stdout[-500:]}")
    return float(stats["nMsg.sec"])


def spark_raw_copy(spark, kafka: KafkaLogin, topic: str, rows: int) -> float:
    """Seconds for the least a Spark Structured Streaming ingest can do: drain the topic with
    availableNow into Parquet as raw records (key, value, coordinates), with a checkpoint but
    no parsing, checks, reconciliation or records. Loopline's ingest cannot beat it."""
    with tempfile.TemporaryDirectory(prefix="loopline-bench-raw-") as target:
        started = time.perf_counter()
        query = (spark.readStream.format("kafka").options(**kafka.spark())
                 .option("subscribe", topic).option("startingOffsets", "earliest").load()
                 .select("key", "value", "topic", "partition", "offset")
                 .writeStream.format("parquet").option("path", f"file://{target}/raw")
                 .option("checkpointLocation", f"file://{target}/checkpoint").trigger(availableNow=True).start())
        query.awaitTermination()
        seconds = time.perf_counter() - started
        copied = spark.read.parquet(f"file://{target}/raw").count()
    if copied != rows:
        raise RuntimeError(f"the raw Spark copy wrote {copied} of {rows} records")
    return seconds


def bench_one(rows: int, pipelines_dir: Path) -> dict:
    from loopline.core.pipeline import Pipeline
    from loopline.core.spec import derived_spec, load_spec
    from loopline.ingest.streaming import ingest_source

    name = f"bench_{uuid.uuid4().hex[:8]}"
    spec = derived_spec("card_fraud", name, {"ingest": {"max_records_per_batch": 1_000_000}})
    (pipelines_dir / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    p = Pipeline.load(name)
    ensure_topics(p.settings, [p.spec])
    try:
        spark, admin = p.spark(), p.settings.kafka("admin")  # the baselines may read anything
        events = p.spec.entity_source
        payload = produce_events(spark, admin, events.topic, rows)
        baseline = kafka_consumer_perf(admin, events.topic, rows)
        floor = rows / spark_raw_copy(spark, admin, events.topic, rows)
        started = time.perf_counter()
        run = ingest_source(spark, p, events, "bench", DAY)
        seconds = time.perf_counter() - started
        if run.consumed != rows or run.accepted != rows:
            raise RuntimeError(f"Loopline ingested {run.consumed} ({run.accepted} accepted) of {rows} records")
        loopline = rows / seconds
        return {"rows": rows, "payload_bytes_avg": round(payload, 1), "batches": run.batches,
                "loopline_s": round(seconds, 2), "loopline_rows_per_s": round(loopline),
                "baseline_rows_per_s": round(baseline), "ratio": round(loopline / baseline, 3),
                "spark_floor_rows_per_s": round(floor), "spark_floor_ratio": round(floor / baseline, 3)}
    finally:
        remove_pipeline_data(p.settings, load_spec(name))


def main() -> int:
    with scratch_pipelines() as directory:
        bench_one(WARM_UP_ROWS, directory)  # JIT and Python workers of the long-lived server, not measured
        points = [bench_one(rows, directory) for rows in sizes()]
    headline = next((pt for pt in points if pt["rows"] == HEADLINE_ROWS), points[-1])
    result = {**headline, "target": TARGET_RATIO, "meets_target": headline["ratio"] >= TARGET_RATIO,
              "baseline": "kafka ConsumerPerformance nMsg.sec (Kafka 4.1.1), same topic, same run",
              "spark_floor": "Spark Structured Streaming availableNow copying the raw records to Parquet "
                             "(no parsing, checks or records), same topic, same run",
              "cores": os.cpu_count(), "points": points}
    report("ingest", result, [{
        "rows": pt["rows"], "bytes/rec": pt["payload_bytes_avg"], "batches": pt["batches"],
        "loopline s": pt["loopline_s"], "loopline rows/s": pt["loopline_rows_per_s"],
        "kafka perf rows/s": pt["baseline_rows_per_s"], "ratio": pt["ratio"],
        "spark floor rows/s": pt["spark_floor_rows_per_s"], "floor ratio": pt["spark_floor_ratio"]} for pt in points])
    print(f"target ratio >= {TARGET_RATIO} at {headline['rows']} rows: "
          f"{'met' if result['meets_target'] else 'NOT met'} ({headline['ratio']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
