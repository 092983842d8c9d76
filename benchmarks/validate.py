"""Contract benchmark: Loopline's whole validate task against the same work by hand on Spark.

For each size (1M and 10M events by default), a throw-away pipeline derived from card_fraud
gets one day of the ingest benchmark's events (about 2% bad records of several kinds, three
event dates) through the real ingest (not timed). Then, each timed from call to return, on
the same bronze rows:

  loopline  loopline.contracts.validate.validate_dataset, as the validate task calls it: read
            the day's bronze of recorded batches, split exact duplicates, run the reviewed
            card_payments_bronze suite (17 rules) through GX on the Spark Connect server, write
            the quarantine and the valid rows, check them against GX, store every rule's
            result and the Data Docs. At these sizes it runs on Spark (the in-process engine is
            for batches below the spec's engine.in_process_below_rows, 100,000 by default).
  floor     the same work by hand on the same Spark server, without GX, in one pass: the
            exact-duplicate and uniqueness windows, the row rules as columns, every figure the
            suite's batch rules need gathered with observe() while one partitioned write puts
            each row in the valid or the rejected folder. What any contract with routing
            costs here at least (distinct customers by approx_count_distinct: observe() takes
            no exact distinct count).

Each gets one unmeasured warm-up and is then run REPEATS times; the median is kept. The two
must agree on every rule's verdict, every row rule's unexpected count, and the valid and
quarantined row counts, or the benchmark fails. ratio = loopline_s / floor_s; target <= 1.25.

A second figure shows what GX itself costs, since the issue keeps GX as the engine that
computes the suite's metrics:

  gx        GX evaluating the suite (validate_frame, no Data Docs) on the batch's rows already
            read, split and cached by Loopline's own Spark batch: GX's metric queries and
            nothing else. gx_share_of_floor = gx_s / floor_s; when it is above
            TARGET_RATIO - 1, no contract that keeps GX can meet the target, however little
            the rest costs.

    make bench                                                  # 1M and 10M events
    LOOPLINE_BENCH_VALIDATE_SIZES=1000000 .venv/bin/python benchmarks/validate.py

Writes benchmarks/results/validate.json and prints a table.
"""
from __future__ import annotations

import calendar
import os
import sys
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from bench_common import median_after_warm_up, report, scratch_pipelines, throwaway_pipeline

TARGET_RATIO = 1.25
REPEATS = 3
DAY = date(2026, 1, 15)
UNIQUE_RULE = "transaction_id:values_to_be_unique"
EXPECTED_COLUMNS = {"transaction_id", "customer_id", "event_time", "amount", "merchant_category", "country",
                    "channel", "is_new_device", "customer_tx_count_30d", "customer_avg_amount_30d",
                    "schema_version", "source", "source_partition", "source_offset", "ingest_batch"}
# the reviewed suite's bounds and value sets, as the hand-written checks use them
CATEGORIES = ["grocery", "restaurants", "fuel", "fashion", "travel", "electronics", "gaming", "digital_goods"]
CHANNELS = ["pos", "ecom", "mobile_app"]
COUNTRY_PATTERN = "^[A-Z]{2}$"
BOUNDS = {"amount": (0.01, 50000), "customer_tx_count_30d": (0, 10000), "customer_avg_amount_30d": (0, 50000)}


def write_partition(spark, path: str, rows: int, repeated_ids: bool = True) -> None:
    """N card payments of DAY at `path`; with `repeated_ids`, one transaction id in 2,000 twice."""
    from pyspark.sql import functions as F

    def pick(options: list[str], salt: int):
        index = (F.abs(F.hash(F.col("id"), F.lit(salt))) % len(options) + 1).cast("int")
        return F.element_at(F.array(*[F.lit(o) for o in options]), index)

    midnight = calendar.timegm(DAY.timetuple())
    (spark.range(rows).select(
        F.concat(F.lit("tx-"), F.lpad(F.when(F.col("id") % 2000 == 1 if repeated_ids else F.lit(False), F.col("id") - 1)
                                      .otherwise(F.col("id")).cast("string"), 9, "0")).alias("transaction_id"),
        F.concat(F.lit("c"), F.lpad((F.col("id") % 40000).cast("string"), 5, "0")).alias("customer_id"),
        F.timestamp_seconds(F.lit(midnight) + F.floor(F.col("id") * 86399 / rows)).alias("event_time"),
        F.when(F.col("id") % 1000 == 0, F.lit(-1.0)).otherwise(F.round(F.rand(7) * 300 + 1, 2)).alias("amount"),
        pick(CATEGORIES, 1).alias("merchant_category"),
        pick(["DE", "FR", "NL", "ES", "IT", "GB", "US", "BR", "NG"], 2).alias("country"),
        F.when(F.col("id") % 1500 == 0, F.lit("fax")).otherwise(pick(CHANNELS, 3)).alias("channel"),
        (F.rand(3) < 0.07).alias("is_new_device"),
        (F.col("id") % 50).cast("int").alias("customer_tx_count_30d"),
        F.round(F.rand(5) * 200 + 5, 2).alias("customer_avg_amount_30d"),
        F.lit(1).alias("schema_version"), F.lit("card_payments").alias("source"),
        (F.col("id") % 2).cast("int").alias("source_partition"), F.col("id").alias("source_offset"),
    ).write.mode("overwrite").parquet(f"{path}/ingest_batch=0"))


@dataclass(frozen=True)
class Measured:
    """What a hand-written pass measures; `verdicts` turns it into the suite's rule results."""
    rows: int
    unexpected: dict[str, int]  # row rule -> rows that break it
    columns: set[str]
    amount_is_double: bool
    event_time_is_timestamp: bool
    latest_event: datetime
    null_customers: int
    amount_mean: float
    amount_stdev: float
    distinct_customers: int


def verdicts(m: Measured, freshness_cutoff: str, max_rows: int) -> dict[str, tuple[bool, float]]:
    """rule -> (passed, unexpected count or observed value), as the suite judges it."""
    unique_share = m.distinct_customers / (m.rows - m.null_customers)
    return {**{name: (count == 0, count) for name, count in m.unexpected.items()},
            "volume": (500 <= m.rows <= max_rows, m.rows),
            "schema": (m.columns == EXPECTED_COLUMNS, len(m.columns)),
            "amount:values_to_be_of_type": (m.amount_is_double, 0),
            "event_time:values_to_be_of_type": (m.event_time_is_timestamp, 0),
            "freshness": (m.latest_event.isoformat() >= freshness_cutoff, 0),
            "customer_id:null_rate": (1 - m.null_customers / m.rows >= 0.999, m.null_customers),
            "amount:mean_to_be_between": (20 <= m.amount_mean <= 400, m.amount_mean),
            "amount:stdev_to_be_between": (5 <= m.amount_stdev <= 2000, m.amount_stdev),
            "customer_id:proportion_of_unique_values_to_be_between": (0.05 <= unique_share <= 1.0, unique_share)}


def spark_floor(spark, bronze_root: str, bronze_day: str, output: str, fields: list[str],
                freshness_cutoff: str, max_rows: int) -> tuple[dict[str, tuple[bool, float]], dict[str, int]]:
    """The contract's work by hand in one Spark pass: (rule -> (passed, unexpected or observed),
    rows per outcome). Later exact copies are rejected; the suite's rules judge the first copies."""
    from pyspark.sql import Observation, Window
    from pyspark.sql import functions as F

    frame = spark.read.option("basePath", bronze_root).parquet(bronze_day).drop("date")
    copies = Window.partitionBy(*[F.col(f"`{name}`") for name in fields]).orderBy(
        "ingest_batch", "source_partition", "source_offset")
    numbered = frame.withColumn("_first", F.row_number().over(copies) == 1)
    first = F.col("_first")
    same_id = F.sum(F.when(first, 1).otherwise(0)).over(Window.partitionBy("transaction_id"))

    def outside(column: str, allowed: list[str]):
        return F.col(column).isNotNull() & ~F.col(column).isin(*allowed)

    broken = {
        "transaction_id:values_to_not_be_null": F.col("transaction_id").isNull(),
        UNIQUE_RULE: F.col("transaction_id").isNotNull() & (same_id > 1),
        "merchant_category:values_to_be_in_set": outside("merchant_category", CATEGORIES),
        "channel:values_to_be_in_set": outside("channel", CHANNELS),
        "country:values_to_match_regex": F.col("country").isNotNull() & ~F.col("country").rlike(COUNTRY_PATTERN),
        **{f"{column}:values_to_be_between": F.col(column).isNotNull() & ~F.col(column).between(low, high)
           for column, (low, high) in BOUNDS.items()}}
    flagged = numbered.select("*", *[(first & rule).alias(f"_broken{i}") for i, rule in enumerate(broken.values())])
    rejected = ~first | F.greatest(*[F.col(f"_broken{i}") for i in range(len(broken))])

    def count_where(condition):
        return F.sum(F.when(condition, 1).otherwise(0))

    def of_first(column: str):
        return F.when(first, F.col(column))

    observed = Observation("floor")
    (flagged.observe(observed, F.count(F.lit(1)).alias("rows_in"), count_where(rejected).alias("rejected"),
                     count_where(~first).alias("repeats"), count_where(first).alias("rows"),
                     *[count_where(F.col(f"_broken{i}")).alias(f"broken{i}") for i in range(len(broken))],
                     count_where(first & F.col("customer_id").isNull()).alias("null_customers"),
                     F.max(of_first("event_time")).alias("latest"), F.avg(of_first("amount")).alias("mean"),
                     F.stddev_samp(of_first("amount")).alias("stdev"),
                     F.approx_count_distinct(of_first("customer_id")).alias("customers"))
     .select(*frame.columns, F.when(rejected, "rejected").otherwise("valid").alias("outcome"))
     .write.mode("overwrite").partitionBy("outcome").parquet(output))
    stats = observed.get
    types = {field.name: field.dataType.typeName() for field in frame.schema.fields}
    rules = verdicts(Measured(
        rows=stats["rows"], unexpected={name: stats[f"broken{i}"] for i, name in enumerate(broken)},
        columns=set(types), amount_is_double=types["amount"] == "double",
        event_time_is_timestamp=types["event_time"] == "timestamp", latest_event=stats["latest"],
        null_customers=stats["null_customers"], amount_mean=stats["mean"], amount_stdev=stats["stdev"],
        distinct_customers=stats["customers"]), freshness_cutoff, max_rows)
    return rules, {"rows_in": stats["rows_in"], "quarantined": stats["rejected"], "repeats": stats["repeats"]}


def disagreements(outcome, floor: dict[str, tuple[bool, float]], counts: dict[str, int]) -> list[str]:
    """Where Loopline's outcome and the floor's figures differ (verdicts, row counts)."""
    from loopline.contracts.validate import DUPLICATE_RULE

    results = {r.name: r for r in outcome.results}
    problems = [f"{name}: passed={results[name].success if name in results else None} vs floor {passed}"
                for name, (passed, _) in floor.items() if name not in results or results[name].success != passed]
    problems += [f"{name}: {results[name].unexpected_count} unexpected vs floor {value}" for name, (_, value)
                 in floor.items() if results.get(name) and results[name].severity == "row"
                 and results[name].unexpected_count != value]
    repeats = results[DUPLICATE_RULE].unexpected_count if DUPLICATE_RULE in results else 0
    ours = {"rows_in": outcome.rows_in, "quarantined": outcome.rows_quarantined, "repeats": repeats}
    return problems + [f"{key}: {ours[key]} vs floor {counts[key]}" for key in counts if ours[key] != counts[key]]


def measure(rows: int, pipelines: Path) -> dict:
    """One day of `rows` events ingested into a throw-away pipeline, then Loopline's contract
    and the floor on it, each the median of REPEATS after a warm-up."""
    from ingest import produce_events
    from loopline.contracts.gx_validation import suite_parameters, validate_frame
    from loopline.contracts.rules import load_suite
    from loopline.contracts.validate import ContractViolation, open_batch, validate_dataset
    from loopline.core.interval import Interval
    from loopline.ingest.streaming import ingest_source

    with throwaway_pipeline(pipelines) as p:
        events, interval = p.spec.entity_source, Interval.of_day(DAY)
        contract = p.spec.contracts[events.dataset]

        def loopline():
            try:
                return validate_dataset(p, events.dataset, interval, "bench")
            except ContractViolation as violation:
                return violation.outcome

        spark = p.spark()
        produce_events(spark, p.settings.kafka("producer"), events.topic, rows, customers=rows // 10)
        ingest_source(spark, p, events, "bench", DAY)
        loopline_s, outcome = median_after_warm_up(loopline, REPEATS)
        cutoff = suite_parameters(interval, contract.freshness_hours)["freshness_cutoff"]
        routed = p.lake.location(contract.valid_dataset, subdir="_floor")  # hidden from readers, same tier
        floor_s, (floor, counts) = median_after_warm_up(lambda: spark_floor(
            spark, p.lake.location(events.dataset).spark_uri, p.lake.location(events.dataset, DAY).spark_uri,
            routed.spark_uri, list(events.schema.fields), cutoff, max(rows, 5_000_000)), REPEATS)
        suite = load_suite(contract.suite)
        with closing(open_batch(p, contract, events, interval, suite)) as batch:
            gx_s, _ = median_after_warm_up(lambda: validate_frame(
                suite, batch.frame, suite_parameters(interval, contract.freshness_hours), "bench"), REPEATS)
        if problems := disagreements(outcome, floor, counts):
            raise RuntimeError(f"{rows:,} events: Loopline and the floor disagree:\n  " + "\n  ".join(problems))
        return {"events": rows, "rows_in": outcome.rows_in, "valid": outcome.rows_valid,
                "quarantined": outcome.rows_quarantined, "engine": outcome.engine, "passed": outcome.passed,
                "loopline_s": round(loopline_s, 2), "floor_s": round(floor_s, 2),
                "ratio": round(loopline_s / floor_s, 2), "meets_target": loopline_s / floor_s <= TARGET_RATIO,
                "gx_s": round(gx_s, 2), "gx_share_of_floor": round(gx_s / floor_s, 2),
                "gx_alone_exceeds_target_margin": gx_s / floor_s > TARGET_RATIO - 1}


def main() -> int:
    from scale import contracts_admitting

    sizes = [int(n) for n in os.environ.get("LOOPLINE_BENCH_VALIDATE_SIZES", "1000000,10000000").split(",")]
    with scratch_pipelines() as pipelines, contracts_admitting(max(sizes)):
        points = [measure(rows, pipelines) for rows in sizes]
    result = {"target": f"loopline_s / floor_s <= {TARGET_RATIO}", "repeats": REPEATS,
              "statistic": "median after one warm-up", "cores": os.cpu_count(),
              "loopline": "validate_dataset on the day's bronze: GX 1.x suite (17 rules) on Spark Connect (local[2]), "
                          "exact duplicates, quarantine and valid rows written and checked, results stored, Data Docs",
              "floor": "the same rules by hand on the same Spark server in one pass: duplicate and uniqueness windows, "
                       "figures by observe(), one write partitioned by outcome (valid, rejected)",
              "gx": "GX's evaluation of the suite alone (no Data Docs) on the batch's rows already read, split and "
                    "cached by Loopline's Spark batch; above (target - 1) x floor, GX alone rules the target out",
              "data": "the ingest benchmark's events (2% bad records of 7 kinds, 3 event dates) after the real "
                      "ingest; the validated day holds about 80% of them",
              "points": points}
    report("validate", result, [{k: pt[k] for k in ("events", "rows_in", "quarantined", "engine", "loopline_s",
                                                    "floor_s", "ratio", "gx_s", "gx_share_of_floor")} for pt in points])
    print(f"target ratio <= {TARGET_RATIO}: " + ", ".join(
        f"{pt['events']:,}: {'met' if pt['meets_target'] else 'NOT met'}" for pt in points))
    return 0


if __name__ == "__main__":
    sys.exit(main())
