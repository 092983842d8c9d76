"""The shape of Loopline's DAGs, once: a pipeline's DAG file is a call to one of these.

A data engineer adds a model pipeline by writing its spec (include/pipelines/<name>.yaml),
its contracts (expectations/) and two three-line DAG files calling `nightly_dag(<name>)` and
`retrain_dag(<name>)` (`loopline new-pipeline` writes all of them). The schedule, start and
end come from the spec; so do the contract tasks. Reading the spec is a local YAML read.
"""
from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference, Param, cross_downstream, task

from loopline.core.spec import PipelineSpec, load_spec, pipeline_names
from loopline_airflow import stages
from loopline_airflow.alerting import deadline_missed, on_nightly_success, on_task_failure
from loopline_airflow.assets import bronze_ingested, retrain_request
from loopline_airflow.operators import ContractOperator
from loopline_airflow.sensors import NewDataSensor
from loopline_airflow.timetables import IntervalTimetable

START = pendulum.datetime(2024, 1, 1, tz="UTC")  # earliest date the manual DAGs' backfills can reach
DATE_FORM = {"type": ["null", "string"], "format": "date"}
SPARK_QUEUE = "spark"  # Celery workers that take Spark-bound tasks listen on it (infra/stack.py)


def _pipeline_choice() -> Param:
    """A pipeline is picked from those with a spec, never typed: the name reaches paths and SQL."""
    return Param(type="string", enum=pipeline_names(), description="pipeline (one with a spec in include/pipelines)")


def _default_args(spec: PipelineSpec | None = None) -> dict:
    """Owner and retries; a time limit per attempt (the spec's `timeouts`, or an hour for the
    manual DAGs), so that no task waits forever on a service that stopped answering; and an
    alert to the pipeline's channels when a task fails for good."""
    minutes = spec.timeouts.default_minutes if spec else 60
    return {"owner": "loopline", "retries": 2, "retry_delay": timedelta(seconds=20),
            "execution_timeout": timedelta(minutes=minutes),
            "on_failure_callback": on_task_failure(spec.name if spec else None)}


def _deadline(spec: PipelineSpec) -> DeadlineAlert | None:
    """The spec's `deadline_hours`: a run not successful that long after its logical date (a
    scheduled run's: the end of its interval) alerts. Anchored on the logical date, not on
    queued_at: Airflow 3.3 cannot clear a run whose deadline references queued_at
    (apache/airflow#70368, an HTTP 500 in the UI)."""
    if spec.deadline_hours is None:
        return None
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=timedelta(hours=spec.deadline_hours),
                         callback=AsyncCallback(deadline_missed, kwargs={"pipeline": spec.name,
                                                                         "deadline_hours": spec.deadline_hours}))


def _timed(spec: PipelineSpec, task_id: str) -> dict:
    """The task's own time limit from the spec (`validate_<dataset>` takes `validate`'s)."""
    name = "validate" if task_id.startswith("validate_") else task_id
    return {"task_id": task_id, "execution_timeout": timedelta(minutes=spec.timeouts.minutes(name))}


def _on_spark(spec: PipelineSpec, task_id: str) -> dict:
    """A Spark-bound task: timed, and on the Celery queue of the workers set aside for Spark
    work (the cluster profile). The LocalExecutor ignores queues."""
    return {**_timed(spec, task_id), "queue": SPARK_QUEUE}


def _utc(day) -> pendulum.DateTime:
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC")


def schedule_of(spec: PipelineSpec) -> IntervalTimetable:
    """The spec's schedule over data intervals: a run starts once its interval is over, and
    processes every event date in it.

    (A plain cron string gives Airflow 3's CronTriggerTimetable, whose logical date is the
    trigger time, i.e. an interval that has only just begun.)
    """
    return IntervalTimetable(spec.cron, "UTC", spec.end_date)


def nightly_dag(pipeline: str, doc_md: str | None = None, scheduled: bool = True) -> DAG:
    """wait_for_data → ingest → validate_<dataset> (one per contract) → check_feedback and train
    side by side → register → score → monitor → request_retraining, for every date of the run's
    interval; beside them, once validated: late_reruns → rerun_late_intervals."""
    spec = load_spec(pipeline)
    with DAG(
        dag_id=f"{pipeline}_nightly", schedule=schedule_of(spec) if scheduled else None,
        start_date=_utc(spec.start_date), catchup=False,
        max_active_runs=1, is_paused_upon_creation=True, doc_md=doc_md, tags=["loopline", pipeline, "nightly"],
        default_args=_default_args(spec), deadline=_deadline(spec), on_success_callback=on_nightly_success(pipeline),
        params={
            "first_date": Param(None, **DATE_FORM, description="first event date to process (empty: the run's "
                                "data interval)"),
            "last_date": Param(None, **DATE_FORM, description="last event date to process (empty: first_date)"),
            "retrain": Param(True, type="boolean", description="train a candidate; off: ingest, validate and "
                             "score with the champion only"),
        },
    ) as dag:
        # The sensor has its own limit (ingest.wait_timeout_minutes), enforced by its trigger.
        waited = NewDataSensor(task_id="wait_for_data", pipeline=pipeline, execution_timeout=None)
        ingested = task(stages.ingest, **_on_spark(spec, "ingest"), outlets=[bronze_ingested(pipeline)])(pipeline)
        validated = [ContractOperator(**_on_spark(spec, f"validate_{dataset}"), pipeline=pipeline, dataset=dataset)
                     for dataset in sorted(spec.contracts)]
        # Beside training (which reads no alias): a champion that lost on returned labels is
        # rolled back before register, so the gate and today's scoring see the restored one.
        feedback = task(stages.check_feedback, **_timed(spec, "check_feedback"))(pipeline)
        trained = task(stages.train, **_timed(spec, "train"))(pipeline)
        registered = task(stages.register, **_timed(spec, "register"))(pipeline, trained)
        # Scoring runs when training was skipped (cold start, or no new labels) but never
        # after a failure upstream: a broken contract stops the whole line.
        scored = task(stages.score, **_on_spark(spec, "score"), trigger_rule="none_failed")(pipeline)
        drift = task(stages.monitor, **_on_spark(spec, "monitor"))(pipeline, scored)
        requested = task(stages.request_retraining, **_timed(spec, "request_retraining"),
                         outlets=[retrain_request(pipeline)])(pipeline, drift)
        # Late events for intervals validated before they came: rerun those intervals (after
        # this run: runs of the DAG take turns), unless the spec leaves that to a person. Off
        # the line's critical path: what ingest landed late is known once today's data passed.
        late = task(stages.late_reruns, **_timed(spec, "late_reruns"), trigger_rule="none_failed")(pipeline)
        rerun = TriggerDagRunOperator.partial(**_timed(spec, "rerun_late_intervals"), trigger_dag_id=f"{pipeline}_nightly",
                                              skip_when_already_exists=True).expand_kwargs(late)
        waited >> ingested >> validated
        cross_downstream(validated, [feedback, trained, late])
        feedback >> registered >> scored
        feedback >> scored  # also when register is skipped (no candidate today)
    return dag


def retrain_dag(pipeline: str, doc_md: str | None = None) -> DAG:
    """train (recent window) → register through the same gate → close_retrain_request; scheduled
    on the retrain-request asset, or triggered by hand with the form (labels known on which
    date, window, reason)."""
    spec = load_spec(pipeline)
    with DAG(
        dag_id=f"{pipeline}_retrain", schedule=[retrain_request(pipeline)], start_date=START, catchup=False,
        max_active_runs=1, is_paused_upon_creation=False, doc_md=doc_md,
        tags=["loopline", pipeline, "retraining"], default_args=_default_args(spec),
        params={
            "last_date": Param(None, **DATE_FORM, description="train on labels known on this date (empty: the "
                               "asset event's date, or today)"),
            "window_days": Param(None, type=["null", "integer"], minimum=1,
                                 description="learn from this many recent days (empty: the spec's retrain window)"),
            "reason": Param(None, type=["null", "string"], description="why (logged with the run)"),
        },
    ) as dag:
        trained = task(stages.train, **_timed(spec, "train"))(pipeline, recent_only=True)
        registered = task(stages.register, **_timed(spec, "register"))(pipeline, trained)
        # Whatever happened, the request is closed with its outcome, so throttling sees it. A
        # teardown (with no setup: it runs once register is done, however it ended) leaves the
        # run's state to train and register, so a failed retrain still fails the run.
        registered >> task(stages.close_retrain_request, **_timed(spec, "close_retrain_request"))(pipeline).as_teardown()
    return dag


def tiering_dag(doc_md: str | None = None) -> DAG:
    """Manual: copy a dataset partition of any pipeline to another storage tier (trigger form)."""
    with DAG(
        dag_id="loopline_tier_copy", schedule=None, start_date=START, catchup=False, doc_md=doc_md,
        is_paused_upon_creation=False, tags=["loopline", "storage"], default_args=_default_args(),
        params={
            "pipeline": _pipeline_choice(),
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
            "pipeline": _pipeline_choice(),
            "to_version": Param(None, type=["null", "integer"], minimum=1,
                                description="version to restore; empty = previous_champion"),
            "reason": Param(type="string", minLength=3, description="why: recorded in loopline.alias_history"),
        },
    ) as dag:
        task(stages.rollback, task_id="rollback")("{{ params.pipeline }}", "{{ params.to_version }}",
                                                  "{{ params.reason }}")
    return dag
