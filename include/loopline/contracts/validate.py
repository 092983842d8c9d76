"""Data contracts: validate a run's batch of bronze rows, route them, stop the line on a bad batch.

A run's batch is the bronze rows of its interval's event dates (one date for a daily
pipeline, a month for a monthly one). For one bronze dataset and interval (spec
`contracts:`, suite in expectations/):

0. Exact duplicates (rows equal in every field of the schema) keep their first copy, by the
   contract's tie-break; later copies are quarantined as `row:exact_duplicate` (spec
   `exact_duplicates`; `keep: none` leaves every copy to the suite).
1. GX evaluates every rule of the suite on the Spark DataFrame (loopline.contracts.gx_validation).
2. Rows breaking row-level rules are written to `quarantine/<valid_dataset>/date=D` with
   the names of the rules they break in `reason`; the interval's quarantine is replaced.
3. The quarantine is read back: per rule it must hold exactly GX's unexpected count
   (ContractMismatch otherwise), and valid + quarantined must equal the input.
4. If every batch-level rule holds and at most `max_quarantined_share` of the rows were
   quarantined, the valid rows replace `<valid_dataset>/date=D` for each date of the
   interval, which is all downstream stages read. Otherwise the interval's valid partitions
   are removed and ContractViolation is raised: the line stops, and the champion is untouched.
5. Every rule's result is stored in PostgreSQL (loopline.contract_results, per run, under
   the interval's first date), and the GX Data Docs are published on the `contract_reports` tier.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.contracts.gx_validation import RuleResult, json_safe, suite_parameters, validate_frame
from loopline.contracts.reports import publish
from loopline.contracts.rules import Suite, failed_rules, load_suite
from loopline.core import telemetry
from loopline.core import db, partitions
from loopline.core.interval import Interval
from loopline.core.spec import Contract, ExactDuplicates
from loopline.ingest import bronze

if TYPE_CHECKING:
    from loopline.core.pipeline import Pipeline

REASON_SEPARATOR = "; "
SAMPLE_SIZE = 5  # values that broke a row rule, kept as evidence (read from the quarantine)
SHARE_RULE = "table:quarantined_share"
DUPLICATE_RULE = "row:exact_duplicate"


class ContractViolation(RuntimeError):
    """A batch broke its contract: the line stops for its dates."""

    def __init__(self, outcome: "ContractOutcome") -> None:
        super().__init__(outcome.describe() + "\nThe line stops here for these dates: nothing is trained, promoted "
                         "or scored from it, and the champion is unchanged. Fix the producer (or, in review, the "
                         "contract) and rerun the dates.")
        self.outcome = outcome


class ContractMismatch(RuntimeError):
    """Rows routed to quarantine disagree with GX's counts (a Loopline defect, not bad data)."""


def stopping(results: list[RuleResult]) -> list[RuleResult]:
    """The results that stop the line: failed batch rules, and any rule GX could not evaluate."""
    return [r for r in results if (r.severity == "batch" and not r.success) or r.error]


@dataclass(frozen=True)
class ContractOutcome:
    pipeline: str
    dataset: str
    logical_date: str  # the interval's first date
    last_date: str
    run_id: str
    suite: str
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    results: list[RuleResult] = field(default_factory=list)
    report_uri: str | None = None  # the stored Data Docs page (the loop view serves it)

    @property
    def passed(self) -> bool:
        return not stopping(self.results)

    def describe(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        dates = self.logical_date if self.last_date == self.logical_date else f"{self.logical_date}..{self.last_date}"
        lines = [f"contract {self.suite} on {self.dataset} {dates}: {verdict}; {self.rows_in} rows in = "
                 f"{self.rows_valid} valid + {self.rows_quarantined} quarantined"]
        lines += [f"  STOP  {r.describe()}" for r in stopping(self.results)]
        lines += [f"  quarantined  {r.describe()}" for r in self.results
                  if r.severity == "row" and r.unexpected_count and not r.error]
        lines += [f"  warning  {r.describe()}" for r in self.results if r.severity == "warn" and not r.success]
        if self.report_uri:
            lines.append(f"  Data Docs stored at {self.report_uri}")
        return "\n".join(lines)


def _bronze_frame(p: "Pipeline", dataset: str, interval: Interval):
    """The interval's bronze rows of recorded batches (as ingested: fields, lineage, ingest
    batch); an empty frame of the right shape when it has none."""
    rows = bronze.read(p, dataset, interval)
    if rows is not None:
        return rows.drop("date")
    source = next(s for s in p.spec.sources.values() if s.dataset == dataset)
    columns = [f"`{name}` {kind}" for name, kind in source.schema.fields.items()]
    columns += ["source string", "source_partition int", "source_offset bigint", "ingest_batch int"]
    return p.spark().createDataFrame([], ", ".join(columns))


def _split_exact_duplicates(frame, fields: list[str], rule: ExactDuplicates):
    """(the rows that go on to the suite, the later copies of exact duplicates)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if rule.keep == "none":
        return frame, None
    equal_in = [F.col(f"`{name}`") for name in fields if name in frame.columns]  # a missing one is the suite's to name
    copies = Window.partitionBy(*equal_in).orderBy(*[F.col(f"`{c}`") for c in rule.first_by])
    numbered = frame.withColumn("_copy", F.row_number().over(copies))
    return numbered.where("_copy = 1").drop("_copy"), numbered.where("_copy > 1").drop("_copy")


def _duplicate_result(repeats: int, rows_in: int) -> RuleResult:
    return RuleResult(DUPLICATE_RULE, "row", "loopline_exact_duplicates_keep_first", None, repeats == 0, repeats,
                      repeats, rows_in, [])


def _share_result(contract: Contract, rows_in: int, quarantined: int) -> RuleResult:
    share = quarantined / rows_in if rows_in else 0.0
    return RuleResult(SHARE_RULE, "batch", "loopline_max_quarantined_share", None,
                      share <= contract.max_quarantined_share, round(share, 6), quarantined, rows_in, [])


def _check_routing(results: list[RuleResult], per_rule: dict[str, int]) -> None:
    """Quarantined rows per rule must equal GX's unexpected count for that rule."""
    row_results = [r for r in results if r.severity == "row" and not r.error]
    disagreements = {r.name: (per_rule.get(r.name, 0), r.unexpected_count)
                     for r in row_results if per_rule.get(r.name, 0) != (r.unexpected_count or 0)}
    if disagreements:
        raise ContractMismatch(f"quarantined rows per rule disagree with GX (quarantined, GX unexpected): "
                               f"{disagreements}. This is a Loopline defect in contract_rules.row_passes; please "
                               "report it with the suite.")


def _with_samples(results: list[RuleResult], quarantine, suite: Suite) -> list[RuleResult]:
    """Row rules that quarantined rows get a few of the values that broke them, as evidence
    (the first by source offset; one query for every rule)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    columns = {r.name: suite.rule(r.name).column for r in results
               if r.severity == "row" and r.unexpected_count and r.name != DUPLICATE_RULE}
    if not columns:
        return results
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
    return [replace(r, sample=json_safe(samples.get(r.name, []))) if r.name in columns else r for r in results]


def _route(frame, repeats, suite: Suite, results: list[RuleResult], p: "Pipeline", contract: Contract,
           interval: Interval, time_field: str, run_id: str):
    """Write the interval's quarantine (rows breaking row rules, and `repeats`, the later copies of
    exact duplicates); return (rows checked, quarantined rows per rule, quarantine). Row rules GX
    could not evaluate (e.g. on a missing column) route nothing: they stop the line."""
    from pyspark.sql import functions as F

    unevaluated = {r.name for r in results if r.error}
    checked = frame.withColumn("_failed", failed_rules([r for r in suite.row_rules if r.name not in unevaluated]))
    rejected = checked.where(F.size("_failed") > 0).select(*frame.columns, F.array_join("_failed", REASON_SEPARATOR)
                                                           .alias("reason"))
    if repeats is not None:
        rejected = rejected.unionByName(repeats.withColumn("reason", F.lit(DUPLICATE_RULE)))
    rejected = rejected.select("*", F.lit(suite.name).alias("suite"), F.lit(run_id).alias("run_id"))
    written = partitions.replace(p, rejected, "quarantine", interval, F.to_date(time_field), contract.valid_dataset)
    if written is None:
        return checked, {}, p.spark().createDataFrame([], rejected.schema)
    per_rule = {row["rule"]: row["n"] for row in
                written.select(F.explode(F.split("reason", REASON_SEPARATOR)).alias("rule")).groupBy("rule")
                .agg(F.count(F.lit(1)).alias("n")).collect()}
    return checked, per_rule, written


def _publish_valid(checked, p: "Pipeline", contract: Contract, interval: Interval, time_field: str,
                   held_back: int | None) -> int:
    """Replace the interval's valid partitions and return their rows read back; or, if the
    batch failed (`held_back` = its valid rows, not published), remove the partitions."""
    from pyspark.sql import functions as F

    if held_back is not None:  # nothing of a failed batch is published: its dates keep no valid partition
        partitions.remove(p, contract.valid_dataset, interval)
        return held_back
    valid = checked.where(F.size("_failed") == 0).drop("_failed")
    written = partitions.replace(p, valid, contract.valid_dataset, interval, F.to_date(time_field))
    return written.count() if written is not None else 0


def _store(db_url: str, outcome: ContractOutcome) -> None:
    key = {"pipeline": outcome.pipeline, "dataset": outcome.dataset, "logical_date": outcome.logical_date,
           "run_id": outcome.run_id}  # an interval's results are kept under its first date
    with db.connect(db_url) as conn:
        with conn.cursor() as cur:  # a rerun of the same run replaces its rules (the suite may have changed)
            cur.execute("DELETE FROM loopline.contract_results WHERE pipeline=%(pipeline)s AND dataset=%(dataset)s "
                        "AND logical_date=%(logical_date)s AND run_id=%(run_id)s", key)
        db.upsert(conn, "loopline.contract_validations", {
            **key, "last_date": outcome.last_date, "suite": outcome.suite, "success": outcome.passed,
            "rows_in": outcome.rows_in,
            "rows_valid": outcome.rows_valid, "rows_quarantined": outcome.rows_quarantined,
            "report_uri": outcome.report_uri,
        }, key=list(key))
        db.upsert_rows(conn, "loopline.contract_results", [{
            **key, "rule": r.name, "severity": r.severity, "expectation": r.expectation, "column_name": r.column,
            "success": r.success, "observed_value": db.as_json(r.observed_value),
            "unexpected_count": r.unexpected_count, "element_count": r.element_count, "sample": r.sample,
            "error": r.error,
        } for r in outcome.results], key=[*key, "rule"])  # every rule in one statement


def validate_dataset(p: "Pipeline", dataset: str, interval: Interval, run_id: str) -> ContractOutcome:
    """Validate `dataset`'s rows of the interval; route rows; raise ContractViolation on a bad batch."""
    contract = p.spec.contracts[dataset]
    source = next(s for s in p.spec.sources.values() if s.dataset == dataset)
    time_field = source.time_field
    suite = load_suite(contract.suite)
    bronze = _bronze_frame(p, dataset, interval)  # not cached: each query reads only the Parquet columns it needs
    frame, repeats = _split_exact_duplicates(bronze, list(source.schema.fields), contract.exact_duplicates)
    with tempfile.TemporaryDirectory(prefix="loopline-docs-") as site:
        results = validate_frame(suite, frame, suite_parameters(interval, contract.freshness_hours), run_id,
                                 Path(site))
        report = publish(Path(site), p.lake.location("contract_reports", interval.first, subdir=dataset))
    rows_in = bronze.count()
    if repeats is not None:
        results.append(_duplicate_result(repeats.count(), rows_in))
    checked, per_rule, quarantine = _route(frame, repeats, suite, results, p, contract, interval, time_field, run_id)
    _check_routing(results, per_rule)
    results = _with_samples(results, quarantine, suite)
    quarantined = quarantine.count()
    results.append(_share_result(contract, rows_in, quarantined))
    failed = bool(stopping(results))  # a failed batch publishes nothing: its valid rows = input - quarantined
    valid = _publish_valid(checked, p, contract, interval, time_field, rows_in - quarantined if failed else None)
    outcome = ContractOutcome(p.spec.name, dataset, interval.first.isoformat(), interval.last.isoformat(), run_id,
                              suite.name, rows_in, valid, quarantined, results, report)
    if valid + quarantined != rows_in:
        raise ContractMismatch(f"{dataset} {interval}: {rows_in} rows in, but {valid} valid + {quarantined} "
                               "quarantined were written; rerun the interval (each run replaces its outputs)")
    _store(p.settings.db_url, outcome)
    tags = {"pipeline": p.spec.name, "dataset": dataset}
    telemetry.gauge("contract.rows_rejected", quarantined, **tags)
    telemetry.gauge("contract.failed_rules", sum(not r.success for r in results), **tags)
    telemetry.gauge("contract.passed", int(outcome.passed), **tags)
    if not outcome.passed:
        raise ContractViolation(outcome)
    return outcome
