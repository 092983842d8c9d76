"""Data contracts on the real services: GX on Spark, quarantine and valid data on the lake
tiers, per-rule results in PostgreSQL, Data Docs on the object store."""
from __future__ import annotations

from datetime import date

import pandas as pd
import pyarrow.parquet as pq
import pytest

from contract_data import EVENTS_DDL, payments, record_batch, write_bronze
from loopline.contracts.validate import DUPLICATE_RULE, SHARE_RULE, ContractViolation, validate_dataset
from loopline.core import db
from loopline.core.interval import Interval
from loopline.core.pipeline import Pipeline
from loopline.core.storage import read_stored

DAY = date(2026, 4, 2)
ROWS = 800


@pytest.fixture(scope="module")
def p(make_pipeline) -> Pipeline:
    return Pipeline.load(make_pipeline())


def table(location):
    return pq.read_table(location.arrow_path, filesystem=location.filesystem()) if location.exists() else None


def stored(p: Pipeline, day: date, run_id: str) -> dict[str, dict]:
    with db.connect(p.settings.db_url) as conn:
        rows = db.fetch_all(conn, "SELECT * FROM loopline.contract_results WHERE pipeline=%s AND logical_date=%s "
                                  "AND run_id=%s", (p.spec.name, day, run_id))
    return {r["rule"]: r for r in rows}


def test_a_good_batch_passes_whole_with_evidence(p):
    write_bronze(p, "bronze_events", DAY, payments(DAY, ROWS))
    outcome = validate_dataset(p, "bronze_events", Interval.of_day(DAY), "run-good")
    assert outcome.passed and (outcome.rows_in, outcome.rows_valid, outcome.rows_quarantined) == (ROWS, ROWS, 0)
    assert table(p.lake.location("valid_events", DAY)).num_rows == ROWS
    results = stored(p, DAY, "run-good")
    assert set(results) == {r.name for r in outcome.results} and all(r["success"] for r in results.values())
    assert len(results) >= 15 and results["volume"]["observed_value"] == ROWS
    page = read_stored(outcome.report_uri)  # the Data Docs page, from the object store
    assert "card_payments_bronze" in page.decode()


def test_each_kind_of_bad_row_is_quarantined_naming_the_rules_it_breaks(p):
    day = date(2026, 4, 3)
    frame = payments(day, ROWS)
    bad = {  # row position -> (change, rules the row breaks)
        0: ({"amount": -5.0}, {"amount:values_to_be_between"}),
        1: ({"merchant_category": "crypto"}, {"merchant_category:values_to_be_in_set"}),
        2: ({"channel": "fax"}, {"channel:values_to_be_in_set"}),
        3: ({"country": "de"}, {"country:values_to_match_regex"}),
        4: ({"customer_tx_count_30d": -1}, {"customer_tx_count_30d:values_to_be_between"}),
        5: ({"customer_avg_amount_30d": 90000.0}, {"customer_avg_amount_30d:values_to_be_between"}),
        6: ({"transaction_id": None}, {"transaction_id:values_to_not_be_null"}),
        7: ({"transaction_id": "tx-dup"}, {"transaction_id:values_to_be_unique"}),
        8: ({"transaction_id": "tx-dup"}, {"transaction_id:values_to_be_unique"}),
        9: ({"amount": 0.0, "channel": "telex"}, {"amount:values_to_be_between", "channel:values_to_be_in_set"}),
    }
    for position, (change, _) in bad.items():
        for column, value in change.items():
            frame.loc[position, column] = value
    write_bronze(p, "bronze_events", day, frame)

    outcome = validate_dataset(p, "bronze_events", Interval.of_day(day), "run-bad-rows")

    quarantine = table(p.lake.location("quarantine", day, subdir="valid_events")).to_pandas()
    reasons = {int(row.source_offset): set(row.reason.split("; ")) for row in quarantine.itertuples()}
    assert reasons == {position: rules for position, (_, rules) in bad.items()}
    assert set(quarantine["run_id"]) == {"run-bad-rows"}
    valid = table(p.lake.location("valid_events", day))
    assert valid.num_rows + len(quarantine) == ROWS == outcome.rows_in
    assert outcome.passed and outcome.rows_quarantined == len(bad)
    results = stored(p, day, "run-bad-rows")
    counts = {rule: r["unexpected_count"] for rule, r in results.items() if r["severity"] == "row"}
    assert counts["amount:values_to_be_between"] == 2 and counts["transaction_id:values_to_be_unique"] == 2
    assert sorted(results["channel:values_to_be_in_set"]["sample"]) == ["fax", "telex"]  # evidence: the bad values


UNIQUE_ID = "transaction_id:values_to_be_unique"
DUPLICATE_POLICIES = {  # spec exact_duplicates -> (kept copy of payment 10, quarantined copies with their reason)
    "default: first ingested": ({}, (0, 10), {(1, 5): DUPLICATE_RULE, (2, 6): DUPLICATE_RULE, (1, 7): DUPLICATE_RULE}),
    "first by offset": ({"first_by": ["source_offset"]}, (1, 5),  # payment 20's copy (offset 7) comes first too
                        {(0, 10): DUPLICATE_RULE, (2, 6): DUPLICATE_RULE, (0, 20): DUPLICATE_RULE}),
    "keep none": ({"keep": "none"}, None, {(0, 10): UNIQUE_ID, (1, 5): UNIQUE_ID, (2, 6): UNIQUE_ID,
                                          (0, 20): UNIQUE_ID, (1, 7): UNIQUE_ID}),
}


@pytest.mark.parametrize("policy", DUPLICATE_POLICIES)
def test_exact_duplicates_keep_the_copy_the_spec_names_and_quarantine_the_rest(make_pipeline, policy):
    setting, kept, quarantined = DUPLICATE_POLICIES[policy]
    p = Pipeline.load(make_pipeline(contracts={"bronze_events": {
        "suite": "card_payments_bronze", "valid_dataset": "valid_events", "exact_duplicates": setting}}))
    day = date(2026, 4, 5)
    frame = payments(day, ROWS)
    retries = frame.iloc[[10, 10, 20]].assign(source_partition=[1, 2, 1], source_offset=[5, 6, 7])  # a producer's
    write_bronze(p, "bronze_events", day, pd.concat([frame, retries], ignore_index=True))

    outcome = validate_dataset(p, "bronze_events", Interval.of_day(day), "run-duplicates")

    rejected = table(p.lake.location("quarantine", day, subdir="valid_events")).to_pandas()
    assert dict(zip(zip(rejected["source_partition"], rejected["source_offset"]), rejected["reason"])) == quarantined
    valid = table(p.lake.location("valid_events", day)).to_pandas().set_index("transaction_id")
    assert len(valid) + len(rejected) == ROWS + len(retries) == outcome.rows_in
    if kept:
        row = valid.loc[frame.loc[10, "transaction_id"]]
        assert (row["source_partition"], row["source_offset"]) == kept
        assert stored(p, day, "run-duplicates")[DUPLICATE_RULE]["unexpected_count"] == len(quarantined)
    else:
        assert DUPLICATE_RULE not in stored(p, day, "run-duplicates")


def test_rerunning_a_date_replaces_its_outputs(p):
    day = date(2026, 4, 4)
    frame = payments(day, ROWS)
    frame.loc[0, "channel"] = "fax"
    write_bronze(p, "bronze_events", day, frame)
    first = validate_dataset(p, "bronze_events", Interval.of_day(day), "run-1")
    second = validate_dataset(p, "bronze_events", Interval.of_day(day), "run-1")
    assert (first.rows_valid, first.rows_quarantined) == (second.rows_valid, second.rows_quarantined) == (ROWS - 1, 1)
    assert table(p.lake.location("valid_events", day)).num_rows == ROWS - 1
    assert table(p.lake.location("quarantine", day, subdir="valid_events")).num_rows == 1


def test_rows_of_an_ingest_batch_that_was_never_recorded_are_not_read(p):
    day = date(2026, 4, 5)
    write_bronze(p, "bronze_events", day, payments(day, ROWS))
    crashed = payments(day, 40, seed=9)  # ingest wrote this batch's folder, then died before recording it
    crashed["transaction_id"] += "-b1"
    p.spark().createDataFrame(crashed, EVENTS_DDL).write.parquet(
        p.lake.location("bronze_events", day).child("ingest_batch=1").spark_uri)
    before = validate_dataset(p, "bronze_events", Interval.of_day(day), "run-before-record")
    assert (before.rows_in, before.rows_valid) == (ROWS, ROWS)

    record_batch(p, "bronze_events", 1, {day.isoformat(): len(crashed)})  # the rerun of the batch recorded it
    after = validate_dataset(p, "bronze_events", Interval.of_day(day), "run-after-record")
    assert (after.rows_in, after.rows_valid) == (ROWS + 40, ROWS + 40)
    assert table(p.lake.location("valid_events", day)).num_rows == ROWS + 40


def _too_few(frame):
    return frame.head(100)


def _extra_column(frame):
    return frame.assign(coupon="SPRING")


def _stale(frame):
    return frame.assign(event_time=frame["event_time"].dt.floor("D") + (frame["event_time"] - frame["event_time"].dt.floor("D")) / 2)


def _missing_customers(frame):
    frame.loc[frame.index[:20], "customer_id"] = None
    return frame


def _inflated_amounts(frame):
    return frame.assign(amount=frame["amount"] * 30)


def _one_customer(frame):
    return frame.assign(customer_id="c00001")


def _many_bad_rows(frame):
    frame.loc[frame.index[:40], "channel"] = "fax"
    return frame


BATCH_FAILURES = [  # (change to a good batch, extra columns' DDL, the rule that must stop the line)
    (_too_few, "", "volume"),
    (_extra_column, ", coupon string", "schema"),
    (_stale, "", "freshness"),
    (_missing_customers, "", "customer_id:null_rate"),
    (_inflated_amounts, "", "amount:mean_to_be_between"),
    (_one_customer, "", "customer_id:proportion_of_unique_values_to_be_between"),
    (_many_bad_rows, "", SHARE_RULE),
]


@pytest.mark.parametrize("change, extra_ddl, rule", BATCH_FAILURES, ids=[rule for _, _, rule in BATCH_FAILURES])
def test_each_batch_level_failure_stops_the_line(p, change, extra_ddl, rule):
    from contract_data import EVENTS_DDL

    day = date(2026, 4, 10)
    write_bronze(p, "bronze_events", day, payments(day, ROWS))
    assert validate_dataset(p, "bronze_events", Interval.of_day(day), "run-before").passed  # the date had valid data...
    write_bronze(p, "bronze_events", day, change(payments(day, ROWS)), EVENTS_DDL + extra_ddl)

    with pytest.raises(ContractViolation, match="line stops") as stopped:
        validate_dataset(p, "bronze_events", Interval.of_day(day), f"run-{rule}")

    outcome = stopped.value.outcome
    assert rule in {r.name for r in outcome.results if not r.success}
    assert rule in str(stopped.value)
    assert not p.lake.location("valid_events", day).exists()  # ...which downstream can no longer read
    assert outcome.rows_valid + outcome.rows_quarantined == outcome.rows_in
    with db.connect(p.settings.db_url) as conn:
        verdict = db.fetch_all(conn, "SELECT success FROM loopline.contract_validations WHERE pipeline=%s AND "
                                     "logical_date=%s AND run_id=%s", (p.spec.name, day, f"run-{rule}"))
    assert verdict == [{"success": False}]
    assert stored(p, day, f"run-{rule}")[rule]["success"] is False


def test_a_rule_on_a_missing_column_stops_the_line_and_names_the_column(p):
    from contract_data import EVENTS_DDL

    day = date(2026, 4, 12)
    write_bronze(p, "bronze_events", day, payments(day, ROWS).drop(columns="channel"),
                 EVENTS_DDL.replace("channel string, ", ""))

    with pytest.raises(ContractViolation, match="line stops") as stopped:
        validate_dataset(p, "bronze_events", Interval.of_day(day), "run-no-channel")

    assert 'channel:values_to_be_in_set: could not be evaluated: Error: The column "channel"' in str(stopped.value)
    outcome = stopped.value.outcome
    assert (outcome.rows_in, outcome.rows_quarantined) == (ROWS, 0)  # the other row rules still ran
    assert stored(p, day, "run-no-channel")["channel:values_to_be_in_set"]["error"].count('"channel"') == 1


def test_a_date_without_labels_is_an_empty_valid_batch(p):
    outcome = validate_dataset(p, "bronze_labels", Interval.of_day(date(2026, 4, 20)), "run-no-labels")
    assert outcome.passed and outcome.rows_in == 0


def test_a_drafted_suite_accepts_its_reference_partition_and_names_every_rule(p, tmp_path):
    import json
    import subprocess
    import sys

    from loopline.contracts.gx_validation import suite_parameters, validate_frame
    from loopline.contracts.rules import parse_suite

    day = date(2026, 4, 25)
    write_bronze(p, "bronze_events", day, payments(day, ROWS))
    output = tmp_path / "drafted.json"
    done = subprocess.run([sys.executable, "-m", "loopline.ops.cli", "contract", "draft", "bronze_events", "--from",
                           day.isoformat(), "--pipeline", p.spec.name, "--output", str(output)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    suite = parse_suite(json.loads(output.read_text()))
    assert {"row", "batch", "warn"} == {r.severity for r in suite.rules} and len(suite.rules) > 20
    frame = p.spark().read.parquet(p.lake.location("bronze_events", day).spark_uri)
    results = validate_frame(suite, frame, suite_parameters(Interval.of_day(day), 2), "draft-check")
    assert [r.describe() for r in results if not r.success] == []


def test_drafting_a_date_without_data_says_so(p):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "loopline.ops.cli", "contract", "draft", "bronze_events", "--from",
                           "1999-01-01", "--to", "1999-01-03", "--pipeline", p.spec.name], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and "no bronze_events partition from 1999-01-01 to 1999-01-03" in done.stderr
