"""Data contracts: a Great Expectations suite (a reviewed file in expectations/) per dataset.

A failing batch stops the line: the task raises ContractViolation naming each broken
expectation, and nothing downstream (training, promotion, scoring) runs on that batch.
Every result, pass or fail, is stored in PostgreSQL so quality can be queried over time.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from loopline import db
from loopline.storage import DatasetLocation

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"


class ContractViolation(RuntimeError):
    """A batch broke its data contract; the message lists every failed expectation."""


@dataclass(frozen=True)
class ContractResult:
    suite: str
    dataset: str
    logical_date: str
    success: bool
    evaluated: int
    failed: list[dict] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"contract {self.suite} on {self.dataset} {self.logical_date}: "
                 f"{self.evaluated - len(self.failed)}/{self.evaluated} expectations passed"]
        lines += [f"  FAILED {f['expectation']}({f['column'] or 'table'}): observed {f['observed']}, "
                  f"unexpected {f['unexpected_count']}" for f in self.failed]
        return "\n".join(lines)


def load_suite(name: str, directory: Path = EXPECTATIONS_DIR) -> dict:
    path = directory / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no contract suite {path.name} in {directory}; the pipeline spec names it")
    return json.loads(path.read_text())


def run_suite(suite: dict, frame) -> tuple[bool, list[dict], int]:
    """Validate a pandas DataFrame with GX 1.x; return (success, failed expectations, evaluated)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    gx_suite = context.suites.add(ExpectationSuite(**suite))
    batch = (context.data_sources.add_pandas("lake").add_dataframe_asset(suite["name"])
             .add_batch_definition_whole_dataframe("partition"))
    validation = context.validation_definitions.add(gx.ValidationDefinition(name=suite["name"], data=batch, suite=gx_suite))
    outcome = validation.run(batch_parameters={"dataframe": frame})
    failed = [
        {
            "expectation": r.expectation_config.type,
            "column": r.expectation_config.kwargs.get("column"),
            "observed": r.result.get("observed_value"),
            "unexpected_count": r.result.get("unexpected_count"),
            "sample": r.result.get("partial_unexpected_list", [])[:5],
        }
        for r in outcome.results if not r.success
    ]
    return bool(outcome.success), failed, len(outcome.results)


def validate_partition(db_url: str, pipeline: str, suite_name: str, dataset: str, location: DatasetLocation,
                       logical_date: date, run_id: str) -> ContractResult:
    """Validate one bronze partition, store the result, raise ContractViolation if it fails."""
    import pyarrow.parquet as pq

    frame = pq.read_table(location.arrow_path, filesystem=location.filesystem()).to_pandas()
    success, failed, evaluated = run_suite(load_suite(suite_name), frame)
    result = ContractResult(suite_name, dataset, logical_date.isoformat(), success, evaluated, failed)
    with db.connect(db_url) as conn:
        db.upsert(conn, "loopline.contract_results", {
            "pipeline": pipeline, "dataset": dataset, "logical_date": logical_date, "run_id": run_id,
            "suite": suite_name, "success": success, "evaluated": evaluated, "failed": failed,
        }, key=["pipeline", "dataset", "logical_date"])
    if not success:
        raise ContractViolation(result.describe() + "\nThe line stops here for this date: the champion is unchanged. "
                                "Fix the producer (or the contract, in review) and rerun the date.")
    return result
