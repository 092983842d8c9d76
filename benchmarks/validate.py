"""Contract benchmark: Loopline's GX validation on Spark against the same checks by hand.

One run: Spark writes a bronze-like partition of N card payments (a few rows per thousand
break row rules); then, each timed from reading the partition to having every rule's verdict:

  loopline  what `loopline.contracts.validate_dataset` does before routing rows: read the
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
from datetime import date

import numpy as np
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


def write_partition(spark, path: str, rows: int) -> None:
    from pyspark.sql import functions as F

    def pick(options: list[str], salt: int):
        index = (F.abs(F.hash(F.col("id"), F.lit(salt))) % len(options) + 1).cast("int")
        return F.element_at(F.array(*[F.lit(o) for o in options]), index)

    midnight = calendar.timegm(DAY.timetuple())
    (spark.range(rows).select(
        F.concat(F.lit("tx-"), F.lpad(F.when(F.col("id") % 2000 == 1, F.col("id") - 1).otherwise(F.col("id"))
                                      .cast("string"), 9, "0")).alias("transaction_id"),
        F.concat(F.lit("c"), F.lpad((F.col("id") % 40000).cast("string"), 5, "0")).alias("customer_id"),
        F.timestamp_seconds(F.lit(midnight) + F.floor(F.col("id") * 86399 / rows)).alias("event_time"),
        F.when(F.col("id") % 1000 == 0, F.lit(-1.0)).otherwise(F.round(F.rand(7) * 300 + 1, 2)).alias("amount"),
        pick(["grocery", "restaurants", "fuel", "fashion", "travel", "electronics", "gaming", "digital_goods"], 1)
        .alias("merchant_category"),
        pick(["DE", "FR", "NL", "ES", "IT", "GB", "US", "BR", "NG"], 2).alias("country"),
        F.when(F.col("id") % 1500 == 0, F.lit("fax")).otherwise(pick(["pos", "ecom", "mobile_app"], 3)).alias("channel"),
        (F.rand(3) < 0.07).alias("is_new_device"),
        (F.col("id") % 50).cast("int").alias("customer_tx_count_30d"),
        F.round(F.rand(5) * 200 + 5, 2).alias("customer_avg_amount_30d"),
        F.lit(1).alias("schema_version"), F.lit("card_payments").alias("source"),
        (F.col("id") % 2).cast("int").alias("source_partition"), F.col("id").alias("source_offset"),
    ).write.mode("overwrite").parquet(f"{path}/ingest_batch=0"))


def _outside(values: np.ndarray, low: float, high: float) -> int:
    return int(((values < low) | (values > high)).sum())


def _not_in(column: pa.ChunkedArray, allowed: list[str]) -> int:
    return int(pc.sum(pc.invert(pc.is_in(column, value_set=pa.array(allowed)))).as_py() or 0)


def hand_written_checks(path: str, freshness_cutoff: str) -> dict[str, tuple[bool, float]]:
    """The suite's rules by hand, in one pass over the columns: rule -> (passed, unexpected or observed)."""
    import pyarrow.dataset as ds

    table = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    rows = table.num_rows
    ids = table["transaction_id"]
    counts = pc.value_counts(ids).field("counts").to_numpy()
    amount = table["amount"].to_numpy()
    customer = table["customer_id"]
    checks: dict[str, tuple[bool, float]] = {}

    def row_rule(name: str, unexpected: int) -> None:
        checks[name] = (unexpected == 0, unexpected)

    row_rule("transaction_id:values_to_not_be_null", ids.null_count)
    row_rule("transaction_id:values_to_be_unique", int(counts[counts > 1].sum()))
    row_rule("amount:values_to_be_between", _outside(amount, 0.01, 50000))
    row_rule("merchant_category:values_to_be_in_set", _not_in(table["merchant_category"], [
        "grocery", "restaurants", "fuel", "fashion", "travel", "electronics", "gaming", "digital_goods"]))
    row_rule("channel:values_to_be_in_set", _not_in(table["channel"], ["pos", "ecom", "mobile_app"]))
    row_rule("country:values_to_match_regex",
             rows - int(pc.sum(pc.match_substring_regex(table["country"], "^[A-Z]{2}$")).as_py()))
    row_rule("customer_tx_count_30d:values_to_be_between", _outside(table["customer_tx_count_30d"].to_numpy(), 0, 10000))
    row_rule("customer_avg_amount_30d:values_to_be_between",
             _outside(table["customer_avg_amount_30d"].to_numpy(), 0, 50000))
    checks["volume"] = (500 <= rows <= 5_000_000, rows)
    checks["schema"] = (set(table.column_names) == EXPECTED_COLUMNS, len(table.column_names))
    checks["amount:values_to_be_of_type"] = (pa.types.is_float64(table.schema.field("amount").type), 0)
    checks["event_time:values_to_be_of_type"] = (pa.types.is_timestamp(table.schema.field("event_time").type), 0)
    latest = pc.max(table["event_time"]).as_py()
    checks["freshness"] = (latest.isoformat() >= freshness_cutoff, 0)
    checks["customer_id:null_rate"] = (1 - customer.null_count / rows >= 0.999, customer.null_count)
    mean, stdev = float(amount.mean()), float(amount.std(ddof=1))
    checks["amount:mean_to_be_between"] = (20 <= mean <= 400, mean)
    checks["amount:stdev_to_be_between"] = (5 <= stdev <= 2000, stdev)
    unique_share = pc.count_distinct(customer).as_py() / (rows - customer.null_count)
    checks["customer_id:proportion_of_unique_values_to_be_between"] = (0.05 <= unique_share <= 1.0, unique_share)
    return checks


def spark_hand_written_checks(spark, path: str, freshness_cutoff: str) -> dict[str, tuple[bool, float]]:
    """The suite's rules by hand in Spark, no GX: one aggregate query for every rule but
    uniqueness, one grouped query for uniqueness. The least any Spark validation can cost,
    so the gap between it and the pyarrow baseline is the engine's, not GX's."""
    from pyspark.sql import functions as F

    frame = spark.read.parquet(path)

    def count_where(condition):
        return F.sum(F.when(condition, 1).otherwise(0))

    def outside(column: str, low: float, high: float):
        return count_where(F.col(column).isNotNull() & ~F.col(column).between(low, high))

    def not_in(column: str, allowed: list[str]):
        return count_where(F.col(column).isNotNull() & ~F.col(column).isin(*allowed))

    (rows, null_ids, amount_out, category_out, channel_out, country_out, tx_count_out, avg_amount_out,
     null_customers, latest, mean, stdev, customers) = frame.agg(
        F.count(F.lit(1)), count_where(F.col("transaction_id").isNull()), outside("amount", 0.01, 50000),
        not_in("merchant_category", ["grocery", "restaurants", "fuel", "fashion", "travel", "electronics",
                                     "gaming", "digital_goods"]),
        not_in("channel", ["pos", "ecom", "mobile_app"]),
        count_where(F.col("country").isNotNull() & ~F.col("country").rlike("^[A-Z]{2}$")),
        outside("customer_tx_count_30d", 0, 10000), outside("customer_avg_amount_30d", 0, 50000),
        count_where(F.col("customer_id").isNull()), F.max("event_time"), F.avg("amount"),
        F.stddev_samp("amount"), F.countDistinct("customer_id")).first()
    repeated = (frame.where(F.col("transaction_id").isNotNull()).groupBy("transaction_id").count()
                .where("count > 1").agg(F.sum("count")).first()[0] or 0)
    types = {field.name: field.dataType.typeName() for field in frame.schema.fields}
    checks = {name: (unexpected == 0, unexpected) for name, unexpected in [
        ("transaction_id:values_to_not_be_null", null_ids), ("transaction_id:values_to_be_unique", repeated),
        ("amount:values_to_be_between", amount_out), ("merchant_category:values_to_be_in_set", category_out),
        ("channel:values_to_be_in_set", channel_out), ("country:values_to_match_regex", country_out),
        ("customer_tx_count_30d:values_to_be_between", tx_count_out),
        ("customer_avg_amount_30d:values_to_be_between", avg_amount_out)]}
    checks["volume"] = (500 <= rows <= 5_000_000, rows)
    checks["schema"] = (set(types) == EXPECTED_COLUMNS, len(types))
    checks["amount:values_to_be_of_type"] = (types["amount"] == "double", 0)
    checks["event_time:values_to_be_of_type"] = (types["event_time"] == "timestamp", 0)
    checks["freshness"] = (latest.isoformat() >= freshness_cutoff, 0)
    checks["customer_id:null_rate"] = (1 - null_customers / rows >= 0.999, null_customers)
    checks["amount:mean_to_be_between"] = (20 <= mean <= 400, mean)
    checks["amount:stdev_to_be_between"] = (5 <= stdev <= 2000, stdev)
    unique_share = customers / (rows - null_customers)
    checks["customer_id:proportion_of_unique_values_to_be_between"] = (0.05 <= unique_share <= 1.0, unique_share)
    return checks


def loopline_checks(spark, path: str, parameters: dict) -> dict[str, tuple[bool, float]]:
    from loopline.contract_rules import load_suite
    from loopline.gx_validation import validate_frame

    results = validate_frame(load_suite(SUITE), spark.read.parquet(path), parameters, "bench")
    return {r.name: (r.success, r.unexpected_count if r.severity == "row" else r.observed_value) for r in results}


def disagreements(loopline: dict, baseline: dict) -> list[str]:
    problems = [f"{name}: loopline {loopline.get(name)} vs baseline {verdict}" for name, verdict in baseline.items()
                if loopline.get(name, (None,))[0] != verdict[0]]
    problems += [f"{name}: unexpected {loopline[name][1]} vs {baseline[name][1]}" for name in baseline
                 if name.split(":")[-1].startswith("values_to_be_") and "type" not in name
                 and loopline[name][1] != baseline[name][1]]
    return problems + sorted(f"{name}: no hand-written check" for name in set(loopline) - set(baseline))


def main() -> int:
    from loopline.config import Settings
    from loopline.gx_validation import suite_parameters
    from loopline.spark import get_spark

    rows = int(os.environ.get("LOOPLINE_BENCH_VALIDATE_ROWS", "1000000"))
    spark = get_spark(Settings.from_env())
    parameters = suite_parameters(DAY, 2)
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
