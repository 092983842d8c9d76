"""Registry: register a trained run as a model version and gate its promotion.

The candidate gets alias `challenger`; it becomes `champion` only when there is no
champion yet or it beats the champion by the spec's margin on the candidate's own holdout
(the same rows for both). The champion it replaces keeps alias `previous_champion`. Every
alias move is recorded (loopline.models.aliases), and every version gets a model card
(loopline.release.model_card). Models are only ever loaded from the registry (loopline.models.store).

Gates of one model run one at a time (the nightly and the retraining gate may race), and a
retried gate ends in a record that agrees with the registry, however far its first attempt got.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date

import pandas as pd

from loopline.core import telemetry
from loopline.core import db

from loopline.core.run_artifacts import GATE_REPORT_ARTIFACT, HOLDOUT_ARTIFACT
from loopline.core.spec import PipelineSpec
from loopline.models.aliases import (CHALLENGER, CHAMPION, PREVIOUS, AliasMove, alias_version, champion_decisions,
                                     move_alias, promoted_over)
from loopline.models.store import (REGISTRY_SCHEME, download_verified, load_local, load_version, recorded_digests,
                                   register_version)
from loopline.release import model_card
from loopline.release.gate import Metric, decide, slice_checks
from loopline.release.smoke import FreshProcess


@dataclass(frozen=True)
class GateDecision:
    model_version: int
    promoted: bool
    decision: str
    primary_metric: str
    candidate_score: float
    champion_version: int | None
    champion_score: float | None


def _version_for_run(client, db_url: str, pipeline: str, name: str, run_id: str, model_uri: str) -> int:
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if existing:
        return int(existing[0].version)
    return register_version(db_url, pipeline, model_uri, name, tags={"run_id": run_id})


def recorded_decision(db_url: str, pipeline: str, logical_date: date, dag_id: str, run_id: str) -> GateDecision | None:
    """The gate decision already taken for this date, DAG and training run, if any."""
    with db.connect(db_url) as conn:
        rows = db.fetch_all(conn, "SELECT * FROM loopline.training_runs WHERE pipeline=%s AND logical_date=%s "
                                  "AND dag_id=%s AND mlflow_run_id=%s", (pipeline, logical_date, dag_id, run_id))
    if not rows:
        return None
    r = rows[0]
    return GateDecision(r["model_version"], r["promoted"], r["decision"], r["primary_metric"], r["candidate_score"],
                        r["champion_version"], r["champion_score"])


def register_and_gate(db_url: str, spec: PipelineSpec, run_id: str, model_uri: str, logical_date: date,
                      dag_id: str, dag_run_id: str | None = None) -> GateDecision:
    """Register the run's model and gate it, once per (date, DAG, run): a rerun of the date
    returns the recorded decision and moves no alias, even if newer champions exist by then."""
    with champion_decisions(db_url, spec.model_name):
        recorded = recorded_decision(db_url, spec.name, logical_date, dag_id, run_id)
        if recorded is not None:
            return recorded
        with FreshProcess() as smoke_process:  # it starts while the version is registered and downloaded
            return _register_and_gate(db_url, spec, run_id, model_uri, logical_date, dag_id, dag_run_id,
                                      smoke_process)


def _register_and_gate(db_url: str, spec: PipelineSpec, run_id: str, model_uri: str, logical_date: date,
                       dag_id: str, dag_run_id: str | None, smoke_process: FreshProcess) -> GateDecision:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    name = spec.model_name
    version = _version_for_run(client, db_url, spec.name, name, run_id, model_uri)
    champion = alias_version(client, name, CHAMPION)
    if champion == version:  # an earlier attempt promoted it, then failed before recording its decision
        champion = promoted_over(db_url, name, version)
    gate = spec.gate
    metric = Metric(spec.task.type, gate.primary_metric)
    holdout = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=HOLDOUT_ARTIFACT))
    uri = f"{REGISTRY_SCHEME}{name}/{version}"
    verified = download_verified(uri, recorded_digests(db_url, name, version))  # a changed file is refused here
    # Scored from the registry copies (each version builds its features with its own code), not
    # the training run's memory: this evaluates what would serve. The champion, already serving,
    # is loaded while the candidate's smoke test runs in its own process.
    with ThreadPoolExecutor(max_workers=1) as beside:
        champion_scoring = (beside.submit(lambda: load_version(db_url, name, champion).score(holdout))
                            if champion else None)
        smoke = smoke_process.test(uri, verified, holdout.head(gate.smoke_test.sample_rows),
                                   gate.smoke_test.max_ms_per_1000_rows)
    candidate_score, champion_score, slices = float("nan"), None, []
    if smoke.passed:  # a model that cannot score sensibly is not evaluated further
        labels = holdout[spec.target].to_numpy()
        candidate = load_local(verified, uri).score(holdout)
        reigning = champion_scoring.result() if champion_scoring else None  # a champion that did not load raises here
        candidate_score = metric(candidate, labels)
        champion_score = metric(reigning, labels) if champion else None
        slices = slice_checks(holdout, labels, candidate, reigning, gate.critical_slices, gate.slice_min_rows, metric)
    promoted, reason = decide(metric, candidate_score, champion_score, gate.min_improvement, slices, smoke)
    run_context = {"dag_id": dag_id, "run_id": dag_run_id}
    if smoke.passed:
        move_alias(client, db_url, spec.name, name, CHALLENGER, version,
                   AliasMove(f"candidate of {logical_date}", **run_context))
    if promoted:
        if champion is not None:
            move_alias(client, db_url, spec.name, name, PREVIOUS, champion,
                       AliasMove(f"replaced by v{version}", **run_context))
        move_alias(client, db_url, spec.name, name, CHAMPION, version, AliasMove(f"gate: {reason}", **run_context))
    client.set_model_version_tag(name, str(version), "gate_decision", reason)
    report = {"model_version": version, "promoted": promoted, "decision": reason, "primary_metric": metric.name,
              "candidate_score": candidate_score if smoke.passed else None, "champion_version": champion,
              "champion_score": champion_score,
              "min_improvement": gate.min_improvement, "slices": [asdict(s) for s in slices],
              "smoke_test": asdict(smoke)}
    report["model_card"] = model_card.publish(client, spec, version, run_id, report, dag_id, dag_run_id)
    client.log_dict(run_id, report, GATE_REPORT_ARTIFACT)
    client.set_tag(run_id, "loopline.gate_decision", reason)
    decision = GateDecision(version, promoted, reason, metric.name, candidate_score, champion, champion_score)
    with db.connect(db_url) as conn:
        db.upsert(conn, "loopline.training_runs", {
            "pipeline": spec.name, "logical_date": logical_date, "dag_id": dag_id, "mlflow_run_id": run_id,
            "model_version": version, "primary_metric": metric.name, "candidate_score": candidate_score,
            "champion_version": champion, "champion_score": champion_score, "promoted": promoted,
            "decision": reason, "gate_report": report,
        }, key=["pipeline", "logical_date", "dag_id"])
    if promoted:
        telemetry.gauge("champion.version", version, pipeline=spec.name)
    return decision
