"""Retraining triggers that see decay, on the real registry, Spark scoring, lake and PostgreSQL.

A champion is trained on five ordinary simulated days. Later days come from the simulator
with the outcome rate shifted and the features unchanged (label shift), or with fraud dealt
out regardless of the features (concept shift, so the champion decays). Each is scored by
real Spark scoring, its labels come back the next day, and the monitor judges the day after
with the spec's declared triggers; the requests are then throttled as the spec says.
"""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from lifecycle_data import labelled, write_labelled_days
from loopline.core.interval import Interval
from loopline.core.pipeline import Pipeline
from loopline.monitoring.monitor import check_drift
from loopline.monitoring.retraining import REJECTED, close, recorded_request, request
from loopline.scoring.score import score
from loopline.training.train import train

TRAINED = [date(2026, 8, d) for d in range(1, 6)]
LABEL_SHIFT = [date(2026, 8, d) for d in (10, 11, 12)]
CONCEPT_SHIFT = [date(2026, 8, d) for d in (20, 21)]
TRIGGERS = {"label_drift": 0.03, "calibration": 0.03, "decay": {"margin": 0.1}, "cooldown_days": 7}


@pytest.fixture(scope="module")
def monitored(make_pipeline):
    """{monitored day: its DriftResult}, each day judged on the labels of the day before."""
    from loopline.models.store import register_version

    p = Pipeline.load(make_pipeline(monitoring={"label_window_days": 2, "retrain_on": TRIGGERS}))
    write_labelled_days(p, labelled(TRAINED, per_day=1500))
    trained = train(p.spec, p.lake, p.settings.db_url, TRAINED[-1] + timedelta(days=1), "test_triggers")
    version = register_version(p.settings.db_url, p.spec.name, trained.model_uri, p.spec.model_name)
    write_labelled_days(p, labelled(LABEL_SHIFT, seed=11, per_day=1500, label_shift_from=LABEL_SHIFT[0]))
    write_labelled_days(p, labelled(CONCEPT_SHIFT, seed=12, per_day=1500, concept_shift_from=CONCEPT_SHIFT[0]))
    for day in LABEL_SHIFT + CONCEPT_SHIFT:
        score(p, Interval.of_day(day), version)
    judged = {day: check_drift(p, Interval.of_day(day), version) for day in (*LABEL_SHIFT[1:], CONCEPT_SHIFT[1])}
    return p, {day: result for day, (result,) in judged.items()}


def kinds(result) -> list[str]:
    return [reason.kind for reason in result.reasons]


def test_an_outcome_rate_shift_with_unchanged_features_requests_label_drift(monitored):
    _, judged = monitored
    shifted = judged[LABEL_SHIFT[1]]
    assert shifted.drifted_features == [] and shifted.labels.labelled_rows == 1500
    assert shifted.labels.target_mean > shifted.labels.reference_mean + TRIGGERS["label_drift"]
    # the predictions did not follow the outcomes, so calibration fires too; the ranking still holds
    assert kinds(shifted) == ["label_drift", "calibration"]


def test_a_decayed_champion_requests_decay_alone(monitored):
    _, judged = monitored
    decayed = judged[CONCEPT_SHIFT[1]]
    assert decayed.drifted_features == [] and kinds(decayed) == ["decay"]
    labels = decayed.labels
    assert labels.holdout_score - labels.realised_score > TRIGGERS["decay"]["margin"]
    assert "realised roc_auc" in decayed.reasons[0].detail


def test_a_repeated_request_is_throttled_while_running_and_after_the_gate_rejected_it(monitored):
    p, judged = monitored
    db_url, spec = p.settings.db_url, p.spec
    first = request(db_url, spec, LABEL_SHIFT[1], judged[LABEL_SHIFT[1]].reasons)
    assert first.requested == ["label_drift", "calibration"] and first.throttled == []

    while_running = request(db_url, spec, LABEL_SHIFT[2], judged[LABEL_SHIFT[2]].reasons)
    assert while_running.requested == []
    assert [t.kind for t in while_running.throttled] == ["label_drift", "calibration"]
    assert all("has not finished" in t.why for t in while_running.throttled)
    assert recorded_request(db_url, spec.name, LABEL_SHIFT[2]) == while_running  # recorded, and a rerun repeats it

    assert close(db_url, spec.name, LABEL_SHIFT[1], REJECTED, "the candidate lost to the champion")
    after_rejection = request(db_url, spec, LABEL_SHIFT[2] + timedelta(days=1), judged[LABEL_SHIFT[2]].reasons)
    assert after_rejection.requested == [] and "rejected by the gate" in after_rejection.throttled[0].why

    after_cooldown = LABEL_SHIFT[1] + timedelta(days=TRIGGERS["cooldown_days"] + 1)
    assert request(db_url, spec, after_cooldown, judged[LABEL_SHIFT[2]].reasons).requested == ["label_drift",
                                                                                                "calibration"]
    other_reason = request(db_url, spec, CONCEPT_SHIFT[1], judged[CONCEPT_SHIFT[1]].reasons)
    assert other_reason.requested == ["decay"] and other_reason.throttled == []
