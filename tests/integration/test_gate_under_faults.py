"""The gate under failure and concurrency, on the real MLflow server and PostgreSQL: a retried
gate agrees with the registry, an alias never moves without its audit row, and racing gates end
with one consistent champion."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from sklearn.metrics import roc_auc_score

from lifecycle_data import booster, builder, candidate_run, gate, labelled, lightgbm_model
from loopline.core import db
from loopline.core.pipeline import Pipeline
from loopline.models.aliases import (CHAMPION, PREVIOUS, AliasAuditError, AliasMove, alias_version, history,
                                     move_alias)
from loopline.release import model_card
from loopline.release.registry import register_and_gate

DAY = date(2026, 6, 1)
RACE_ROUNDS = 4  # each round is a real race of two gates (about 15 s each); a lost update shows in any of them


@pytest.fixture(scope="module")
def data():
    return labelled([date(2026, 5, d) for d in range(1, 8)]), labelled([DAY])


@pytest.fixture(scope="module")
def improving(make_pipeline, data):
    """Boosters each better than the one before on the holdout (roc_auc), best last."""
    history_rows, holdout = data
    spec = Pipeline.load(make_pipeline()).spec
    features, labels = builder(spec).build(holdout), holdout["is_fraud"].to_numpy()
    by_score = {}
    for rounds in range(1, 60):
        model = booster(spec, history_rows, rounds=rounds)
        by_score.setdefault(roc_auc_score(labels, model.predict(features)), model)
    assert len(by_score) > 2 * RACE_ROUNDS, "the pool has too few distinct boosters for the race"
    return [by_score[score] for score in sorted(by_score)]


def champion_moves(p: Pipeline) -> list[dict]:
    return [row for row in history(p.settings.db_url, p.spec.model_name) if row["alias"] == CHAMPION]


def decisions(p: Pipeline) -> list[dict]:
    with db.connect(p.settings.db_url) as conn:
        return db.fetch_all(conn, "SELECT * FROM loopline.training_runs WHERE pipeline = %s", (p.spec.name,))


def test_a_retried_gate_records_the_promotion_its_first_attempt_made(make_pipeline, data, improving, monkeypatch):
    from mlflow import MlflowClient

    p = Pipeline.load(make_pipeline(gate={"critical_slices": {}}))  # the card_fraud margin, 0.002
    _, holdout = data
    _, first = gate(p, holdout, lightgbm_model(p.spec, improving[0]), DAY)
    run_id, model_uri = candidate_run(p, holdout, lightgbm_model(p.spec, improving[-1]))

    def dies(*args, **kwargs):
        raise RuntimeError("the worker died after the aliases moved")

    monkeypatch.setattr(model_card, "publish", dies)
    with pytest.raises(RuntimeError, match="worker died"):
        register_and_gate(p.settings.db_url, p.spec, run_id, model_uri, DAY + timedelta(days=1), "test_gate", "try1")
    client = MlflowClient()
    promoted_version = alias_version(client, p.spec.model_name, CHAMPION)
    assert promoted_version != first.model_version and not decisions(p)[1:]  # moved, not yet recorded

    monkeypatch.undo()
    retried = register_and_gate(p.settings.db_url, p.spec, run_id, model_uri, DAY + timedelta(days=1), "test_gate",
                                "try2")
    assert retried.promoted and retried.model_version == promoted_version
    assert retried.champion_version == first.model_version, "judged against the champion it replaced, not itself"
    assert [m["to_version"] for m in champion_moves(p)] == [first.model_version, promoted_version]
    assert alias_version(client, p.spec.model_name, PREVIOUS) == first.model_version
    [record] = [d for d in decisions(p) if d["model_version"] == promoted_version]
    assert record["promoted"] and record["champion_version"] == first.model_version


class DropsTheAuditConnection:
    """An MLflow client whose first alias move succeeds, after which PostgreSQL loses the
    connection that holds the move's uncommitted audit row (the backend is terminated)."""

    def __init__(self, client, db_url: str):
        self._client, self._db_url, self.dropped = client, db_url, 0

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._client.set_registered_model_alias(name, alias, version)
        if self.dropped:
            return
        with db.connect(self._db_url) as conn:
            rows = db.fetch_all(conn, """SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
                                          WHERE state = 'idle in transaction' AND pid <> pg_backend_pid()
                                            AND query LIKE '%%INSERT INTO loopline.alias_history%%'""")
        self.dropped = sum(row["done"] for row in rows)


def test_an_alias_move_whose_audit_row_cannot_commit_is_put_back(make_pipeline, data, improving):
    from mlflow import MlflowClient

    p = Pipeline.load(make_pipeline(gate={"critical_slices": {}}))
    _, holdout = data
    _, first = gate(p, holdout, lightgbm_model(p.spec, improving[0]), DAY)
    _, second = gate(p, holdout, lightgbm_model(p.spec, improving[-1]), DAY + timedelta(days=1))
    assert second.promoted
    client = DropsTheAuditConnection(MlflowClient(), p.settings.db_url)
    audit_before = history(p.settings.db_url, p.spec.model_name)

    with pytest.raises(AliasAuditError, match=f"put back to {second.model_version}"):
        move_alias(client, p.settings.db_url, p.spec.name, p.spec.model_name, CHAMPION, first.model_version,
                   AliasMove("a move whose audit row is lost"))
    assert client.dropped == 1
    assert alias_version(MlflowClient(), p.spec.model_name, CHAMPION) == second.model_version
    assert history(p.settings.db_url, p.spec.model_name) == audit_before


def test_racing_nightly_and_retraining_gates_end_with_one_consistent_champion(make_pipeline, data, improving):
    """Each round gates two better candidates at once; without serialization both would judge
    against the same champion and both be promoted, the second over a champion it never saw."""
    from mlflow import MlflowClient

    p = Pipeline.load(make_pipeline(gate={"min_improvement": 0.0, "critical_slices": {}}))
    _, holdout = data
    gate(p, holdout, lightgbm_model(p.spec, improving[0]), DAY)
    candidates = iter(improving[1:])
    for race in range(RACE_ROUNDS):
        runs = [candidate_run(p, holdout, lightgbm_model(p.spec, next(candidates))) for _ in ("nightly", "retrain")]
        start = threading.Barrier(2)

        def gate_as(dag_id: str, run: tuple[str, str], day: date = DAY + timedelta(days=race + 1)):
            start.wait()
            return register_and_gate(p.settings.db_url, p.spec, *run, day, dag_id, f"race_{race}")

        with ThreadPoolExecutor(2) as pool:
            outcome = list(pool.map(gate_as, ["it_nightly", "it_retrain"], runs))
        assert any(d.promoted for d in outcome), f"round {race}: a better candidate was refused: {outcome}"

    moves, client = champion_moves(p), MlflowClient()
    assert [m["from_version"] for m in moves] == [None, *(m["to_version"] for m in moves[:-1])], "a broken chain"
    assert alias_version(client, p.spec.model_name, CHAMPION) == moves[-1]["to_version"]
    assert alias_version(client, p.spec.model_name, PREVIOUS) == moves[-1]["from_version"]
    promoted = [d for d in decisions(p) if d["promoted"]]
    assert len(promoted) == len(moves) >= RACE_ROUNDS + 1
    replaced = {m["to_version"]: m["from_version"] for m in moves}
    for record in promoted:
        assert record["champion_version"] == replaced[record["model_version"]], (
            f"v{record['model_version']} was judged against v{record['champion_version']} but replaced "
            f"v{replaced[record['model_version']]}")
