"""Registry: register a trained run as a model version and gate its promotion.

The candidate gets alias `challenger`; it becomes `champion` only when there is no
champion yet or it beats the champion by the spec's margin on the candidate's own holdout
(the same rows for both). The champion it replaces keeps alias `previous_champion`. Every
alias move is recorded (loopline.model_aliases). Models are only ever loaded from the
registry (`models:/...`): `load_model` refuses any other URI.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from loopline import db
from loopline.features import build_features
from loopline.model_aliases import CHALLENGER, CHAMPION, PREVIOUS, AliasMove, alias_version, move_alias
from loopline.spec import PipelineSpec
from loopline.training import HOLDOUT_ARTIFACT, evaluate

REGISTRY_SCHEME = "models:/"


class UnregisteredModelError(ValueError):
    """A model was asked for by a path that is not a registry URI."""


@dataclass(frozen=True)
class GateDecision:
    model_version: int
    promoted: bool
    decision: str
    primary_metric: str
    candidate_score: float
    champion_version: int | None
    champion_score: float | None


def decide(candidate: float, champion: float | None, min_improvement: float) -> tuple[bool, str]:
    """The promotion rule, pure: promote when there is no champion or the margin is met."""
    if champion is None:
        return True, "no champion yet"
    if candidate >= champion + min_improvement:
        return True, f"beats champion by {candidate - champion:+.4f} (margin {min_improvement})"
    return False, f"does not beat champion by the margin ({candidate - champion:+.4f} < {min_improvement})"


def load_model(uri: str):
    """Load a LightGBM booster from the registry (`models:/<name>/<version>` or `models:/<name>@<alias>`),
    the only way Loopline loads a model: run artifacts, files and URLs are refused, so what
    serves is always a registered, audited version."""
    if not uri.startswith(REGISTRY_SCHEME):
        raise UnregisteredModelError(f"refusing to load {uri!r}: models are loaded only from the registry "
                                     f"({REGISTRY_SCHEME}<name>/<version>); register it first")
    import mlflow.lightgbm

    return mlflow.lightgbm.load_model(uri)


def _version_for_run(client, name: str, run_id: str, model_uri: str) -> int:
    import mlflow

    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if existing:
        return int(existing[0].version)
    return int(mlflow.register_model(model_uri, name, tags={"run_id": run_id}).version)


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
    import mlflow
    from mlflow import MlflowClient

    recorded = recorded_decision(db_url, spec.name, logical_date, dag_id, run_id)
    if recorded is not None:
        return recorded
    client = MlflowClient()
    name = spec.model_name
    version = _version_for_run(client, name, run_id, model_uri)
    champion = alias_version(client, name, CHAMPION)
    metric = spec.gate["primary_metric"]
    holdout = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=HOLDOUT_ARTIFACT))
    features, labels = build_features(holdout, spec.features), holdout[spec.target].to_numpy()
    # Scored again (training already did) on purpose: this evaluates the artifact as loaded
    # back from the registry, which also proves the registered version loads.
    candidate_score = evaluate(load_model(f"models:/{name}/{version}").predict(features), labels)[metric]
    champion_score = (evaluate(load_model(f"models:/{name}/{champion}").predict(features), labels)[metric]
                      if champion else None)
    promoted, reason = decide(candidate_score, champion_score, spec.gate["min_improvement"])
    run_context = {"dag_id": dag_id, "run_id": dag_run_id}
    move_alias(client, db_url, spec.name, name, CHALLENGER, version, AliasMove(f"candidate of {logical_date}", **run_context))
    if promoted:
        if champion is not None:
            move_alias(client, db_url, spec.name, name, PREVIOUS, champion,
                       AliasMove(f"replaced by v{version}", **run_context))
        move_alias(client, db_url, spec.name, name, CHAMPION, version, AliasMove(f"gate: {reason}", **run_context))
    client.set_model_version_tag(name, str(version), "gate_decision", reason)
    decision = GateDecision(version, promoted, reason, metric, candidate_score, champion, champion_score)
    with db.connect(db_url) as conn:
        db.upsert(conn, "loopline.training_runs", {
            "pipeline": spec.name, "logical_date": logical_date, "dag_id": dag_id, "mlflow_run_id": run_id,
            "model_version": version, "primary_metric": metric, "candidate_score": candidate_score,
            "champion_version": champion, "champion_score": champion_score, "promoted": promoted,
            "decision": reason,
        }, key=["pipeline", "logical_date", "dag_id"])
    return decision
