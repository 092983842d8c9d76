"""Contract benchmark: Loopline's GX validation on Spark against the same checks by hand.

One run: Spark writes a bronze-like partition of N card payments (a few rows per thousand
break row rules); then, each timed from reading the partition to having every rule's verdict:

  loopline  what `loopline.contracts.validate.validate_dataset` does before routing rows: read the
            partition with Spark and run the reviewed card_payments_bronze suite (17 rules,
            both severities) through GX on the Spark Connect server;
  baseline  the same 17 checks written by hand: pyarrow reads the partition, then one
            pyarrow/numpy pass computes each rule's verdict and unexpected count;
  spark floor
            the same 17 checks by hand on the same Spark server, without GX, in the fewest
            queries (one aggregate, one grouped count for uniqueness): what any validation
            of a Spark DataFrame costs here at least. spark_floor_ratio shows how much of
            the gap to the baseline is Spark's; loopline_over_spark_floor how much is GX's.

Each gets one unmeasured warm-up; each is then run REPEATS times and the median is kept.
All three must agree on every verdict and unexpected count, or the benchmark fails (so the
baselines really are "the same checks"). ratio = loopline_s / baseline_s (lower is better).

    make bench                              # 1M rows
    LOOPLINE_BENCH_VALIDATE_ROWS=100000 make bench

Writes benchmarks/results/validate.json and prints a table.
"""
from __future__ import annotations

import calendar
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from bench_common import median_after_warm_up, report

TARGET_RATIO = 3.0
REPEATS = 3
DAY = date(2026, 1, 15)
SUITE = "card_payments_bronze"
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


def verdicts(m: Measured, freshness_cutoff: str) -> dict[str, tuple[bool, float]]:
    """rule -> (passed, unexpected count or observed value), as the suite judges it."""
    unique_share = m.distinct_customers / (m.rows - m.null_customers)
    return {**{name: (count == 0, count) for name, count in m.unexpected.items()},
            "volume": (500 <= m.rows <= 5_000_000, m.rows),
            "schema": (m.columns == EXPECTED_COLUMNS, len(m.columns)),
            "amount:values_to_be_of_type": (m.amount_is_double, 0),
            "event_time:values_to_be_of_type": (m.event_time_is_timestamp, 0),
            "freshness": (m.latest_event.isoformat() >= freshness_cutoff, 0),
            "customer_id:null_rate": (1 - m.null_customers / m.rows >= 0.999, m.null_customers),
            "amount:mean_to_be_between": (20 <= m.amount_mean <= 400, m.amount_mean),
            "amount:stdev_to_be_between": (5 <= m.amount_stdev <= 2000, m.amount_stdev),
            "customer_id:proportion_of_unique_values_to_be_between": (0.05 <= unique_share <= 1.0, unique_share)}


def hand_written_checks(path: str, freshness_cutoff: str) -> dict[str, tuple[bool, float]]:
    """The suite's rules by hand, in one pass over the columns: rule -> (passed, unexpected or observed)."""
    import pyarrow.dataset as ds

    table = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    ids, customer, amount = table["transaction_id"], table["customer_id"], table["amount"].to_numpy()
    counts = pc.value_counts(ids).field("counts").to_numpy()

    def not_in(column: str, allowed: list[str]) -> int:
        return int(pc.sum(pc.invert(pc.is_in(table[column], value_set=pa.array(allowed)))).as_py() or 0)

    unexpected = {"transaction_id:values_to_not_be_null": ids.null_count,
                  "transaction_id:values_to_be_unique": int(counts[counts > 1].sum()),
                  "merchant_category:values_to_be_in_set": not_in("merchant_category", CATEGORIES),
                  "channel:values_to_be_in_set": not_in("channel", CHANNELS),
                  "country:values_to_match_regex": table.num_rows - int(
                      pc.sum(pc.match_substring_regex(table["country"], COUNTRY_PATTERN)).as_py())}
    for column, (low, high) in BOUNDS.items():
        values = table[column].to_numpy()
        unexpected[f"{column}:values_to_be_between"] = int(((values < low) | (values > high)).sum())
    return verdicts(Measured(
        rows=table.num_rows, unexpected=unexpected, columns=set(table.column_names),
        amount_is_double=pa.types.is_float64(table.schema.field("amount").type),
        event_time_is_timestamp=pa.types.is_timestamp(table.schema.field("event_time").type),
        latest_event=pc.max(table["event_time"]).as_py(), null_customers=customer.null_count,
        amount_mean=float(amount.mean()), amount_stdev=float(amount.std(ddof=1)),
        distinct_customers=pc.count_distinct(customer).as_py()), freshness_cutoff)


def spark_hand_written_checks(spark, path: str, freshness_cutoff: str) -> dict[str, tuple[bool, float]]:
    """The suite's rules by hand in Spark, no GX: one aggregate query for every rule but
    uniqueness, one grouped query for uniqueness. The least any Spark validation can cost,
    so the gap between it and the pyarrow baseline is the engine's, not GX's."""
    from pyspark.sql import functions as F

    frame = spark.read.parquet(path)

    def count_where(condition):
        return F.sum(F.when(condition, 1).otherwise(0))

    def not_in(column: str, allowed: list[str]):
        return count_where(F.col(column).isNotNull() & ~F.col(column).isin(*allowed))

    row_counts = {
        "transaction_id:values_to_not_be_null": count_where(F.col("transaction_id").isNull()),
        "merchant_category:values_to_be_in_set": not_in("merchant_category", CATEGORIES),
        "channel:values_to_be_in_set": not_in("channel", CHANNELS),
        "country:values_to_match_regex": count_where(F.col("country").isNotNull()
                                                     & ~F.col("country").rlike(COUNTRY_PATTERN)),
        **{f"{column}:values_to_be_between": count_where(F.col(column).isNotNull()
                                                         & ~F.col(column).between(low, high))
           for column, (low, high) in BOUNDS.items()}}
    stats = frame.agg(*[c.alias(name) for name, c in row_counts.items()], F.count(F.lit(1)).alias("rows"),
                      count_where(F.col("customer_id").isNull()).alias("null_customers"),
                      F.max("event_time").alias("latest"), F.avg("amount").alias("mean"),
                      F.stddev_samp("amount").alias("stdev"),
                      F.countDistinct("customer_id").alias("customers")).first().asDict()
    repeated = (frame.where(F.col("transaction_id").isNotNull()).groupBy("transaction_id").count()
                .where("count > 1").agg(F.sum("count")).first()[0] or 0)
    types = {field.name: field.dataType.typeName() for field in frame.schema.fields}
    return verdicts(Measured(
        rows=stats["rows"], unexpected={**{name: stats[name] for name in row_counts},
                                        "transaction_id:values_to_be_unique": repeated},
        columns=set(types), amount_is_double=types["amount"] == "double",
        event_time_is_timestamp=types["event_time"] == "timestamp", latest_event=stats["latest"],
        null_customers=stats["null_customers"], amount_mean=stats["mean"], amount_stdev=stats["stdev"],
        distinct_customers=stats["customers"]), freshness_cutoff)


def loopline_checks(spark, path: str, parameters: dict) -> dict[str, tuple[bool, float]]:
    from loopline.contracts.gx_validation import validate_frame
    from loopline.contracts.rules import load_suite

    results = validate_frame(load_suite(SUITE), spark.read.parquet(path), parameters, "bench")
    return {r.name: (r.success, r.unexpected_count if r.severity == "row" else r.observed_value) for r in results}


def disagreements(checked: dict, baseline: dict) -> list[str]:
    problems = [f"{name}: {checked.get(name)} vs baseline {verdict}" for name, verdict in baseline.items()
                if checked.get(name, (None,))[0] != verdict[0]]
    problems += [f"{name}: unexpected {checked[name][1]} vs {baseline[name][1]}" for name in baseline
                 if name.split(":")[-1].startswith("values_to_be_") and "type" not in name
                 and checked[name][1] != baseline[name][1]]
    return problems + sorted(f"{name}: no hand-written check" for name in set(checked) - set(baseline))


def main() -> int:
    from loopline.contracts.gx_validation import suite_parameters
    from loopline.core.config import Settings
    from loopline.core.interval import Interval
    from loopline.core.spark import get_spark

    rows = int(os.environ.get("LOOPLINE_BENCH_VALIDATE_ROWS", "1000000"))
    spark = get_spark(Settings.from_env())
    parameters = suite_parameters(Interval.of_day(DAY), 2)
    with tempfile.TemporaryDirectory(prefix="loopline-bench-validate-") as tmp:
        write_partition(spark, f"file://{tmp}/date={DAY}", rows)
        path = f"{tmp}/date={DAY}"
        loopline_s, loopline = median_after_warm_up(lambda: loopline_checks(spark, f"file://{path}", parameters),
                                                    REPEATS)
        floor_s, floor = median_after_warm_up(
            lambda: spark_hand_written_checks(spark, f"file://{path}", parameters["freshness_cutoff"]), REPEATS)
        baseline_s, baseline = median_after_warm_up(
            lambda: hand_written_checks(path, parameters["freshness_cutoff"]), REPEATS)
    for label, checks in [("loopline", loopline), ("the Spark floor", floor)]:
        if problems := disagreements(checks, baseline):
            print(f"{label} and the hand-written checks disagree:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
    ratio = loopline_s / baseline_s
    result = {"rows": rows, "expectations": len(loopline), "loopline_s": round(loopline_s, 3),
              "baseline_s": round(baseline_s, 3), "ratio": round(ratio, 2), "target": TARGET_RATIO,
              "spark_floor_s": round(floor_s, 3), "spark_floor_ratio": round(floor_s / baseline_s, 2),
              "loopline_over_spark_floor": round(loopline_s / floor_s, 2),
              "meets_target": ratio <= TARGET_RATIO, "repeats": REPEATS, "statistic": "median after one warm-up",
              "rows_failing_row_rules": {n: v[1] for n, v in loopline.items() if not v[0] and isinstance(v[1], int)},
              "loopline": "GX 1.x suite on Spark (Connect server, local[2]); aggregates only, no sample scans",
              "spark_floor": "the same checks by hand on the same Spark server, no GX: one aggregate query "
                             "plus one grouped query for uniqueness",
              "baseline": "pyarrow read + pyarrow/numpy checks, one process", "cores": os.cpu_count()}
    report("validate", result, [{"rows": rows, "rules": len(loopline), "loopline s": round(loopline_s, 3),
                                 "spark floor s": round(floor_s, 3), "baseline s": round(baseline_s, 3),
                                 "ratio": result["ratio"], "floor ratio": result["spark_floor_ratio"]}])
    print(f"target ratio <= {TARGET_RATIO}: {'met' if result['meets_target'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
