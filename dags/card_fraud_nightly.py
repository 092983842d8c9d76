"""
### card_fraud nightly loop

For one logical date: **ingest** the day's Kafka offset range (events and delayed labels) into
bronze Parquet, with malformed records quarantined → **validate** the bronze partition with
its Great Expectations contract (a failure stops the line) → **train** a LightGBM candidate
(MLflow run) → **register** it and promote it to `champion` if it beats the current one →
**score** the day with the champion (Parquet + `loopline.predictions`) → **monitor** drift
against the champion's training reference → **request retraining** (asset event) when drift
passes the threshold.

Every task is idempotent for its logical date: rerun any day and it overwrites its own
partition and rows. At cold start (too few labels) training is skipped and scoring waits for
a champion. Trigger by hand with a logical date, or backfill a range of dates.
"""
from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from loopline_airflow import stages
from loopline_airflow.assets import retrain_request

PIPELINE = "card_fraud"


@dag(
    dag_id=f"{PIPELINE}_nightly",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,
    doc_md=__doc__,
    tags=["loopline", PIPELINE, "nightly"],
    default_args={"owner": "loopline", "retries": 2, "retry_delay": timedelta(seconds=20)},
)
def card_fraud_nightly():
    ingested = task(stages.ingest, task_id="ingest")(PIPELINE)
    validated = task(stages.validate, task_id="validate")(PIPELINE)
    trained = task(stages.train, task_id="train")(PIPELINE)
    registered = task(stages.register, task_id="register")(PIPELINE, trained)
    scored = task(stages.score, task_id="score", trigger_rule="none_failed")(PIPELINE)
    drift = task(stages.monitor, task_id="monitor")(PIPELINE, scored)
    requested = task(stages.request_retraining, task_id="request_retraining",
                     outlets=[retrain_request(PIPELINE)])(PIPELINE, drift)
    ingested >> validated >> trained
    registered >> scored
    drift >> requested


card_fraud_nightly()
