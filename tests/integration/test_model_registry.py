"""Registry, audit trail and rollback on the real MLflow server and PostgreSQL."""
from __future__ import annotations

import multiprocessing
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from lifecycle_data import booster, labelled, log_booster
from loopline.core import db
from loopline.models.aliases import (CHAMPION, PREVIOUS, AliasMove, RollbackError, alias_version, history, move_alias,
                                    rollback, version_at)
from loopline.core.pipeline import Pipeline
from loopline.models.store import register_version


def tiny_model_uri(spec) -> str:
    """A small LightGBM model logged in an MLflow run (what training logs, minus the data)."""
    import mlflow

    model = booster(spec, labelled([date(2026, 1, 5)], per_day=300), rounds=5)
    mlflow.set_experiment(spec.name)
    with mlflow.start_run():
        return log_booster(spec, model)


@pytest.fixture(scope="module")
def registered(make_pipeline):
    """A throw-away pipeline whose model has versions 1-3 (same artifact), champion v2 via the
    gate's moves (v1 first, then v2 replacing it)."""
    from mlflow import MlflowClient

    p = Pipeline.load(make_pipeline())
    uri = tiny_model_uri(p.spec)
    versions = [register_version(p.settings.db_url, p.spec.name, uri, p.spec.model_name) for _ in range(3)]
    client = MlflowClient()
    gate = AliasMove("gate: test", "test_dag", "manual__1")
    move_alias(client, p.settings.db_url, p.spec.name, p.spec.model_name, CHAMPION, versions[0], gate)
    move_alias(client, p.settings.db_url, p.spec.name, p.spec.model_name, PREVIOUS, versions[0], gate)
    move_alias(client, p.settings.db_url, p.spec.name, p.spec.model_name, CHAMPION, versions[1], gate)
    return p, client, uri, versions


def test_rollback_restores_the_previous_champion_and_audits_every_move(registered):
    p, client, _, (v1, v2, _) = registered
    name = p.spec.model_name
    before = datetime.now(timezone.utc)

    done = rollback(client, p.settings.db_url, p.spec.name, name, AliasMove("fraud spike", "ops", "manual__2"))

    assert (done.from_version, done.to_version) == (v2, v1)
    assert alias_version(client, name, CHAMPION) == v1 and alias_version(client, name, PREVIOUS) == v2
    *_, champion_row, previous_row = history(p.settings.db_url, name)
    assert (champion_row["alias"], champion_row["from_version"], champion_row["to_version"]) == (CHAMPION, v2, v1)
    assert champion_row["reason"] == "rollback: fraud spike" and champion_row["run_id"] == "manual__2"
    assert (previous_row["alias"], previous_row["from_version"], previous_row["to_version"]) == (PREVIOUS, v1, v2)
    assert version_at(p.settings.db_url, name, CHAMPION, before) == v2  # which version was champion at time T
    assert version_at(p.settings.db_url, name, CHAMPION, datetime.now(timezone.utc)) == v1
    rollback(client, p.settings.db_url, p.spec.name, name, AliasMove("undo"))  # a rollback can be undone
    assert alias_version(client, name, CHAMPION) == v2


def test_the_cli_restores_a_named_version_and_refuses_impossible_rollbacks(registered):
    p, client, _, (v1, v2, v3) = registered

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "loopline.ops.cli", "rollback", "--pipeline", p.spec.name, *args],
                              capture_output=True, text=True, timeout=120)

    done = cli("--to-version", str(v3), "--reason", "named target")
    assert done.returncode == 0, done.stderr
    assert alias_version(client, p.spec.model_name, CHAMPION) == v3
    refused = cli("--to-version", str(v3), "--reason", "again")
    assert refused.returncode == 2 and "already the champion" in refused.stderr
    missing = cli("--to-version", "999", "--reason", "no such version")
    assert missing.returncode == 2 and "cannot be loaded from the registry" in missing.stderr
    assert alias_version(client, p.spec.model_name, CHAMPION) == v3


def test_the_alias_history_is_append_only(registered):
    """Two locks: the tasks' role has no right to change it (grants), and even the schema's
    owner cannot update it, or delete from it outside a pipeline's removal (trigger)."""
    import psycopg2

    from loopline.ops.bootstrap import admin_db_url

    p, *_ = registered
    update = "UPDATE loopline.alias_history SET reason = 'edited' WHERE model_name = %s"
    delete = "DELETE FROM loopline.alias_history WHERE model_name = %s"
    for url, statement, refusal in [
        (p.settings.db_url, update, psycopg2.errors.InsufficientPrivilege),
        (p.settings.db_url, "SET LOCAL loopline.purge = 'on'; " + delete, psycopg2.errors.InsufficientPrivilege),
        (admin_db_url(), update, psycopg2.errors.RaiseException),
        (admin_db_url(), delete, psycopg2.errors.RaiseException),
    ]:
        with pytest.raises(refusal):
            with db.connect(url) as conn, conn.cursor() as cur:
                cur.execute(statement, (p.spec.model_name,))
    with db.connect(p.settings.db_url) as conn:
        assert db.fetch_all(conn, "SELECT count(*) AS n FROM loopline.alias_history WHERE model_name = %s",
                            (p.spec.model_name,))[0]["n"] > 0


def _register(uri: str, name: str) -> int:
    import mlflow

    return int(mlflow.register_model(uri, name).version)


def test_eight_concurrent_registrations_get_eight_distinct_versions(registered):
    p, client, uri, _ = registered
    name = f"{p.spec.model_name}_concurrent"
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        versions = pool.starmap(_register, [(uri, name)] * 8)
    try:
        assert sorted(versions) == list(range(1, 9))
    finally:
        client.delete_registered_model(name)


def test_rolling_back_without_a_previous_champion_says_what_to_do(make_pipeline):
    from mlflow import MlflowClient

    p = Pipeline.load(make_pipeline())
    with pytest.raises(RollbackError, match="no champion"):
        rollback(MlflowClient(), p.settings.db_url, p.spec.name, p.spec.model_name, AliasMove("nothing there"))


def test_the_rollback_dag_restores_and_records_its_run(registered):
    from airflow.dag_processing.dagbag import DagBag

    p, client, _, _ = registered
    champion = alias_version(client, p.spec.model_name, CHAMPION)
    previous = alias_version(client, p.spec.model_name, PREVIOUS)
    dag = DagBag(str(Path(__file__).resolve().parents[2] / "dags" / "loopline_rollback.py")).dags["loopline_rollback"]
    dag_run = dag.test(run_conf={"pipeline": p.spec.name, "reason": "from the trigger form"})
    assert dag_run.state == "success"
    assert alias_version(client, p.spec.model_name, CHAMPION) == previous
    last = [h for h in history(p.settings.db_url, p.spec.model_name) if h["alias"] == CHAMPION][-1]
    assert (last["from_version"], last["to_version"]) == (champion, previous)
    assert (last["dag_id"], last["run_id"], last["reason"]) == ("loopline_rollback", dag_run.run_id,
                                                                "rollback: from the trigger form")
