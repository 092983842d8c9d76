"""Data contracts: validate a run's batch of bronze rows, route them, stop the line on a bad batch.

A run's batch is the bronze rows of its interval's event dates (one date for a daily
pipeline, a month for a monthly one). For one bronze dataset and interval (spec
`contracts:`, suite in expectations/):

0. Exact duplicates (rows equal in every field of the schema) keep their first copy, by the
   contract's tie-break; later copies are quarantined as `row:exact_duplicate` (spec
   `exact_duplicates`; `keep: none` leaves every copy to the suite).
1. GX evaluates every rule of the suite (loopline.contracts.gx_validation): on a Spark
   DataFrame, or, for a batch below the spec's `engine.in_process_below_rows`, on a pandas
   frame in this process (loopline.contracts.on_spark, loopline.contracts.in_process).
2. Rows breaking row-level rules are written to `quarantine/<valid_dataset>/date=D` with
   the names of the rules they break in `reason`; the interval's quarantine is replaced.
3. Per rule, the written quarantine must hold exactly GX's unexpected count
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
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.contracts.gx_validation import RuleResult, json_safe, suite_parameters, validate_frame
from loopline.contracts.reports import publish
from loopline.contracts.routing import DUPLICATE_RULE
from loopline.contracts.rules import UNIQUE_RULE_TYPE, Suite, load_suite
from loopline.core import db, partitions, telemetry
from loopline.core.interval import Interval
from loopline.core.spec import Contract, Source
from loopline.ingest import bronze

if TYPE_CHECKING:
    from loopline.contracts.in_process import LocalBatch
    from loopline.contracts.on_spark import SparkBatch
    from loopline.core.pipeline import Pipeline

SHARE_RULE = "table:quarantined_share"


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
    engine: str = "spark"  # where the batch was validated: spark, or in_process (a small batch)

    @property
    def passed(self) -> bool:
        return not stopping(self.results)

    def describe(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        dates = self.logical_date if self.last_date == self.logical_date else f"{self.logical_date}..{self.last_date}"
        lines = [f"contract {self.suite} on {self.dataset} {dates} ({self.engine}): {verdict}; {self.rows_in} rows in = "
                 f"{self.rows_valid} valid + {self.rows_quarantined} quarantined"]
        lines += [f"  STOP  {r.describe()}" for r in stopping(self.results)]
        lines += [f"  quarantined  {r.describe()}" for r in self.results
                  if r.severity == "row" and r.unexpected_count and not r.error]
        lines += [f"  warning  {r.describe()}" for r in self.results if r.severity == "warn" and not r.success]
        if self.report_uri:
            lines.append(f"  Data Docs stored at {self.report_uri}")
        return "\n".join(lines)


def open_batch(p: "Pipeline", contract: Contract, source: Source, interval: Interval,
                suite: Suite) -> "LocalBatch | SparkBatch":
    """The interval's bronze rows of recorded batches, on the engine their count calls for
    (counted from the files' footers): in this process below the spec's threshold, else Spark."""
    from loopline.contracts.in_process import LocalBatch
    from loopline.contracts.on_spark import SparkBatch

    batches = bronze.recorded_batches(p.settings.db_url, p.spec.name, source.dataset, interval)
    files = bronze.local_dataset(p, source.dataset, interval, batches)
    rows = files.count_rows() if files is not None else 0
    if files is not None and rows < p.spec.engine.in_process_below_rows:
        return LocalBatch(p, contract, source, interval, files)
    unique = [r.column for r in suite.row_rules if r.type == UNIQUE_RULE_TYPE]
    return SparkBatch(p, contract, source, interval, batches, rows, unique[0] if unique else None)


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
    source = p.spec.source_of(dataset)
    suite = load_suite(contract.suite)
    with closing(open_batch(p, contract, source, interval, suite)) as batch:
        with tempfile.TemporaryDirectory(prefix="loopline-docs-") as site:
            results = validate_frame(suite, batch.frame, suite_parameters(interval, contract.freshness_hours), run_id,
                                     Path(site))
            report = publish(Path(site), p.lake.location("contract_reports", interval.first, subdir=dataset))
        rows_in = batch.rows_in
        if batch.repeats is not None:
            results.append(_duplicate_result(batch.repeats, rows_in))
        unevaluated = {r.name for r in results if r.error}  # route nothing: they stop the line
        sampled = {r.name: suite.rule(r.name).column for r in results
                   if r.severity == "row" and r.unexpected_count and r.name != DUPLICATE_RULE and not r.error}
        routed = batch.route([r for r in suite.row_rules if r.name not in unevaluated], suite.name, run_id, sampled)
        _check_routing(results, routed.per_rule)
        results = [replace(r, sample=json_safe(routed.samples.get(r.name, []))) if r.name in sampled else r
                   for r in results]
        quarantined = routed.quarantined
        results.append(_share_result(contract, rows_in, quarantined))
        if stopping(results):  # nothing of a failed batch is published: its dates keep no valid partition
            partitions.remove(p, contract.valid_dataset, interval)
            valid = rows_in - quarantined
        else:
            valid = batch.publish_valid()
    outcome = ContractOutcome(p.spec.name, dataset, interval.first.isoformat(), interval.last.isoformat(), run_id,
                              suite.name, rows_in, valid, quarantined, results, report, batch.engine)
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
