"""A contract's batch on Spark: the engine for batches too large for one process.

Bronze is read once into Spark's cache (exact duplicates numbered, rows clustered by the
suite's unique column), GX evaluates the suite on it, and routing writes the quarantine and the
valid rows from it with Spark; the cache is released when the batch closes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from loopline.contracts.rules import Rule, failed_rules
from loopline.contracts.routing import DUPLICATE_RULE, REASON_SEPARATOR, SAMPLE_SIZE, Routed
from loopline.core import partitions
from loopline.core.interval import Interval
from loopline.core.spec import Contract, Source
from loopline.ingest import bronze

if TYPE_CHECKING:
    from loopline.core.pipeline import Pipeline


class SparkBatch:
    """The interval's bronze rows of recorded `batches` as a Spark DataFrame."""

    engine = "spark"

    def __init__(self, p: "Pipeline", contract: Contract, source: Source, interval: Interval, batches: list[int],
                 rows_in: int, unique_column: str | None = None) -> None:
        self.p, self.contract, self.source, self.interval, self.rows_in = p, contract, source, interval, rows_in
        rows = bronze.read(p, source.dataset, interval, batches)
        self._kept = _kept_rows(rows.drop("date") if rows is not None else self._empty(), list(source.schema.fields),
                                contract, unique_column)
        if contract.exact_duplicates.keep == "none":
            self.frame, self._repeats, self.repeats = self._kept, None, None
            self._kept.count()  # fills the cache
        else:
            self.frame = self._kept.where("_copy = 1").drop("_copy")
            self._repeats = self._kept.where("_copy > 1").drop("_copy")
            self.repeats = self._repeats.count()  # fills the cache too
        self._checked = None

    @property
    def holds_cache(self) -> bool:
        """Whether the batch's rows are in Spark's cache (from opening until `close`)."""
        return self._kept.storageLevel.useMemory or self._kept.storageLevel.useDisk

    def close(self) -> None:
        """Release the batch's rows from Spark's cache (they would outlive the task otherwise).

        An explicit release, not a checkpoint left to Python's garbage collector: a checkpoint
        is released by a Spark Connect call from the collector, which can deadlock the task
        when the collector runs inside the gRPC client (the task then hangs, idle, for good)."""
        self._kept.unpersist()

    def _empty(self):
        columns = [f"`{name}` {kind}" for name, kind in self.source.schema.fields.items()]
        columns += ["source string", "source_partition int", "source_offset bigint", "ingest_batch int"]
        return self.p.spark().createDataFrame([], ", ".join(columns))

    def route(self, row_rules: list[Rule], suite: str, run_id: str, sample_columns: dict[str, str]) -> Routed:
        """Write the interval's quarantine: rows breaking `row_rules`, and the later copies of
        exact duplicates; count the written rows per rule and take the samples from them."""
        from pyspark.sql import functions as F

        frame = self.frame
        # each write works the verdicts out again from the cached rows: cheaper than caching them too
        self._checked = frame.withColumn("_failed", failed_rules(row_rules))
        rejected = self._checked.where(F.size("_failed") > 0).select(
            *frame.columns, F.array_join("_failed", REASON_SEPARATOR).alias("reason"))
        if self._repeats is not None:
            rejected = rejected.unionByName(self._repeats.withColumn("reason", F.lit(DUPLICATE_RULE)))
        rejected = rejected.select("*", F.lit(suite).alias("suite"), F.lit(run_id).alias("run_id"))
        written = partitions.replace(self.p, rejected, "quarantine", self.interval, F.to_date(self.source.time_field),
                                     self.contract.valid_dataset)
        if written is None:
            return Routed({}, 0, {})
        per_rule = {row["rule"]: row["n"] for row in
                    written.select(F.explode(F.split("reason", REASON_SEPARATOR)).alias("rule")).groupBy("rule")
                    .agg(F.count(F.lit(1)).alias("n")).collect()}
        return Routed(per_rule, written.count(), _samples(written, sample_columns))

    def publish_valid(self) -> int:
        """Replace the interval's valid partitions with the rows no rule rejected; their count, read back."""
        from pyspark.sql import functions as F

        valid = self._checked.where(F.size("_failed") == 0).drop("_failed")
        written = partitions.replace(self.p, valid, self.contract.valid_dataset, self.interval,
                                     F.to_date(self.source.time_field))
        return written.count() if written is not None else 0


def _kept_rows(frame, fields: list[str], contract: Contract, unique_column: str | None):
    """The batch's rows, kept in Spark's cache: every GX metric query and both writes read them.

    Unless the contract keeps every copy, `_copy` numbers exact duplicates (rows equal in every
    field of the schema) in the contract's tie-break order; 1 is the copy that goes on to the
    suite. That window sorts the whole batch, which is one more reason to compute it once.
    With `unique_column` (the suite's uniqueness rule) the rows are clustered by it first. The
    cache remembers that layout, so the uniqueness window (GX's query, and the routing's)
    finds each value's rows together and needs no shuffle of its own."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    present = [name for name in fields if name in frame.columns]  # a missing one is the suite's to name
    if unique_column in present:
        present.remove(unique_column)
        present.insert(0, unique_column)  # the window sorts by its partition columns in this order
        frame = frame.repartition(F.col(f"`{unique_column}`"))  # which also clusters it for the longer key
    if contract.exact_duplicates.keep != "none":
        copies = Window.partitionBy(*[F.col(f"`{name}`") for name in present]).orderBy(
            *[F.col(f"`{c}`") for c in contract.exact_duplicates.first_by])
        frame = frame.withColumn("_copy", F.row_number().over(copies))
    frame.unpersist()  # a run killed before its release left these same rows cached: they may be stale
    return frame.persist()


def _samples(quarantine, columns: dict[str, str]) -> dict[str, list]:
    """For each rule in `columns` (rule -> its column), the values of the first quarantined
    rows that broke it, by source offset (one query for every rule)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not columns:
        return {}
    order = ["source_partition", "source_offset"]
    kept = list(dict.fromkeys([*order, *columns.values()]))
    first = Window.partitionBy("_rule").orderBy(*order)
    rows = (quarantine.select(F.explode(F.split("reason", REASON_SEPARATOR)).alias("_rule"),
                              *[F.col(f"`{name}`") for name in kept])
            .where(F.col("_rule").isin(list(columns)))
            .withColumn("_n", F.row_number().over(first)).where(F.col("_n") <= SAMPLE_SIZE)
            .orderBy("_rule", "_n").collect())
    samples: dict[str, list] = {}
    for row in rows:
        samples.setdefault(row["_rule"], []).append(row[columns[row["_rule"]]])
    return samples
