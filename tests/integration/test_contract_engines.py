"""The two contract engines on the same data: Spark, and the in-process one a small batch gets
(spec `engine.in_process_below_rows`). Same verdicts, GX figures, samples, routed rows and
Parquet types, for a batch that passes with bad rows and exact duplicates and for one that fails."""
from __future__ import annotations

import math
from contextlib import closing
from datetime import date

import pandas as pd
import pyarrow.parquet as pq
import pytest

from contract_data import payments, write_bronze
from loopline.contracts.rules import load_suite
from loopline.contracts.validate import ContractOutcome, ContractViolation, open_batch, validate_dataset
from loopline.core.interval import Interval
from loopline.core.pipeline import Pipeline

DAY = date(2026, 5, 6)
ENGINES = {"spark": 0, "in_process": 1_000_000}  # spec engine.in_process_below_rows


@pytest.fixture(scope="module")
def pipelines(make_pipeline) -> dict[str, Pipeline]:
    return {engine: Pipeline.load(make_pipeline(engine={"in_process_below_rows": below}))
            for engine, below in ENGINES.items()}


def bad_batch(rows: int) -> pd.DataFrame:
    """Payments with rows breaking each kind of row rule, nulls, and a producer's retries."""
    frame = payments(DAY, rows)
    changes = {0: {"amount": -5.0}, 1: {"merchant_category": "crypto"}, 2: {"channel": "fax"}, 3: {"country": "de"},
               4: {"customer_tx_count_30d": -1}, 5: {"customer_avg_amount_30d": 90000.0}, 6: {"transaction_id": None},
               7: {"transaction_id": "tx-dup"}, 8: {"transaction_id": "tx-dup"}, 9: {"amount": 0.0, "channel": "x"},
               10: {"country": None}}  # a null passes every rule but not_be_null
    for position, change in changes.items():
        for column, value in change.items():
            frame.loc[position, column] = value
    retries = frame.iloc[[20, 20, 30]].assign(source_partition=[1, 2, 1], source_offset=[5, 6, 7])
    return pd.concat([frame, retries], ignore_index=True)


def run(p: Pipeline, frame: pd.DataFrame) -> ContractOutcome:
    write_bronze(p, "bronze_events", DAY, frame)
    try:
        return validate_dataset(p, "bronze_events", Interval.of_day(DAY), "run-engines")
    except ContractViolation as violation:
        return violation.outcome


def routed(p: Pipeline, dataset: str, subdir: str = "") -> pd.DataFrame | None:
    location = p.lake.location(dataset, DAY, subdir=subdir)
    if not location.exists():
        return None
    rows = pq.read_table(location.arrow_path, filesystem=location.filesystem()).to_pandas()
    return rows.sort_values(["source_partition", "source_offset"], ignore_index=True)


def same_figure(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def assert_same_outcome(outcomes: dict[str, ContractOutcome]) -> None:
    spark, local = outcomes["spark"], outcomes["in_process"]
    assert (spark.engine, local.engine) == ("spark", "in_process")
    assert (spark.passed, spark.rows_in, spark.rows_valid, spark.rows_quarantined) == \
        (local.passed, local.rows_in, local.rows_valid, local.rows_quarantined)
    by_name = {r.name: r for r in local.results}
    assert [r.name for r in spark.results] == list(by_name)
    for result in spark.results:
        other = by_name[result.name]
        assert (result.success, result.unexpected_count, result.element_count, result.sample, result.error) == \
            (other.success, other.unexpected_count, other.element_count, other.sample, other.error), result.name
        if result.expectation != "expect_column_values_to_be_of_type":  # named per engine: DoubleType / float64
            assert same_figure(result.observed_value, other.observed_value), result.name


def test_a_batch_with_bad_rows_and_retries_is_judged_and_routed_alike(pipelines):
    outcomes = {engine: run(p, bad_batch(800)) for engine, p in pipelines.items()}
    assert_same_outcome(outcomes)
    assert outcomes["spark"].passed and outcomes["spark"].rows_quarantined == 13  # 10 bad rows, 3 retries
    for dataset, subdir in [("quarantine", "valid_events"), ("valid_events", "")]:
        spark, local = (routed(pipelines[engine], dataset, subdir) for engine in ENGINES)
        pd.testing.assert_frame_equal(spark, local, check_dtype=True)
    schemas = {engine: p.spark().read.parquet(p.lake.location("valid_events", DAY).spark_uri).schema
               for engine, p in pipelines.items()}
    assert schemas["spark"].simpleString() == schemas["in_process"].simpleString()  # what training and scoring read is typed alike


def test_a_failing_batch_stops_alike_and_publishes_nothing(pipelines):
    outcomes = {engine: run(p, bad_batch(300)) for engine, p in pipelines.items()}  # the suite wants 500 rows
    assert_same_outcome(outcomes)
    assert not outcomes["spark"].passed
    assert all(routed(p, "valid_events") is None for p in pipelines.values())
    spark, local = (routed(pipelines[engine], "quarantine", "valid_events") for engine in ENGINES)
    pd.testing.assert_frame_equal(spark, local)


def test_the_spark_engine_keeps_the_rows_cached_until_the_batch_closes(pipelines):
    p = pipelines["spark"]
    source = p.spec.entity_source
    write_bronze(p, source.dataset, DAY, bad_batch(800))
    contract = p.spec.contracts[source.dataset]
    with closing(open_batch(p, contract, source, Interval.of_day(DAY), load_suite(contract.suite))) as batch:
        assert batch.engine == "spark" and batch.holds_cache
    assert not batch.holds_cache  # released on the server, not left to Python's garbage collector
