import pandas as pd

from loopline.contracts import load_suite, run_suite


def good_rows(n=600):
    return pd.DataFrame({
        "transaction_id": [f"t{i}" for i in range(n)], "customer_id": ["c1"] * n,
        "event_time": pd.Timestamp("2026-11-01T10:00:00Z"), "amount": 12.5, "merchant_category": "grocery",
        "country": "DE", "channel": "pos", "is_new_device": False, "customer_tx_count_30d": 3,
        "customer_avg_amount_30d": 20.0, "schema_version": 1,
        "source": "t", "source_partition": 0, "source_offset": range(n), "ingest_batch": 0,
    })


def test_reviewed_suite_passes_a_good_batch():
    success, failed, evaluated = run_suite(load_suite("card_payments_bronze"), good_rows())
    assert success and failed == [] and evaluated >= 10


def test_each_broken_rule_is_named():
    rows = good_rows()
    rows.loc[0, "transaction_id"] = "t1"            # duplicate key
    rows.loc[1, "amount"] = -5.0                      # out of range
    rows.loc[2, "channel"] = "fax"                    # unknown value
    success, failed, _ = run_suite(load_suite("card_payments_bronze"), rows)
    broken = {(f["expectation"], f["column"]) for f in failed}
    assert not success
    assert broken == {("expect_column_values_to_be_unique", "transaction_id"),
                      ("expect_column_values_to_be_between", "amount"),
                      ("expect_column_values_to_be_in_set", "channel")}


def test_too_small_batch_fails_the_volume_rule():
    success, failed, _ = run_suite(load_suite("card_payments_bronze"), good_rows(50))
    assert not success
    assert [f["expectation"] for f in failed] == ["expect_table_row_count_to_be_between"]
