"""Automatic rollback on realised performance, on the real registry, Spark, lake and PostgreSQL.

A bad model (it learned shuffled labels) becomes champion as the gate would make it; it
scores a day with real Spark scoring; that day's labels come back; the feedback check
judges both versions on the same labelled predictions, rolls back, audits and alerts.
"""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from lifecycle_data import booster, labelled, log_booster, write_labelled_days
from loopline.core import db
from loopline.core.interval import Interval
from loopline.core.pipeline import Pipeline
from loopline.models.aliases import CHAMPION, PREVIOUS, AliasMove, alias_version, history, move_alias
from loopline.models.store import register_version
from loopline.monitoring.feedback import check_realised_performance
from loopline.scoring.score import score

SERVED = date(2026, 7, 10)  # the day the bad champion scores
FEEDBACK = SERVED + timedelta(days=1)  # its labels are in the lake from this date on


def register(p: Pipeline, model) -> int:
    import mlflow

    mlflow.set_experiment(p.spec.name)
    with mlflow.start_run():
        uri = log_booster(p.spec, model)
    return register_version(p.settings.db_url, p.spec.name, uri, p.spec.model_name)


def promote(p: Pipeline, version: int) -> None:
    """What the gate does when it promotes: the champion steps back to previous_champion."""
    from mlflow import MlflowClient

    client, why = MlflowClient(), AliasMove("gate: test promotion", "test_dag", "manual__1")
    champion = alias_version(client, p.spec.model_name, CHAMPION)
    if champion is not None:
        move_alias(client, p.settings.db_url, p.spec.name, p.spec.model_name, PREVIOUS, champion, why)
    move_alias(client, p.settings.db_url, p.spec.name, p.spec.model_name, CHAMPION, version, why)


@pytest.fixture(scope="module")
def served(make_pipeline):
    """A pipeline whose bad champion (previous: a good one) scored SERVED with real Spark."""
    p = Pipeline.load(make_pipeline())
    history_rows = labelled([date(2026, 7, d) for d in range(1, 6)])
    good, bad = register(p, booster(p.spec, history_rows)), register(p, booster(p.spec, history_rows, True))
    promote(p, good)
    before_any_feedback = check_realised_performance(p, SERVED - timedelta(days=1))
    promote(p, bad)
    write_labelled_days(p, labelled([SERVED], seed=21, per_day=2000))
    score(p, Interval.of_day(SERVED), bad)
    return p, good, bad, before_any_feedback


@pytest.fixture
def alerts(http_endpoint, monkeypatch):
    url, received = http_endpoint
    monkeypatch.setenv("LOOPLINE_ALERT_WEBHOOK_URL", url)
    return received


def test_without_a_previous_champion_nothing_is_judged(served):
    *_, check = served
    assert not check.rolled_back and check.champion_score is None
    assert check.decision == "not judged: no champion and previous champion to compare"


def test_a_champion_that_loses_on_returned_labels_is_rolled_back_audited_and_alerted(served, alerts):
    from mlflow import MlflowClient

    p, good, bad, _ = served
    check = check_realised_performance(p, FEEDBACK, "test_dag", "manual__2")

    assert check.rolled_back and (check.champion_version, check.previous_version) == (bad, good)
    assert check.labelled_rows == 2000 and check.previous_score - check.champion_score > check.tolerance
    client = MlflowClient()
    assert alias_version(client, p.spec.model_name, CHAMPION) == good
    assert alias_version(client, p.spec.model_name, PREVIOUS) == bad
    last_champion_move = [h for h in history(p.settings.db_url, p.spec.model_name) if h["alias"] == CHAMPION][-1]
    assert last_champion_move["reason"].startswith("rollback: automatic: roc_auc on 2000 labelled predictions")
    assert (last_champion_move["dag_id"], last_champion_move["run_id"]) == ("test_dag", "manual__2")
    [alert] = alerts
    assert alert["subject"] == f"automatic rollback of {p.spec.model_name} v{bad}" and "worse than the previous champion" in alert["summary"]
    with db.connect(p.settings.db_url) as conn:
        [row] = db.fetch_all(conn, "SELECT rolled_back, champion_score FROM loopline.feedback_checks "
                                   "WHERE pipeline = %s AND logical_date = %s", (p.spec.name, FEEDBACK))
    assert row == {"rolled_back": True, "champion_score": check.champion_score}


def test_realised_performance_is_also_measured_per_critical_slice(served):
    p, *_ = served
    check = check_realised_performance(p, FEEDBACK)  # the recorded check
    assert set(check.slices) == set(p.spec.gate.critical_slices)
    for field, values in check.slices.items():
        assert sum(v["rows"] for v in values) == check.labelled_rows  # every labelled row is in one value
        scored = [v for v in values if v["champion"] is not None]
        assert all(v["rows"] >= p.spec.gate.slice_min_rows for v in scored)
        assert scored and all(v["previous"] > v["champion"] for v in scored)  # the bad model loses in each


def test_a_rerun_of_the_date_returns_the_recorded_check_and_moves_nothing(served, alerts):
    p, *_ = served
    moves = len(history(p.settings.db_url, p.spec.model_name))
    again = check_realised_performance(p, FEEDBACK, "test_dag", "manual__3")
    assert again.rolled_back and again.decision.startswith("rolled back")
    assert len(history(p.settings.db_url, p.spec.model_name)) == moves and alerts == []


def test_a_champion_restored_by_a_rollback_is_not_rolled_back_automatically(served):
    p, good, *_ = served
    check = check_realised_performance(p, FEEDBACK + timedelta(days=1))
    assert not check.rolled_back and check.decision.startswith(f"not judged: v{good} was restored by a rollback")


def test_a_champion_as_good_as_its_predecessor_is_kept(served):
    p, good, *_ = served
    rows = labelled([date(2026, 7, d) for d in range(1, 6)])
    newer = register(p, booster(p.spec, rows, seed=8))
    promote(p, newer)
    score(p, Interval.of_day(SERVED), newer)  # the day is rescored by the new champion
    check = check_realised_performance(p, FEEDBACK + timedelta(days=2))
    assert not check.rolled_back and check.decision.endswith("kept"), check.decision
    assert check.previous_version == good and abs(check.champion_score - check.previous_score) <= check.tolerance


def test_a_champion_replaced_by_a_gate_while_it_was_judged_is_not_rolled_back(served, monkeypatch):
    import loopline.monitoring.feedback as feedback
    from mlflow import MlflowClient

    p, *_ = served
    judge_for_real = feedback._judged
    replacement = register(p, booster(p.spec, labelled([date(2026, 7, d) for d in range(1, 6)]), seed=9))

    def a_gate_promotes_meanwhile(*args):
        labelled_rows, champion_score, previous_score, _, _, slices = judge_for_real(*args)
        promote(p, replacement)
        return labelled_rows, champion_score, previous_score, True, "test: judged worse than the previous champion", slices

    monkeypatch.setattr(feedback, "_judged", a_gate_promotes_meanwhile)
    moves = len(history(p.settings.db_url, p.spec.model_name))
    check = check_realised_performance(p, FEEDBACK + timedelta(days=3))

    assert not check.rolled_back and "has become the champion since" in check.decision, check.decision
    assert alias_version(MlflowClient(), p.spec.model_name, CHAMPION) == replacement
    assert len(history(p.settings.db_url, p.spec.model_name)) == moves + 2  # the gate's two moves, no rollback
