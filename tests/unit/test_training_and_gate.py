from datetime import date

import pandas as pd
import pytest

from loopline.core.db import jdbc_options
from loopline.release.gate import Metric, decide
from loopline.training.data import NotEnoughLabels, data_hash, offset_ranges, recent, split_by_event_date


def frame(n=10, per_day=1):
    return pd.DataFrame({"transaction_id": [f"t{i}" for i in range(n)],
                         "event_time": pd.date_range("2026-11-01", periods=n, freq=f"{24 // per_day}h", tz="UTC")})


def test_split_by_event_date_keeps_whole_dates_and_the_newest_for_holdout():
    splits = split_by_event_date(frame(12, per_day=3), "event_time", validation_days=1, holdout_days=1)
    days = {name: set(part["event_time"].dt.date) for name, part in splits.items()}
    assert days == {"train": {date(2026, 11, 1), date(2026, 11, 2)}, "validation": {date(2026, 11, 3)},
                    "holdout": {date(2026, 11, 4)}}
    assert sum(len(part) for part in splits.values()) == 12


def test_split_by_event_date_refuses_too_few_dates():
    with pytest.raises(NotEnoughLabels, match="span 2 event dates; the split needs at least 3"):
        split_by_event_date(frame(6, per_day=3), "event_time", validation_days=1, holdout_days=1)


def test_recent_window_keeps_the_last_days():
    assert len(recent(frame(), "event_time", date(2026, 11, 10), 3)) == 3
    assert len(recent(frame(), "event_time", date(2026, 11, 10), None)) == 10


def test_data_hash_changes_with_any_value():
    changed = frame()
    changed.loc[4, "transaction_id"] = "other"
    assert data_hash(frame()) == data_hash(frame())
    assert data_hash(frame()) != data_hash(changed) and data_hash(frame()) != data_hash(frame(9))


def test_offset_ranges_per_source_partition():
    rows = pd.DataFrame({"source": ["t", "t", "t", "t"], "source_partition": [0, 0, 1, 0],
                         "source_offset": [5, 9, 2, 7]})
    assert [(o.partition, o.first, o.last, o.rows) for o in offset_ranges(rows, "valid_events")] == [
        (0, 5, 9, 3), (1, 2, 2, 1)]


AUC, RMSE = Metric("binary", "roc_auc"), Metric("regression", "rmse")


def test_gate_promotes_first_model_and_only_clear_improvements():
    assert decide(AUC, 0.70, None, 0.002)[0]
    assert decide(AUC, 0.705, 0.70, 0.002)[0]
    assert not decide(AUC, 0.701, 0.70, 0.002)[0]
    assert not decide(AUC, 0.69, 0.70, 0.002)[0]


def test_gate_follows_the_metric_direction_lower_rmse_is_better():
    assert decide(RMSE, 40.0, 45.0, 1.0)[0]
    assert not decide(RMSE, 44.5, 45.0, 1.0)[0]  # better, but not by the margin
    promoted, reason = decide(RMSE, 50.0, 45.0, 1.0)
    assert not promoted and "gain -5.0000" in reason and "lower is better" in reason


def test_a_refusal_shows_figures_precise_enough_to_explain_it():
    promoted, reason = decide(AUC, 0.70199, 0.70, 0.002)
    assert not promoted
    assert "0.70199 vs 0.70000, gain +0.00199 < 0.00200" in reason


def test_a_champion_score_that_cannot_be_computed_never_lets_a_candidate_through():
    for champion in (float("nan"), float("inf")):
        promoted, reason = decide(AUC, 0.9, champion, 0.002)
        assert not promoted and "cannot be compared" in reason


def test_a_metric_that_cannot_be_computed_is_never_promoted():
    promoted, reason = decide(AUC, float("nan"), None, 0.002)
    assert not promoted and "cannot be judged" in reason


def test_jdbc_options_from_libpq_url():
    options = jdbc_options("postgresql://u:p%40ss@127.0.0.1:15432/loopline")
    assert options["url"] == "jdbc:postgresql://127.0.0.1:15432/loopline?reWriteBatchedInserts=true"
    assert options["user"] == "u"


@pytest.mark.parametrize("uri", ["runs:/abc123/model", "/tmp/model.txt", "s3://bucket/model", "file:///m",
                                 "mlflow-artifacts:/1/x/artifacts/model"])
def test_models_load_only_from_the_registry(uri):
    from loopline.models.store import UnregisteredModelError, load_model

    with pytest.raises(UnregisteredModelError, match="only from the registry"):
        load_model(uri, {})


def test_a_failed_smoke_test_blocks_promotion_even_without_a_champion():
    from loopline.release.gate import SmokeResult

    promoted, reason = decide(AUC, 0.9, None, 0.002, smoke=SmokeResult(False, "12 of 1000 predictions are NaN"))
    assert not promoted and reason == "smoke test failed: 12 of 1000 predictions are NaN"


def test_a_version_that_does_not_load_fails_its_smoke_test_with_the_fresh_process_error(tmp_path):
    from loopline.release.smoke import FreshProcess

    with FreshProcess() as fresh:  # a real interpreter; the folder holds no MLmodel file
        result = fresh.test("models:/m/1", tmp_path, pd.DataFrame({"amount": [1.0, 2.0]}), 50.0)
    assert not result.passed
    assert result.detail.startswith("models:/m/1 did not load and score in a fresh process:")
    assert "MLmodel" in result.detail


def test_a_fresh_process_the_caller_never_used_is_stopped_with_it():
    from loopline.release.smoke import FreshProcess

    with pytest.raises(RuntimeError), FreshProcess() as fresh:
        raise RuntimeError("the registry did not answer")
    assert fresh._process.returncode is not None


def test_a_degraded_critical_slice_blocks_an_overall_improvement():
    import numpy as np

    from loopline.release.gate import slice_checks

    rng = np.random.default_rng(0)
    holdout = pd.DataFrame({"country": ["DE"] * 600 + ["BR"] * 600 + ["NG"] * 20})
    labels = rng.integers(0, 2, len(holdout))
    champion = np.where(labels == 1, 0.8, 0.2) + rng.normal(0, 0.05, len(holdout))   # good everywhere
    candidate = champion.copy()
    candidate[600:1200] = rng.random(600)                                              # random on BR
    checks = {c.value: c for c in slice_checks(holdout, labels, candidate, champion, {"country": 0.05}, 100, AUC)}
    assert checks["DE"].passed and not checks["BR"].passed
    assert not checks["NG"].judged and checks["NG"].passed  # 20 rows: reported, not judged
    promoted, reason = decide(AUC, 0.80, 0.70, 0.002, list(checks.values()))
    assert not promoted and reason.startswith("critical slice degrades: country=BR")
    assert decide(AUC, 0.80, 0.70, 0.002, [checks["DE"], checks["NG"]])[0]


def test_regression_slices_lose_when_the_error_grows():
    import numpy as np

    from loopline.release.gate import slice_checks

    holdout = pd.DataFrame({"season": ["winter"] * 50 + ["summer"] * 50})
    truth = np.linspace(0, 100, 100)
    champion = truth + 1.0
    candidate = truth.copy()
    candidate[:50] += 10.0  # 10x the champion's error in winter, better in summer
    checks = {c.value: c for c in slice_checks(holdout, truth, candidate, champion, {"season": 2.0}, 10, RMSE)}
    assert not checks["winter"].passed and checks["winter"].gain == pytest.approx(-9.0)
    assert checks["summer"].passed and checks["summer"].gain == pytest.approx(1.0)


def test_automatic_rollback_only_when_the_previous_champion_is_clearly_better():
    from loopline.monitoring.feedback import judge

    assert judge("binary", "roc_auc", 0.70, 0.75, 0.03)[0]
    assert not judge("binary", "roc_auc", 0.73, 0.75, 0.03)[0]
    assert not judge("binary", "roc_auc", 0.80, 0.75, 0.03)[0]
    assert judge("binary", "roc_auc", 0.70, 0.75, 0.03)[1] == (
        "realised roc_auc 0.7000 is 0.0500 worse than the previous champion's 0.7500 (tolerance 0.03)")


def test_automatic_rollback_respects_lower_is_better():
    from loopline.monitoring.feedback import judge

    assert judge("regression", "rmse", 60.0, 50.0, 5.0)[0]  # the champion's error is 10 higher
    assert not judge("regression", "rmse", 52.0, 50.0, 5.0)[0]
    assert not judge("regression", "rmse", 40.0, 50.0, 5.0)[0]


def test_a_training_split_of_many_dates_fits_an_mlflow_tag():
    from datetime import timedelta

    from loopline.core.interval import date_span

    dates = [(date(2011, 1, 1) + timedelta(days=i)).isoformat() for i in range(400)]
    assert date_span(dates) == "2011-01-01 .. 2012-02-04 (400 dates)" and date_span(dates[:1]) == "2011-01-01"
