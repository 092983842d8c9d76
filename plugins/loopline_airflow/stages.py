"""Task bodies for Loopline's DAGs: read the Airflow context, call `loopline`, return small metadata.

Each function is wrapped with `task(...)` in a DAG file. Heavy libraries are imported by
`loopline` inside the calls, never when a DAG file is parsed. Domain errors become Airflow
outcomes here (and in operators.ContractOperator, which stops the line on a bad batch):
  NotEnoughLabels    -> AirflowSkipException (cold start: downstream training is skipped)
  TamperedModelError -> an alert, then LineStopped (a retry would meet the same files)
  TooManyRejects     -> an alert, then LineStopped (a retry would count the same run)
  NonFinitePredictions -> an alert, then LineStopped (a retry would score the same)
Any other failure alerts once the task's retries are spent (alerting.on_task_failure).

A run processes every event date of its interval (run_interval): the dates of its data
interval, or those its trigger form names. Training and the feedback check look at what is
known on the interval's last date.
"""
from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import asdict
from datetime import date

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from loopline.core import telemetry
from loopline.core.interval import Interval
from loopline_airflow import evidence
from loopline_airflow.alerting import LineStopped


def run_interval(context=None) -> Interval:
    """The event dates this run processes (`context`: the task's, else the current one).

    The trigger form's `first_date`/`last_date` when given (one of them: that day); else, for a
    run an asset event triggered (retraining), the date the event carries; else the run's
    data interval."""
    context = context or get_current_context()
    params = context.get("params") or {}
    if params.get("first_date") or params.get("last_date"):
        first, last = (date.fromisoformat(str(params.get(k) or params.get(other)))
                       for k, other in (("first_date", "last_date"), ("last_date", "first_date")))
        return Interval(first, last)
    events = [e for evs in (context.get("triggering_asset_events") or {}).values() for e in evs]
    if events and "logical_date" in events[-1].extra:
        return Interval.of_day(date.fromisoformat(events[-1].extra["logical_date"]))
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        return Interval.between(start, end)
    if context.get("logical_date") is not None:
        return Interval.of_day(context["logical_date"].date())
    raise AirflowFailException("this run names no dates: trigger it with the form's first_date (and last_date), "
                               "or from a schedule or an asset event that carries one")


def run_date() -> date:
    """The date a run's training and checks are as of: the last date of its interval."""
    return run_interval().last


def outcome(record) -> dict:
    """A stage's result as its XCom: a dataclass as a dict, with NaN and infinities as None
    (XCom is JSON, which has no such numbers; a candidate refused by its smoke test has no score)."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return clean(asdict(record))


def task_pipeline(name: str):
    """The pipeline a task runs, with the task's credentials in place (and masked in its log)."""
    from loopline.core.pipeline import Pipeline
    from loopline_airflow.credentials import prepare_task_credentials

    prepare_task_credentials()
    return Pipeline.load(name)


def refusing_changed_models(stage: Callable) -> Callable:
    """A stage that loads models: a version whose files changed since registration stops it
    for good and alerts the pipeline's channels (someone could write to the registry)."""

    @functools.wraps(stage)
    def guarded(pipeline: str, *args, **kwargs):
        from loopline.models.store import TamperedModelError

        try:
            return stage(pipeline, *args, **kwargs)
        except TamperedModelError as refused:
            stop_the_line(pipeline, "model refused, its files changed since registration", refused)

    return guarded


def stop_the_line(pipeline: str, title: str, error: Exception) -> None:
    """Alert the pipeline's channels, then fail the task without retries (a retry would meet
    the same cause)."""
    from loopline.core.alerts import Alert, notify

    p = task_pipeline(pipeline)
    alert = Alert(pipeline, title, str(run_interval()), get_current_context()["run_id"], str(error), None)
    for line in notify(p.spec.alerts, alert, p.settings.db_url):
        print(f"alert {line}")
    raise LineStopped(str(error)) from error


def ingest(pipeline: str) -> dict:
    """Drain every source into bronze + quarantine; the ingest asset event carries the counts."""
    from loopline.ingest.streaming import TooManyRejects, ingest_pipeline
    from loopline_airflow.assets import bronze_ingested

    p, context, interval = task_pipeline(pipeline), get_current_context(), run_interval()
    try:
        runs = ingest_pipeline(p.spark(), p, context["run_id"], interval.first)
    except TooManyRejects as stopped:
        stop_the_line(pipeline, "ingest rejected too many records", stopped)
    for name, run in runs.items():
        print(f"{name}: {run.batches} batches, consumed {run.consumed} = accepted {run.accepted} "
              f"+ quarantined {run.quarantined} (late, before {interval.first}: {run.late})")
        if run.unknown_fields_warning():
            logging.getLogger(__name__).warning(run.unknown_fields_warning())
    results = {name: asdict(run) for name, run in runs.items()}
    context["outlet_events"][bronze_ingested(pipeline)].extra = {"logical_date": interval.last.isoformat(),
                                                                 "interval": str(interval), "sources": results}
    return results


@refusing_changed_models
def check_feedback(pipeline: str) -> dict:
    """Judge the champion on the labels that came back; roll it back (and alert) if it lost."""
    from loopline.monitoring.feedback import check_realised_performance

    context = get_current_context()
    check = check_realised_performance(task_pipeline(pipeline), run_date(), context["dag"].dag_id, context["run_id"])
    print(f"champion v{check.champion_version}: {check.decision}")
    return outcome(check)


def train(pipeline: str, recent_only: bool = False) -> dict:
    """Train a candidate on labelled rows known on the run's last date (skipped at cold start,
    and when the trigger form says not to retrain).

    `recent_only` limits training to `training.retrain_window_days` (drift retraining), or to
    the trigger form's `window_days` when given.
    """
    from loopline.training.data import NotEnoughLabels
    from loopline.training.train import train as train_model

    p, context = task_pipeline(pipeline), get_current_context()
    params = context.get("params") or {}
    if params.get("retrain") is False:
        raise AirflowSkipException("the trigger form asked to score without retraining")
    window_days = params.get("window_days") or (p.spec.training.retrain_window_days if recent_only else None)
    if params.get("reason"):
        print(f"retraining requested by hand: {params['reason']}")
    try:
        result = train_model(p.spec, p.lake, p.settings.db_url, run_date(), context["dag"].dag_id, window_days)
    except NotEnoughLabels as reason:
        raise AirflowSkipException(str(reason)) from reason
    print(f"run {result.run_id} ({'reused' if result.reused else 'new'}): {result.metrics}")
    evidence.push(evidence.mlflow_run_url(result.run_id))
    return outcome(result)


@refusing_changed_models
def register(pipeline: str, trained: dict) -> dict:
    """Register the candidate and promote it to champion if it passes the gate."""
    from loopline.release.registry import register_and_gate

    p, context = task_pipeline(pipeline), get_current_context()
    decision = register_and_gate(p.settings.db_url, p.spec, trained["run_id"], trained["model_uri"],
                                 run_date(), context["dag"].dag_id, context["run_id"])
    print(f"version {decision.model_version}: {'PROMOTED' if decision.promoted else 'kept as challenger'} "
          f"({decision.decision})")
    evidence.push(evidence.mlflow_version_url(p.spec.model_name, decision.model_version))
    return outcome(decision)


@refusing_changed_models
def score(pipeline: str) -> dict:
    """Score the interval's valid entities with the champion (skipped if there is none yet).

    The first run of an interval uses the newest champion that did not train on it (usually
    today's; for a backfill, the one of that time) and reruns reuse that version. A date that
    every champion so far trained on is skipped with the reason.
    """
    from loopline.scoring.score import NonFinitePredictions, NoPointInTimeModel, scoring_version
    from loopline.scoring.score import score as score_interval

    p, interval = task_pipeline(pipeline), run_interval()
    try:
        version = scoring_version(p, interval.first)
    except NoPointInTimeModel as unscorable:
        raise AirflowSkipException(str(unscorable)) from unscorable
    if version is None:
        raise AirflowSkipException(f"{pipeline}: no champion model yet, nothing to score with")
    if not any(p.lake.location(p.spec.entity_dataset, day).exists() for day in interval.dates):
        raise AirflowSkipException(f"{pipeline} {interval}: no valid entities, nothing to score")
    try:
        result = score_interval(p, interval, version)
    except NonFinitePredictions as refused:
        stop_the_line(pipeline, "the model gave NaN or infinite predictions", refused)
    print(f"{interval}: {result.rows} predictions by version {version} ({result.engine}) -> {result.predictions_uri}, "
          f"loopline.predictions and {p.spec.predictions_topic} ({result.published} published now)")
    return outcome(result)


@refusing_changed_models
def monitor(pipeline: str, scored: dict) -> dict:
    """Drift of each scored schedule interval against its serving model's training reference,
    and the retraining triggers it fires."""
    from loopline.monitoring.monitor import check_drift

    p, interval = task_pipeline(pipeline), run_interval()
    checked = check_drift(p, interval, scored["model_version"])
    for drift in checked:
        print(f"{drift.interval} ({drift.rows} rows): PSI per feature {drift.scores}; drifted: {drift.drifted_features or 'none'}; "
              f"retraining triggers: {[r.kind for r in drift.reasons] or 'none'}; "
              f"drift report: {evidence.drift_report_url(pipeline, drift.interval.first)}")
    if checked:
        evidence.push(evidence.drift_report_url(pipeline, checked[-1].interval.first))
    reasons = {r.kind: f"{d.interval}: {r.detail}" for d in checked for r in d.reasons}  # the latest per kind
    return {"interval": str(interval), "logical_date": interval.last.isoformat(),
            "max_psi": max((d.max_psi for d in checked), default=0.0),
            "drifted_features": sorted({f for d in checked for f in d.drifted_features}),
            "reasons": [{"kind": kind, "detail": detail} for kind, detail in reasons.items()]}


def request_retraining(pipeline: str, drift: dict) -> None:
    """Emit the retrain-request asset event for the triggers that fired, unless each is throttled
    (a retrain for it is still running, or the gate just rejected one); either way recorded."""
    from loopline.monitoring.retraining import Reason, request
    from loopline_airflow.assets import retrain_request

    if not drift["reasons"]:
        raise AirflowSkipException(f"no retraining trigger fired (max PSI {drift['max_psi']:.3f})")
    p, context = task_pipeline(pipeline), get_current_context()
    asked = request(p.settings.db_url, p.spec, date.fromisoformat(drift["logical_date"]),
                    [Reason(**r) for r in drift["reasons"]], context["dag"].dag_id, context["run_id"])
    for held in asked.throttled:
        telemetry.count("retrain.throttled", pipeline=pipeline, reason=held.kind)
        print(f"retraining for {held.kind} throttled: {held.why}")
    if not asked.requested:
        raise AirflowSkipException("every retraining trigger was throttled: "
                                   + "; ".join(f"{t.kind}: {t.why}" for t in asked.throttled))
    context["outlet_events"][retrain_request(pipeline)].extra = {
        "logical_date": drift["logical_date"], "reasons": asked.requested,
        "details": {r.kind: r.detail for r in asked.reasons if r.kind in asked.requested},
        "drifted_features": drift["drifted_features"], "max_psi": drift["max_psi"],
    }
    for kind in asked.requested:
        telemetry.count("retrain.requests", pipeline=pipeline, reason=kind)
    print(f"retraining requested for {', '.join(asked.requested)}: "
          + "; ".join(r.detail for r in asked.reasons if r.kind in asked.requested))


def close_retrain_request(pipeline: str) -> dict:
    """Record what this retrain made of the request that triggered it (runs whatever happened
    upstream, so a failed retrain does not hold back the next request)."""
    from loopline.monitoring.retraining import FAILED, NO_CANDIDATE, PROMOTED, REJECTED, close

    context = get_current_context()
    events = [e for evs in (context.get("triggering_asset_events") or {}).values() for e in evs]
    if not events or "reasons" not in events[-1].extra:
        raise AirflowSkipException("not triggered by a retraining request (a run by hand): nothing to close")
    requested_on = date.fromisoformat(events[-1].extra["logical_date"])
    ti = context["ti"]
    decision, trained = ti.xcom_pull(task_ids="register"), ti.xcom_pull(task_ids="train")
    if decision:
        result = (PROMOTED if decision["promoted"] else REJECTED, decision["decision"])
    elif trained:
        result = (FAILED, "the candidate was trained but not registered: see the register task's log")
    else:
        result = (NO_CANDIDATE, "no candidate was trained (too few labels, or a failure): see the train task's log")
    closed = close(task_pipeline(pipeline).settings.db_url, pipeline, requested_on, *result)
    print(f"retrain request of {requested_on}: {result[0]} ({result[1]})" + ("" if closed else " (already closed)"))
    return {"requested_on": requested_on.isoformat(), "outcome": result[0], "closed": closed}


def late_reruns(pipeline: str) -> list[dict]:
    """The reruns of earlier intervals this run landed late events for (spec `ingest.late_events`),
    as arguments of the trigger task; with `manual`, none, and the log says what to rerun."""
    from loopline.ingest.late import intervals_to_rerun

    p, context, interval = task_pipeline(pipeline), get_current_context(), run_interval()
    late = intervals_to_rerun(p.settings.db_url, pipeline, context["run_id"], interval)
    if not late:
        raise AirflowSkipException("no late events for an interval that was already validated")
    if p.spec.ingest.late_events == "manual":
        logging.getLogger(__name__).warning(
            "late events landed for %s, which were validated before they came: they are neither validated nor "
            "scored until those intervals run again. Trigger %s with first_date and last_date set to each, and "
            "retrain off (ingest.late_events is manual).", ", ".join(map(str, late)), context["dag"].dag_id)
        return []
    print(f"late events landed for {', '.join(map(str, late))}: triggering a rerun of each")
    return [{"trigger_run_id": f"late__{i}__{context['run_id']}",
             "conf": {"first_date": i.first.isoformat(), "last_date": i.last.isoformat(), "retrain": False}}
            for i in late]


def copy_to_tier(pipeline: str, dataset: str, day: str, to_tier: str) -> dict:
    """Copy one dataset partition to another tier, verified by checksum (idempotent)."""
    from loopline.core.storage import PlacementError
    from loopline.ops.tiering import copy_partition

    try:
        result = copy_partition(task_pipeline(pipeline).lake, dataset, date.fromisoformat(day), to_tier)
    except PlacementError as refused:
        raise AirflowFailException(str(refused)) from refused
    print(f"{result.source} -> {result.target}: {result.copied} copied, {result.skipped} already there, "
          f"{result.removed} stale removed; {result.files} files, {result.bytes} bytes, SHA-256 verified")
    return outcome(result)


def rollback(pipeline: str, to_version: str, reason: str) -> dict:
    """Restore the previous (or the named) champion; refused with the reason if impossible."""
    from mlflow import MlflowClient

    from loopline.models.aliases import AliasMove, RollbackError, rollback as rollback_champion

    p, context = task_pipeline(pipeline), get_current_context()
    try:
        done = rollback_champion(MlflowClient(), p.settings.db_url, p.spec.name, p.spec.model_name,
                                 AliasMove(reason, context["dag"].dag_id, context["run_id"]),
                                 int(to_version) if to_version not in ("", "None") else None)
    except RollbackError as refused:
        raise AirflowFailException(str(refused)) from refused
    print(f"{done.model_name}: champion v{done.from_version} -> v{done.to_version} ({reason})")
    return outcome(done)
