"""Failures alert whatever their cause, on a real local webhook: a task that fails for good
because the object store is down (really stopped), and a nightly run past its deadline."""
from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from contract_data import payments, write_bronze
from loopline.core.pipeline import Pipeline
from stack_access import run_stack

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 9, 1)


@pytest.fixture
def webhook(http_endpoint, monkeypatch):
    url, received = http_endpoint
    monkeypatch.setenv("LOOPLINE_ALERT_WEBHOOK_URL", url)
    return received


def airflow_base_url() -> str:
    from airflow.configuration import conf

    return conf.get("api", "base_url").rstrip("/")


def test_a_task_failing_for_good_on_a_stopped_object_store_alerts_once_with_its_error_and_log(make_pipeline,
                                                                                               webhook):
    from airflow.dag_processing.dagbag import DagBag

    p = Pipeline.load(make_pipeline())
    write_bronze(p, "bronze_labels", DAY, payments(DAY, 50))  # an on-prem partition, allowed on the cloud tier
    dag = DagBag(str(REPO / "dags" / "loopline_tier_copy.py")).dags["loopline_tier_copy"]
    for task in dag.tasks:
        task.retry_delay = timedelta(seconds=1)  # the retries stay; only the wait between them is shorter
    run_stack("stop", "object-store")
    try:
        run = dag.test(run_conf={"pipeline": p.spec.name, "dataset": "bronze_labels", "date": DAY.isoformat(),
                                 "to_tier": "cloud"})
    finally:
        run_stack("start", "object-store")

    assert run.state == "failed"
    [alert] = webhook  # after the last of three attempts, not one per attempt
    assert alert["pipeline"] == p.spec.name and alert["subject"] == "task copy_to_tier of loopline_tier_copy failed"
    assert alert["summary"].startswith("OSError: ") and "Could not connect" in alert["summary"], alert["summary"]
    assert alert["summary"].endswith("(attempt 3 of 3)"), alert["summary"]
    assert alert["run_id"] == run.run_id and alert["report_url"] is None
    log_url = f"{airflow_base_url()}/dags/loopline_tier_copy/runs/{quote(run.run_id)}/tasks/copy_to_tier?try_number=3"
    assert alert["log_url"] == log_url and f"log: {log_url}" in alert["text"]
    assert requests.get(log_url, timeout=30).status_code == 200  # the Airflow UI serves the task's page


def test_a_missed_deadline_alerts_the_pipelines_channels_with_the_run(make_pipeline, webhook):
    from loopline_airflow.alerting import deadline_missed

    p = Pipeline.load(make_pipeline())
    run = {"dag_id": f"{p.spec.name}_nightly", "run_id": "scheduled__2026-09-01", "state": "running",
           "run_type": "scheduled", "logical_date": "2026-09-01T00:00:00Z", "data_interval_start": "2026-09-01T00:00:00Z"}
    deadline = {"id": "1", "deadline_time": "2026-09-01T06:00:00Z"}
    for run_type in ("backfill", "manual"):  # past dates processed now: not held to the night's deadline
        asyncio.run(deadline_missed({"dag_run": {**run, "run_type": run_type}, "deadline": deadline}, p.spec.name, 6))
    assert webhook == []
    asyncio.run(deadline_missed({"dag_run": run, "deadline": deadline}, p.spec.name, 6))

    [alert] = webhook
    assert alert["subject"] == "nightly run missed its deadline" and alert["logical_date"] == "2026-09-01"
    assert "had not succeeded 6 h after its logical date" in alert["summary"] and "running" in alert["summary"]
    assert alert["log_url"] == f"{airflow_base_url()}/dags/{p.spec.name}_nightly/runs/scheduled__2026-09-01"
