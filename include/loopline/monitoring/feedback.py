"""Realised performance: the champion judged by the labels that came back, and automatic rollback.

Each night the champion's production predictions (loopline.predictions) whose labels have
arrived are scored with the spec's primary metric, in its direction (loopline.core.metrics). The previous champion is scored on the
very same events (its predictions are computed now, from the registry), so both are judged
on identical rows. If the champion is worse by more than `monitoring.feedback.tolerance`, it
is rolled back (loopline.models.aliases.rollback, audited) and the spec's alert channels are
told. One check per date: a rerun returns the recorded check and moves nothing.

Both are also scored per value of each of the gate's critical slices (a slice with fewer than
`gate.slice_min_rows` labelled rows, or one class, is counted but not scored), so a loss
confined to one segment shows on the pipeline page even when the overall score holds.

Not judged, and said so: fewer labelled predictions than `min_labelled_rows` (or, binary,
one class only), no previous champion, or a champion that a rollback put there (automatic rollback
never undoes a rollback; a person decides then).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from loopline.core import telemetry
from loopline.core import db

from loopline.core import metrics
from loopline.training.data import latest_labels, read_partitions

if TYPE_CHECKING:
    from loopline.core.pipeline import Pipeline


@dataclass(frozen=True)
class FeedbackCheck:
    logical_date: str
    champion_version: int | None
    previous_version: int | None
    labelled_rows: int
    metric: str
    champion_score: float | None
    previous_score: float | None
    tolerance: float
    rolled_back: bool
    decision: str
    slices: dict[str, list[dict]] | None = None  # field -> [{"value", "rows", "champion", "previous"}]


def judge(task: str, metric: str, champion: float, previous: float, tolerance: float) -> tuple[bool, str]:
    """(roll back?, why) from both versions' realised scores on the same labelled rows."""
    gain = metrics.gain(task, metric, champion, previous)  # negative: the champion does worse
    if -gain > tolerance:
        return True, f"realised {metric} {champion:.4f} is {-gain:.4f} worse than the previous champion's " \
                     f"{previous:.4f} (tolerance {tolerance})"
    return False, f"realised {metric} {champion:.4f} vs previous champion {previous:.4f} (gain {gain:+.4f}, " \
                  f"tolerance {tolerance}): kept"


def labelled_predictions(p: "Pipeline", version: int, until: date) -> pd.DataFrame:
    """`version`'s stored predictions up to `until` joined with their latest label known on `until`
    (labels with a null target are not labels)."""
    key, target = p.spec.entity_source.key, p.spec.target
    with db.connect(p.settings.db_url) as conn:
        predictions = pd.DataFrame(db.fetch_all(conn, """
            SELECT entity_key, prediction, score_date::text AS score_date FROM loopline.predictions
             WHERE pipeline = %s AND model_version = %s AND score_date <= %s""", (p.spec.name, version, until)))
    labels = latest_labels(p.lake, p.spec, until)
    if predictions.empty or labels.empty:
        return pd.DataFrame(columns=["entity_key", "prediction", "score_date", target])
    labels = labels.dropna(subset=[target]).assign(entity_key=lambda f: f[key].astype(str))[["entity_key", target]]
    return predictions.merge(labels, on="entity_key").sort_values("entity_key").reset_index(drop=True)


def scored_entities(p: "Pipeline", rows: pd.DataFrame, until: date) -> pd.DataFrame:
    """The entity rows behind the labelled predictions `rows` (same order), as they were scored."""
    key, dataset = p.spec.entity_source.key, p.spec.entity_dataset
    dates = sorted(rows["score_date"].unique())
    entities = read_partitions(p.lake, dataset, until, dates)
    entities = entities.assign(entity_key=entities[key].astype(str)).drop_duplicates("entity_key", keep="last")
    entities = rows[["entity_key"]].merge(entities, on="entity_key", how="left", indicator=True)  # keeps rows' order
    missing = int((entities["_merge"] == "left_only").sum())
    if missing:
        raise RuntimeError(f"{missing} scored entities are missing from {dataset} {dates}: was a partition "
                           "rewritten without rescoring?")
    return entities.drop(columns="_merge")


def slice_scores(p: "Pipeline", entities: pd.DataFrame, labels: np.ndarray, champion: np.ndarray,
                 previous: np.ndarray) -> dict[str, list[dict]]:
    """Both versions' realised primary metric per value of each critical slice."""
    spec, task, metric = p.spec, p.spec.task.type, p.spec.gate.primary_metric
    found = {}
    for field in spec.gate.critical_slices:
        found[field] = []
        for value, positions in entities.groupby(entities[field].astype(str), sort=True).indices.items():
            truth = labels[positions]
            scored = len(positions) >= spec.gate.slice_min_rows and metrics.judgeable(task, truth)
            found[field].append({"value": value, "rows": len(positions), **{
                name: metrics.evaluate_one(task, metric, predicted[positions], truth) if scored else None
                for name, predicted in (("champion", champion), ("previous", previous))}})
    return found


def recorded_check(db_url: str, pipeline: str, logical_date: date) -> FeedbackCheck | None:
    row = db.recorded_row(db_url, "loopline.feedback_checks", pipeline, logical_date)
    if row is None:
        return None
    fields = FeedbackCheck.__dataclass_fields__
    return FeedbackCheck(**{k: v for k, v in row.items() if k in fields} | {"logical_date": str(logical_date)})


def _restored_by_rollback(db_url: str, name: str) -> bool:
    from loopline.models.aliases import CHAMPION, history

    moves = [h for h in history(db_url, name) if h["alias"] == CHAMPION]
    return bool(moves) and moves[-1]["reason"].startswith("rollback")


def _judged(p: "Pipeline", champion: int | None, previous: int | None,
            logical_date: date) -> tuple[int, float | None, float | None, bool, str, dict | None]:
    """(labelled rows, champion score, previous score, roll back?, decision, slice scores) for the date."""
    spec, settings, metric = p.spec, p.spec.monitoring.feedback, p.spec.gate.primary_metric
    if champion is None or previous is None:
        return 0, None, None, False, "not judged: no champion and previous champion to compare", None
    if _restored_by_rollback(p.settings.db_url, spec.model_name):
        return 0, None, None, False, (f"not judged: v{champion} was restored by a rollback, which automatic "
                                      "rollback never undoes"), None
    rows, task = labelled_predictions(p, champion, logical_date), spec.task.type
    if len(rows) < settings.min_labelled_rows or not metrics.judgeable(task, rows[spec.target].to_numpy()):
        need = f"need {settings.min_labelled_rows}" + (" with both classes" if task == "binary" else "")
        return (len(rows), None, None, False, f"not judged yet: {len(rows)} labelled predictions of v{champion}, {need}",
                None)
    from loopline.models.store import load_version

    labels, champion_predictions = rows[spec.target].to_numpy(), rows["prediction"].to_numpy()
    entities = scored_entities(p, rows, logical_date)
    previous_predictions = load_version(p.settings.db_url, spec.model_name, previous).score(entities)
    champion_score = metrics.evaluate_one(task, metric, champion_predictions, labels)
    previous_score = metrics.evaluate_one(task, metric, previous_predictions, labels)
    roll_back, why = judge(task, metric, champion_score, previous_score, settings.tolerance)
    return (len(rows), champion_score, previous_score, roll_back, f"{metric} on {len(rows)} labelled predictions: {why}",
            slice_scores(p, entities, labels, champion_predictions, previous_predictions))


def _roll_back(p: "Pipeline", client, champion: int, previous: int, decision: str, logical_date: date,
               dag_id: str | None, run_id: str | None) -> tuple[bool, str]:
    """Roll back and alert; (rolled back?, decision). A refused rollback is alerted too."""
    from loopline.core.alerts import Alert, notify
    from loopline.models.aliases import AliasMove, RollbackError, rollback

    spec = p.spec
    try:
        rollback(client, p.settings.db_url, spec.name, spec.model_name, AliasMove(f"automatic: {decision}", dag_id,
                                                                                  run_id), previous, champion)
        done, decision, subject = True, f"rolled back v{champion} -> v{previous}: {decision}", \
            f"automatic rollback of {spec.model_name} v{champion}"
    except RollbackError as refused:
        done, decision, subject = False, f"should roll back, but cannot: {refused}; {decision}", \
            f"{spec.model_name} v{champion} underperforms, rollback refused"
    notify(spec.alerts, Alert(spec.name, subject, logical_date.isoformat(), run_id or "", decision, None),
           p.settings.db_url)
    return done, decision


def check_realised_performance(p: "Pipeline", logical_date: date, dag_id: str | None = None,
                               run_id: str | None = None) -> FeedbackCheck:
    """Judge the champion on labelled feedback known on `logical_date`; roll back if it lost."""
    from mlflow import MlflowClient

    from loopline.models.aliases import CHAMPION, PREVIOUS, alias_version

    spec, db_url = p.spec, p.settings.db_url
    recorded = recorded_check(db_url, spec.name, logical_date)
    if recorded is not None:
        return recorded
    client = MlflowClient()
    champion, previous = (alias_version(client, spec.model_name, alias) for alias in (CHAMPION, PREVIOUS))
    labelled_rows, champion_score, previous_score, roll_back, decision, slices = _judged(p, champion, previous,
                                                                                         logical_date)
    rolled_back = False
    if roll_back:
        rolled_back, decision = _roll_back(p, client, champion, previous, decision, logical_date, dag_id, run_id)
    if champion_score is not None:
        telemetry.gauge("realised.score", champion_score, pipeline=spec.name, metric=spec.gate.primary_metric)
        telemetry.gauge("realised.previous_score", previous_score, pipeline=spec.name, metric=spec.gate.primary_metric)
    check = FeedbackCheck(logical_date.isoformat(), champion, previous, labelled_rows, spec.gate.primary_metric,
                          champion_score, previous_score, spec.monitoring.feedback.tolerance, rolled_back,
                          decision, slices)
    with db.connect(db_url) as conn:
        db.upsert(conn, "loopline.feedback_checks", {**asdict(check), "pipeline": spec.name,
                                                     "logical_date": logical_date, "dag_id": dag_id,
                                                     "run_id": run_id}, key=["pipeline", "logical_date"])
    return check
