"""Retraining triggers: which of the spec's declared reasons a monitored interval gives, and
the throttling of requests that would only repeat a retrain already under way or just refused.

Feature drift alone misses decay: a seasonal outcome rate can swing while every feature's
distribution, and so the mean prediction, stays flat. The spec (`monitoring.retrain_on`) can
therefore also ask for retraining on

  - prediction_drift: the predictions' PSI against the champion's holdout predictions;
  - label_drift: the realised target mean against the training data's;
  - calibration: the mean prediction against the realised target mean;
  - decay: the realised primary metric worse than the holdout score by a margin, or than a floor.

Each nightly run's request is recorded in `loopline.retrain_requests` with its reasons. A
reason is throttled (recorded, not asked for) while a retrain requested for it has not
finished (for at most `running_hours`), or when the gate rejected that retrain's candidate
within `cooldown_days`: retraining on the same data again would give the same answer.
The retraining DAG closes the request with its outcome. A rerun of a date repeats what was
recorded for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from loopline.core import db, metrics

if TYPE_CHECKING:
    from loopline.core.spec import PipelineSpec
    from loopline.monitoring.monitor import DriftResult

REASONS = ("feature_drift", "prediction_drift", "label_drift", "calibration", "decay")
REJECTED, PROMOTED, NO_CANDIDATE, FAILED = "rejected", "promoted", "no candidate", "failed"


@dataclass(frozen=True)
class Reason:
    kind: str  # one of REASONS
    detail: str


@dataclass(frozen=True)
class Throttled:
    kind: str
    why: str


@dataclass(frozen=True)
class RetrainRequest:
    logical_date: date
    reasons: list[Reason]
    requested: list[str]  # the kinds asked for; empty: every reason throttled
    throttled: list[Throttled]


def reasons(result: "DriftResult", spec: "PipelineSpec") -> list[Reason]:
    """The declared triggers that `result` (one monitored interval) fires."""
    on, found = spec.monitoring.retrain_on, []
    if on.feature_drift and result.drifted_features:
        found.append(Reason("feature_drift", f"PSI above {result.psi_threshold} for "
                                             f"{', '.join(result.drifted_features)} (max {result.max_psi:.3f})"))
    if on.prediction_drift is not None and result.prediction_drift and result.prediction_drift.psi > on.prediction_drift:
        found.append(Reason("prediction_drift", f"prediction PSI {result.prediction_drift.psi:.3f} against the "
                                                f"holdout's, above {on.prediction_drift}"))
    labels = result.labels
    if labels is None or labels.labelled_rows < spec.monitoring.feedback.min_labelled_rows:
        return found
    about = f"on {labels.labelled_rows} labelled predictions scored {labels.window}"
    if on.label_drift is not None and abs(labels.change) > on.label_drift:
        found.append(Reason("label_drift", f"target mean {labels.target_mean:.4f} against {labels.reference_mean:.4f} "
                                           f"in training (off by more than {on.label_drift}), {about}"))
    if on.calibration is not None and abs(labels.calibration_gap) > on.calibration:
        found.append(Reason("calibration", f"mean prediction {labels.mean_prediction:.4f} against the realised "
                                           f"{labels.target_mean:.4f} (off by more than {on.calibration}), {about}"))
    if on.decay is not None and labels.realised_score is not None and labels.holdout_score is not None:
        why = decayed(spec.task.type, labels.metric, labels.realised_score, labels.holdout_score,
                      on.decay.margin, on.decay.floor)
        if why:
            found.append(Reason("decay", f"{why}, {about}"))
    return found


def decayed(task: str, metric: str, realised: float, holdout: float, margin: float | None,
            floor: float | None) -> str | None:
    """Why the realised score counts as decayed (None: it does not), whichever way the metric points."""
    loss = -metrics.gain(task, metric, realised, holdout)
    if margin is not None and loss > margin:
        return f"realised {metric} {realised:.4f} is {loss:.4f} worse than the holdout's {holdout:.4f} " \
               f"(margin {margin})"
    if floor is not None and metrics.gain(task, metric, realised, floor) < 0:
        return f"realised {metric} {realised:.4f} is worse than the floor {floor}"
    return None


def request(db_url: str, spec: "PipelineSpec", logical_date: date, found: list[Reason], dag_id: str | None = None,
            run_id: str | None = None) -> RetrainRequest:
    """Record the run's request for `found`, throttling the reasons a recent retrain covers."""
    recorded = recorded_request(db_url, spec.name, logical_date)
    if recorded is not None:
        return recorded
    on, throttled = spec.monitoring.retrain_on, []
    with db.connect(db_url) as conn:
        earlier = db.fetch_all(conn, """
            SELECT logical_date, requested, requested_at, outcome, outcome_detail FROM loopline.retrain_requests
             WHERE pipeline = %s AND logical_date < %s AND jsonb_array_length(requested) > 0
             ORDER BY logical_date DESC""", (spec.name, logical_date))
        for reason in found:
            last = next((r for r in earlier if reason.kind in r["requested"]), None)
            why = last and _throttle(last, logical_date, on.cooldown_days, on.running_hours)
            if why:
                throttled.append(Throttled(reason.kind, why))
        asked = [r.kind for r in found if r.kind not in {t.kind for t in throttled}]
        db.upsert(conn, "loopline.retrain_requests", {
            "pipeline": spec.name, "logical_date": logical_date, "requested": asked, "dag_id": dag_id,
            "run_id": run_id, "reasons": [r.__dict__ for r in found], "throttled": [t.__dict__ for t in throttled]},
            key=["pipeline", "logical_date"])
    return RetrainRequest(logical_date, found, asked, throttled)


def _throttle(last: dict, logical_date: date, cooldown_days: int, running_hours: float) -> str | None:
    """Why the latest earlier request for a reason holds this one back (None: it does not)."""
    asked_on = last["logical_date"]
    if last["outcome"] is None:
        if datetime.now(timezone.utc) - last["requested_at"] < timedelta(hours=running_hours):
            return f"the retrain requested on {asked_on} for it has not finished"
        return None
    if last["outcome"] == REJECTED and (logical_date - asked_on).days <= cooldown_days:
        return f"the retrain requested on {asked_on} for it was rejected by the gate ({last['outcome_detail']}); " \
               f"cooldown {cooldown_days} days"
    return None


def recorded_request(db_url: str, pipeline: str, logical_date: date) -> RetrainRequest | None:
    row = db.recorded_row(db_url, "loopline.retrain_requests", pipeline, logical_date)
    if row is None:
        return None
    return RetrainRequest(logical_date, [Reason(**r) for r in row["reasons"]], list(row["requested"]),
                          [Throttled(**t) for t in row["throttled"]])


def close(db_url: str, pipeline: str, logical_date: date, outcome: str, detail: str) -> bool:
    """Record what the retrain requested on `logical_date` came to (False: no such open request)."""
    with db.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("""UPDATE loopline.retrain_requests SET outcome = %s, outcome_detail = %s,
                        closed_at = clock_timestamp(), updated_at = now()
                        WHERE pipeline = %s AND logical_date = %s AND outcome IS NULL""",
                    (outcome, detail, pipeline, logical_date))
        return cur.rowcount == 1
