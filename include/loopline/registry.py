"""Registry: register a trained run as a model version and gate its promotion.

The candidate gets alias `challenger`; it becomes `champion` only when there is no
champion yet or it beats the champion by the spec's margin on the candidate's own holdout
(the same rows for both). The champion it replaces keeps alias `previous_champion`. Every
alias move is recorded (loopline.model_aliases), and every version gets a model card
(loopline.model_card). Models are only ever loaded from the registry (`models:/...`):
`load_model` refuses any other URI.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from loopline import db, model_card
from loopline.features import build_features
from loopline.gate import decide, slice_checks
from loopline.model_aliases import CHALLENGER, CHAMPION, PREVIOUS, AliasMove, alias_version, move_alias
from loopline.smoke import smoke_test
from loopline.spec import PipelineSpec
from loopline.training import HOLDOUT_ARTIFACT, evaluate

if TYPE_CHECKING:
    from loopline.model_types import Scorer

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


def load_model(uri: str) -> "Scorer":
    """Load a model from the registry (`models:/<name>/<version>` or `models:/<name>@<alias>`),
    the only way Loopline loads a model: run artifacts, files and URLs are refused, so what
    serves is always a registered, audited version. Its type comes from its MLflow flavor."""
    if not uri.startswith(REGISTRY_SCHEME):
        raise UnregisteredModelError(f"refusing to load {uri!r}: models are loaded only from the registry "
                                     f"({REGISTRY_SCHEME}<name>/<version>); register it first")
    import mlflow
    from mlflow.models import Model

    from loopline.model_types import Scorer, model_type_for_flavors

    local = mlflow.artifacts.download_artifacts(uri)  # once: the MLmodel file and the model itself
    kind = model_type_for_flavors(Model.load(local).flavors)
    return Scorer(kind.load_model(local), kind)


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
    metric, gate = spec.gate["primary_metric"], spec.gate
    holdout = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=HOLDOUT_ARTIFACT))
    smoke_settings = gate.get("smoke_test", {})
    smoke = smoke_test(spec, f"{REGISTRY_SCHEME}{name}/{version}", holdout.head(smoke_settings.get("sample_rows", 1000)),
                       smoke_settings.get("max_ms_per_1000_rows", 1000.0))
    candidate_score, champion_score, slices = float("nan"), None, []
    if smoke.passed:  # a model that cannot score sensibly is not evaluated further
        features, labels = build_features(holdout, spec.features), holdout[spec.target].to_numpy()
        score = lambda probabilities, truth: evaluate(probabilities, truth)[metric]  # noqa: E731
        # Scored from the registry copy, not the training run's memory: this evaluates what would serve.
        candidate = load_model(f"{REGISTRY_SCHEME}{name}/{version}").predict(features)
        reigning = load_model(f"{REGISTRY_SCHEME}{name}/{champion}").predict(features) if champion else None
        candidate_score = score(candidate, labels)
        champion_score = score(reigning, labels) if champion else None
        slices = slice_checks(holdout, labels, candidate, reigning, gate.get("critical_slices", {}),
                              gate.get("slice_min_rows", 500), score)
    promoted, reason = decide(candidate_score, champion_score, gate["min_improvement"], slices, smoke)
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
    report = {"model_version": version, "promoted": promoted, "decision": reason, "primary_metric": metric,
              "candidate_score": candidate_score if smoke.passed else None, "champion_version": champion,
              "champion_score": champion_score,
              "min_improvement": gate["min_improvement"], "slices": [asdict(s) for s in slices],
              "smoke_test": asdict(smoke)}
    report["model_card"] = model_card.publish(client, spec, version, run_id, report, dag_id, dag_run_id)
    client.log_dict(run_id, report, "gate/gate_report.json")
    client.set_tag(run_id, "loopline.gate_decision", reason)
    decision = GateDecision(version, promoted, reason, metric, candidate_score, champion, champion_score)
    with db.connect(db_url) as conn:
        db.upsert(conn, "loopline.training_runs", {
            "pipeline": spec.name, "logical_date": logical_date, "dag_id": dag_id, "mlflow_run_id": run_id,
            "model_version": version, "primary_metric": metric, "candidate_score": candidate_score,
            "champion_version": champion, "champion_score": champion_score, "promoted": promoted,
            "decision": reason, "gate_report": report,
        }, key=["pipeline", "logical_date", "dag_id"])
    return decision
