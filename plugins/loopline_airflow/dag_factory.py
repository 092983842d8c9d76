"""The shape of Loopline's DAGs, once: a pipeline's DAG file is a call to one of these.

A data engineer adds a model pipeline by writing its spec (include/pipelines/<name>.yaml),
its contract (expectations/) and a three-line DAG file calling `nightly_dag(<name>)`.
"""
from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, task

from loopline.spec import NAME_PATTERN
from loopline_airflow import stages
from loopline_airflow.assets import bronze_ingested, retrain_request
from loopline_airflow.operators import ContractOperator
from loopline_airflow.sensors import NewDataSensor

START = pendulum.datetime(2024, 1, 1, tz="UTC")  # earliest date a backfill can reach


def _default_args() -> dict:
    return {"owner": "loopline", "retries": 2, "retry_delay": timedelta(seconds=20)}


def daily_after_midnight() -> CronDataIntervalTimetable:
    """One run per UTC day, started once the day is over; its logical date is the day it covers.

    (A plain "@daily" string gives Airflow 3's CronTriggerTimetable, whose logical date is the
    trigger time, i.e. the day that has only just begun.)
    """
    return CronDataIntervalTimetable("0 0 * * *", timezone="UTC")


def contracted_datasets(pipeline: str) -> list[str]:
    """The datasets with a contract: read from the spec file (a local YAML read, no service)."""
    from loopline.spec import load_spec

    return sorted(load_spec(pipeline).contracts)


def nightly_dag(pipeline: str, doc_md: str | None = None, scheduled: bool = True) -> DAG:
    """wait_for_data → ingest → validate_<dataset> (one per contract) → check_feedback → train →
    register → score → monitor → request_retraining."""
    with DAG(
        dag_id=f"{pipeline}_nightly", schedule=daily_after_midnight() if scheduled else None, start_date=START, catchup=False, max_active_runs=1,
        is_paused_upon_creation=True, doc_md=doc_md, tags=["loopline", pipeline, "nightly"],
        default_args=_default_args(),
    ) as dag:
        waited = NewDataSensor(task_id="wait_for_data", pipeline=pipeline)
        ingested = task(stages.ingest, task_id="ingest", outlets=[bronze_ingested(pipeline)])(pipeline)
        validated = [ContractOperator(task_id=f"validate_{dataset}", pipeline=pipeline, dataset=dataset)
                     for dataset in contracted_datasets(pipeline)]
        # Before training: a champion that lost on returned labels is rolled back, so the gate
        # and today's scoring see the restored one.
        feedback = task(stages.check_feedback, task_id="check_feedback")(pipeline)
        trained = task(stages.train, task_id="train")(pipeline)
        registered = task(stages.register, task_id="register")(pipeline, trained)
        # Scoring runs when training was skipped (cold start, or no new labels) but never
        # after a failure upstream: a broken contract stops the whole line.
        scored = task(stages.score, task_id="score", trigger_rule="none_failed")(pipeline)
        drift = task(stages.monitor, task_id="monitor")(pipeline, scored)
        requested = task(stages.request_retraining, task_id="request_retraining",
                         outlets=[retrain_request(pipeline)])(pipeline, drift)
        waited >> ingested >> validated >> feedback >> trained
        registered >> scored
        drift >> requested
    return dag


def retrain_dag(pipeline: str, doc_md: str | None = None) -> DAG:
    """train (recent window) → register through the same gate; scheduled on the retrain-request asset."""
    with DAG(
        dag_id=f"{pipeline}_retrain", schedule=[retrain_request(pipeline)], start_date=START, catchup=False,
        max_active_runs=1, is_paused_upon_creation=False, doc_md=doc_md,
        tags=["loopline", pipeline, "retraining"], default_args=_default_args(),
    ) as dag:
        trained = task(stages.train, task_id="train")(pipeline, recent_only=True)
        task(stages.register, task_id="register")(pipeline, trained)
    return dag


def tiering_dag(doc_md: str | None = None) -> DAG:
    """Manual: copy a dataset partition of any pipeline to another storage tier (trigger form)."""
    with DAG(
        dag_id="loopline_tier_copy", schedule=None, start_date=START, catchup=False, doc_md=doc_md,
        is_paused_upon_creation=False, tags=["loopline", "storage"], default_args=_default_args(),
        params={
            "pipeline": Param(type="string", pattern=NAME_PATTERN, description="pipeline spec name"),
            "dataset": Param(type="string", description="dataset named in the spec's storage"),
            "date": Param(type="string", format="date", description="partition date (YYYY-MM-DD)"),
            "to_tier": Param("cloud", type="string", description="target tier in include/storage.yaml"),
        },
    ) as dag:
        task(stages.copy_to_tier, task_id="copy_to_tier")(
            "{{ params.pipeline }}", "{{ params.dataset }}", "{{ params.date }}", "{{ params.to_tier }}")
    return dag


def rollback_dag(doc_md: str | None = None) -> DAG:
    """Manual: make the previous (or a named) model version champion again, with an audit row."""
    with DAG(
        dag_id="loopline_rollback", schedule=None, start_date=START, catchup=False, doc_md=doc_md,
        is_paused_upon_creation=False, tags=["loopline", "registry"],
        default_args=_default_args(),  # a refused rollback fails at once (AirflowFailException); outages retry
        params={
            "pipeline": Param(type="string", pattern=NAME_PATTERN, description="pipeline spec name"),
            "to_version": Param(None, type=["null", "integer"], minimum=1,
                                description="version to restore; empty = previous_champion"),
            "reason": Param(type="string", minLength=3, description="why: recorded in loopline.alias_history"),
        },
    ) as dag:
        task(stages.rollback, task_id="rollback")("{{ params.pipeline }}", "{{ params.to_version }}",
                                                  "{{ params.reason }}")
    return dag
