"""Every failure reaches the pipeline's alert channels, whatever its cause.

- A task that fails for good (its retries spent) alerts with the pipeline, the dates, the
  task, the error and a link to its log: an object store that stopped answering counts as
  much as a broken contract.
- A scheduled nightly run that has not succeeded within the spec's `deadline_hours` of its
  logical date (the end of its interval) alerts from Airflow's triggerer. Backfills and runs
  by hand process past dates: they are not held to the night's deadline.

Stops that alert with their own evidence (a broken contract with its report, a tampered
model, too many rejects, non-finite predictions) raise LineStopped, so they alert once.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger(__name__)
SCHEDULED = "scheduled"  # the run type the nightly deadline applies to
MAX_ERROR_CHARS = 2000  # an alert quotes the error, not a whole stack of them


class LineStopped(AirflowFailException):
    """The task stopped the line and has alerted the pipeline's channels itself."""


def on_task_failure(pipeline: str | None = None) -> Callable[[Any], None]:
    """A task's `on_failure_callback`: alert the channels of `pipeline` (or of the run's
    `pipeline` parameter, for the DAGs that take one) when the task fails for good."""

    def alert_failure(context) -> None:
        from loopline_airflow.stages import run_interval

        error = context.get("exception")
        if isinstance(error, LineStopped):
            return
        ti = context["ti"]
        name = pipeline or (context.get("params") or {}).get("pipeline")
        try:
            dates = str(run_interval(context))
        except AirflowFailException:  # a run without dates: its logical date, if any, says enough
            dates = str(context.get("logical_date") or "")
        attempts = f"attempt {ti.try_number} of {(ti.task.retries if ti.task else 0) + 1}"
        summary = f"{type(error).__name__ if error else 'failed'}: {error} ({attempts})"[:MAX_ERROR_CHARS]
        _send(name, f"task {ti.task_id} of {ti.dag_id} failed", dates, ti.run_id, summary, ti.log_url)

    return alert_failure


def on_nightly_success(pipeline: str) -> Callable[[Any], None]:
    """The nightly DAG's `on_success_callback`: the time of the pipeline's last successful
    nightly run, as a metric (the "no successful nightly run" alert rule reads it)."""

    def nightly_succeeded(context) -> None:
        import time

        from loopline.core import telemetry

        telemetry.gauge("nightly.last_success_timestamp_seconds", time.time(), pipeline=pipeline)

    return nightly_succeeded


async def deadline_missed(context: dict, pipeline: str, deadline_hours: float) -> None:
    """Airflow's deadline callback (run by the triggerer): the run has not succeeded in time."""
    run, deadline = context["dag_run"], context["deadline"]
    if run.get("run_type") != SCHEDULED:
        log.info("deadline of %s passed; not alerted: a %s run is not held to the nightly deadline", run["run_id"],
                 run.get("run_type"))
        return
    dates = str(run.get("data_interval_start") or run.get("logical_date") or "")[:10]
    summary = (f"run {run['run_id']} of {run['dag_id']} had not succeeded {deadline_hours:g} h after its logical "
               f"date (deadline {deadline['deadline_time']}); its state then: {run.get('state')}")
    await asyncio.to_thread(_send, pipeline, "nightly run missed its deadline", dates, run["run_id"], summary,
                            _run_url(run["dag_id"], run["run_id"]))


def _run_url(dag_id: str, run_id: str) -> str:
    from urllib.parse import quote

    from airflow.configuration import conf

    return f"{conf.get('api', 'base_url', fallback='http://localhost:8080/').rstrip('/')}/dags/{dag_id}/runs/{quote(run_id)}"


def _send(pipeline: str | None, subject: str, dates: str, run_id: str, summary: str, log_url: str) -> None:
    """Notify the pipeline's channels (only the log, when the pipeline or its spec is unknown)."""
    from loopline.core.alerts import Alert, notify
    from loopline.core.spec import AlertChannel, load_spec

    channels = [AlertChannel(channel="log")]
    if pipeline:
        try:
            channels = load_spec(pipeline).alerts
        except Exception as error:  # noqa: BLE001 (a spec that cannot load must not swallow the alert)
            summary += f"\n(alerted on the log only: the spec of {pipeline} did not load: {error})"
    alert = Alert(pipeline or "loopline", subject, dates, run_id, summary, None, log_url)
    for line in notify(channels, alert, os.environ.get("LOOPLINE_DB_URL")):
        log.info("alert %s", line)
