"""Which declared retraining triggers a monitored interval fires (loopline.monitoring.retraining)."""
from datetime import date

import pytest

from loopline.core.drift import Comparison
from loopline.core.interval import Interval
from loopline.core.spec import RetrainOn, load_spec
from loopline.monitoring.monitor import DriftResult, LabelDrift
from loopline.monitoring.retraining import decayed, reasons

DAY = Interval.of_day(date(2026, 3, 5))


def spec_with(**retrain_on):
    spec = load_spec("card_fraud")
    triggers = RetrainOn.model_validate({**spec.monitoring.retrain_on.model_dump(), **retrain_on})
    return spec.model_copy(update={"monitoring": spec.monitoring.model_copy(update={"retrain_on": triggers})})


def result(psi: float = 0.01, prediction_psi: float | None = 0.01, labels: LabelDrift | None = None) -> DriftResult:
    bins = Comparison("numeric", ["a"], [1.0], [1.0], psi)
    return DriftResult(DAY, 3, 3000, {"amount": bins}, 0.2, None,
                       Comparison("numeric", ["a"], [1.0], [1.0], prediction_psi) if prediction_psi is not None
                       else None, labels)


def labels(rows: int = 3000, target_mean: float = 0.05, reference_mean: float = 0.05, mean_prediction: float = 0.05,
           realised: float | None = 0.80, holdout: float | None = 0.82) -> LabelDrift:
    return LabelDrift(DAY, rows, target_mean, reference_mean, mean_prediction, "roc_auc", realised, holdout)


def kinds(found) -> list[str]:
    return [reason.kind for reason in found]


def test_feature_drift_is_on_by_default_and_can_be_turned_off():
    assert kinds(reasons(result(psi=0.5), spec_with())) == ["feature_drift"]
    assert kinds(reasons(result(psi=0.5), spec_with(feature_drift=False))) == []


def test_undeclared_triggers_never_fire():
    shifted = labels(target_mean=0.30, mean_prediction=0.05, realised=0.5)
    undeclared = spec_with(prediction_drift=None, label_drift=None, calibration=None, decay=None)
    assert reasons(result(prediction_psi=3.0, labels=shifted), undeclared) == []


def test_an_outcome_rate_shift_with_flat_predictions_is_label_drift_and_calibration():
    spec = spec_with(label_drift=0.05, calibration=0.05, prediction_drift=0.2, decay={"margin": 0.05})
    found = reasons(result(labels=labels(target_mean=0.20, mean_prediction=0.06)), spec)
    assert kinds(found) == ["label_drift", "calibration"]
    assert "target mean 0.2000 against 0.0500" in found[0].detail


def test_decay_by_margin_or_by_floor():
    by_margin = spec_with(label_drift=None, calibration=None, decay={"margin": 0.05})
    assert kinds(reasons(result(labels=labels(realised=0.70, holdout=0.82)), by_margin)) == ["decay"]
    assert reasons(result(labels=labels(realised=0.79, holdout=0.82)), by_margin) == []
    by_floor = spec_with(label_drift=None, calibration=None, decay={"floor": 0.75})
    assert kinds(reasons(result(labels=labels(realised=0.74, holdout=0.76)), by_floor)) == ["decay"]


def test_label_based_triggers_wait_for_enough_labelled_rows():
    spec = spec_with(label_drift=0.05, decay={"margin": 0.05})
    too_few = spec.monitoring.feedback.min_labelled_rows - 1
    assert reasons(result(labels=labels(rows=too_few, target_mean=0.3, realised=0.5)), spec) == []


def test_prediction_drift_against_its_own_threshold():
    spec = spec_with(prediction_drift=0.2, label_drift=None, calibration=None, decay=None)
    assert kinds(reasons(result(prediction_psi=0.25), spec)) == ["prediction_drift"]
    assert reasons(result(prediction_psi=0.15), spec) == []


@pytest.mark.parametrize("task,metric,realised,holdout,decays", [
    ("binary", "roc_auc", 0.70, 0.80, True),  # higher is better: lower realised decays
    ("binary", "roc_auc", 0.90, 0.80, False),
    ("regression", "rmse", 120.0, 100.0, True),  # lower is better: higher realised decays
    ("regression", "rmse", 80.0, 100.0, False),
])
def test_decay_follows_the_metrics_direction(task, metric, realised, holdout, decays):
    assert bool(decayed(task, metric, realised, holdout, margin=0.05, floor=None)) is decays
