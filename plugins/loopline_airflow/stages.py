"""Task bodies for Loopline's DAGs: read the Airflow context, call `loopline`, return small metadata.

Each function is wrapped with `task(...)` in a DAG file. Heavy libraries are imported by
`loopline` inside the calls, never when a DAG file is parsed. Domain errors become Airflow
outcomes here (and in operators.ContractOperator, which stops the line on a bad batch):
  NotEnoughLabels    -> AirflowSkipException (cold start: downstream training is skipped)
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import date

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.sdk import get_current_context


def logical_date() -> date:
    context = get_current_context()
    logical = context.get("logical_date")
    if logical is None:  # asset-triggered runs have no logical date: use the triggering event's
        events = [e for evs in context["triggering_asset_events"].values() for e in evs]
        if not events or "logical_date" not in events[-1].extra:
            raise AirflowFailException("run has no logical date and no triggering asset event carrying one")
        return date.fromisoformat(events[-1].extra["logical_date"])
    return logical.date()


def _pipeline(name: str):
    from loopline.pipeline import Pipeline

    return Pipeline.load(name)


def ingest(pipeline: str) -> dict:
    """Drain every source into bronze + quarantine; the ingest asset event carries the counts."""
    from loopline.ingest import ingest_source
    from loopline_airflow.assets import bronze_ingested

    p, context = _pipeline(pipeline), get_current_context()
    spark = p.spark()
    results = {name: asdict(ingest_source(spark, p, source, context["run_id"], logical_date()))
               for name, source in p.spec.sources.items()}
    for name, run in results.items():
        print(f"{name}: {run['batches']} batches, consumed {run['consumed']} = accepted {run['accepted']} "
              f"+ quarantined {run['quarantined']} (late: {run['late']})")
    context["outlet_events"][bronze_ingested(pipeline)].extra = {"logical_date": logical_date().isoformat(),
                                                                 "sources": results}
    return results


def check_feedback(pipeline: str) -> dict:
    """Judge the champion on the labels that came back; roll it back (and alert) if it lost."""
    from loopline.feedback import check_realised_performance

    context = get_current_context()
    check = check_realised_performance(_pipeline(pipeline), logical_date(), context["dag"].dag_id, context["run_id"])
    print(f"champion v{check.champion_version}: {check.decision}")
    return asdict(check)


def train(pipeline: str, recent_only: bool = False) -> dict:
    """Train a candidate on labelled rows known at the logical date (skipped at cold start).

    `recent_only` limits training to the spec's `training.retrain_window_days` (drift retraining).
    """
    from loopline.training import train as train_model
    from loopline.training_data import NotEnoughLabels

    p = _pipeline(pipeline)
    window_days = p.spec.training.retrain_window_days if recent_only else None
    try:
        result = train_model(p.spec, p.lake, p.settings.db_url, logical_date(), get_current_context()["dag"].dag_id,
                             window_days)
    except NotEnoughLabels as reason:
        raise AirflowSkipException(str(reason)) from reason
    print(f"run {result.run_id} ({'reused' if result.reused else 'new'}): {result.metrics}")
    return asdict(result)


def register(pipeline: str, trained: dict) -> dict:
    """Register the candidate and promote it to champion if it passes the gate."""
    from loopline.registry import register_and_gate

    p, context = _pipeline(pipeline), get_current_context()
    decision = register_and_gate(p.settings.db_url, p.spec, trained["run_id"], trained["model_uri"],
                                 logical_date(), context["dag"].dag_id, context["run_id"])
    print(f"version {decision.model_version}: {'PROMOTED' if decision.promoted else 'kept as challenger'} "
          f"({decision.decision})")
    return asdict(decision)


def score(pipeline: str) -> dict:
    """Score the date's bronze partition with the champion (skipped if there is none yet).

    The first run of a date uses the champion of that moment; reruns reuse that version.
    """
    from loopline.scoring import score as score_partition

    p, day = _pipeline(pipeline), logical_date()
    version = p.scoring_version(day)
    if version is None:
        raise AirflowSkipException(f"{pipeline}: no champion model yet, nothing to score with")
    result = score_partition(p, day, version)
    print(f"{result.rows} predictions by version {version} -> {result.predictions_uri}, loopline.predictions and "
          f"{p.spec.predictions_topic} ({result.published} published now)")
    return asdict(result)


def monitor(pipeline: str, scored: dict) -> dict:
    """Drift of the scored batch against the serving model's training reference."""
    from loopline.monitoring import check_drift

    p = _pipeline(pipeline)
    result = check_drift(p.settings.db_url, p.spec, p.lake, logical_date(), scored["model_version"])
    print(f"PSI per feature: {result.scores}; drifted: {result.drifted_features or 'none'}")
    return {**asdict(result), "max_psi": result.max_psi, "retrain_requested": result.retrain_requested}


def request_retraining(pipeline: str, drift: dict) -> None:
    """Emit the retrain-request asset event, only when drift passed the threshold."""
    from loopline_airflow.assets import retrain_request

    if not drift["retrain_requested"]:
        raise AirflowSkipException(f"no drift above threshold (max PSI {drift['max_psi']:.3f}); no retraining")
    get_current_context()["outlet_events"][retrain_request(pipeline)].extra = {
        "logical_date": drift["logical_date"], "drifted_features": drift["drifted_features"],
        "max_psi": drift["max_psi"],
    }
    print(f"retraining requested: {drift['drifted_features']}")


def copy_to_tier(pipeline: str, dataset: str, day: str, to_tier: str) -> dict:
    """Copy one dataset partition to another tier, verified by checksum (idempotent)."""
    from loopline.storage import PlacementError
    from loopline.tiering import copy_partition

    try:
        result = copy_partition(_pipeline(pipeline).lake, dataset, date.fromisoformat(day), to_tier)
    except PlacementError as refused:
        raise AirflowFailException(str(refused)) from refused
    print(f"{result.source} -> {result.target}: {result.copied} copied, {result.skipped} already there, "
          f"{result.removed} stale removed; {result.files} files, {result.bytes} bytes, SHA-256 verified")
    return asdict(result)


def rollback(pipeline: str, to_version: str, reason: str) -> dict:
    """Restore the previous (or the named) champion; refused with the reason if impossible."""
    from mlflow import MlflowClient

    from loopline.model_aliases import AliasMove, RollbackError, rollback as rollback_champion

    p, context = _pipeline(pipeline), get_current_context()
    try:
        done = rollback_champion(MlflowClient(), p.settings.db_url, p.spec.name, p.spec.model_name,
                                 AliasMove(reason, context["dag"].dag_id, context["run_id"]),
                                 int(to_version) if to_version not in ("", "None") else None)
    except RollbackError as refused:
        raise AirflowFailException(str(refused)) from refused
    print(f"{done.model_name}: champion v{done.from_version} -> v{done.to_version} ({reason})")
    return asdict(done)
