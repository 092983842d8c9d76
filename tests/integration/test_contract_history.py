"""A contract change must not fail history: every reviewed suite is run here against the
demo's good partitions, so a rule that would have stopped the line on them fails this test
before the change is merged.

The history is the demo's own data (`make demo` simulates with these settings; the simulator
is a pure function of seed and date): 12 days, the last two with the drift scenario, which
must trigger retraining, not stop the line. The messages go through the real ingest parser
(loopline.ingest.parsing.classify) on Spark, so the partitions hold what ingest would land.
"""
from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from loopline.contracts.gx_validation import suite_parameters, validate_frame
from loopline.contracts.rules import load_suite
from loopline.contracts.validate import stopping
from loopline.core.interval import Interval
from loopline.core.pipeline import Pipeline
from loopline.ingest.landing import LINEAGE_COLUMNS
from loopline.ingest.parsing import classify
from card_fraud_simulator import SimulationConfig, messages_for_day

FIRST = date(2026, 6, 1)
DAYS = [FIRST + timedelta(days=i) for i in range(12)]
DEMO = SimulationConfig(seed=42, transactions_per_day=3000, drift_from=DAYS[-2], malformed_rate=0.002,
                        invalid_rate=0.002, world_start=FIRST)  # the `loopline simulate` defaults make demo uses


@pytest.fixture(scope="module")
def history():
    """Bronze rows of every source over the demo days, as one cached Spark frame per source."""
    p = Pipeline.load("card_fraud")
    messages = [m for day in DAYS for m in messages_for_day(DEMO, day)]
    frames = {}
    for name, source in p.spec.sources.items():
        kind = "events" if name == "events" else "labels"
        raw = pd.DataFrame([{"key": m.key, "value": m.value, "timestamp": pd.Timestamp(m.timestamp_ms, unit="ms"),
                             "source": source.topic, "source_partition": 0, "source_offset": offset}
                            for offset, m in enumerate(x for x in messages if x.topic_kind == kind)])
        frame = p.spark().createDataFrame(raw, "key binary, value binary, timestamp timestamp, source string, "
                                               "source_partition int, source_offset bigint")
        accepted = (classify(frame, source.versions, p.spec.ingest.max_record_bytes).where("reject_reason IS NULL")
                    .selectExpr("record.*", *LINEAGE_COLUMNS, "0 AS ingest_batch").persist())
        frames[source.dataset] = (source, accepted)
    yield p, frames
    for _, accepted in frames.values():
        accepted.unpersist()


@pytest.mark.parametrize("dataset", ["bronze_events", "bronze_labels"])
def test_reviewed_suites_pass_every_good_day_of_the_demo_history(history, dataset):
    from pyspark.sql import functions as F

    p, frames = history
    source, accepted = frames[dataset]
    contract = p.spec.contracts[dataset]
    suite = load_suite(contract.suite)
    problems = {}
    for day in DAYS:
        partition = accepted.where(F.to_date(source.time_field) == F.lit(day))
        results = validate_frame(suite, partition, suite_parameters(Interval.of_day(day), contract.freshness_hours), f"history-{day}")
        rows = max(r.element_count or 0 for r in results)
        bad_rows = sum(r.unexpected_count or 0 for r in results if r.severity == "row")  # upper bound of refused rows
        stops = [r.describe() for r in stopping(results)]
        if rows and bad_rows / rows > contract.max_quarantined_share:
            stops.append(f"{bad_rows} of {rows} rows break row rules, above max_quarantined_share")
        if stops:
            problems[str(day)] = stops
    assert problems == {}, f"{contract.suite} would have stopped the line on good demo days: {problems}"
