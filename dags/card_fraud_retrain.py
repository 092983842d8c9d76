"""
### card_fraud retraining

Scheduled on the `card_fraud_retrain_request` asset, which the nightly loop emits when feature
drift passes the spec's PSI threshold. Trains a candidate on the most recent days only
(`training.retrain_window_days`), then registers it through the same champion/challenger
gate as the nightly loop: it is promoted only if it beats the champion on its holdout.
"""
from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from loopline_airflow import stages
from loopline_airflow.assets import retrain_request

PIPELINE = "card_fraud"


@dag(
    dag_id=f"{PIPELINE}_retrain",
    schedule=[retrain_request(PIPELINE)],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    doc_md=__doc__,
    tags=["loopline", PIPELINE, "retraining"],
    default_args={"owner": "loopline", "retries": 2, "retry_delay": timedelta(seconds=20)},
)
def card_fraud_retrain():
    trained = task(stages.train, task_id="train")(PIPELINE, recent_only=True)
    task(stages.register, task_id="register")(PIPELINE, trained)


card_fraud_retrain()
