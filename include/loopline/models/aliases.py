"""Registry aliases with an audit trail, and rollback.

Every alias move (`champion`, `challenger`, `previous_champion`) goes through `move_alias`,
which writes a row to the append-only `loopline.alias_history` (version from/to, when, why,
which DAG run) in the same transaction that moves the alias; moves of one alias are
serialized by an advisory lock, so `from_version` is always the version that held it. If the
registry moved but the audit row cannot commit, the alias is put back (compensation), so the
registry and the audit never disagree. That answers "which version was champion at time T"
(`version_at`) and makes rollback a recorded, reversible step.

Decisions that read the champion and then move it (the gate, rollback) run one at a time per
model, under `champion_decisions`, so a nightly and a retraining gate racing end with one
consistent champion and audit trail.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg2

from loopline.core import telemetry
from loopline.core import db

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"


class RollbackError(RuntimeError):
    """There is nothing to roll back to, or the requested version cannot serve."""


class AliasAuditError(RuntimeError):
    """An alias move could not be recorded; the registry was put back (or says how to)."""


@dataclass(frozen=True)
class AliasMove:
    """Who asked for an alias move, for the audit row."""

    reason: str
    dag_id: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class Rollback:
    model_name: str
    from_version: int
    to_version: int
    reason: str


def alias_version(client, name: str, alias: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def champion_decisions(db_url: str, name: str):
    """Hold model `name`'s decision lock: one gate or rollback at a time reads and moves its
    champion (released when the block ends or the holder dies)."""
    return db.session_lock(db_url, f"loopline.champion:{name}")


def move_alias(client, db_url: str, pipeline: str, name: str, alias: str, version: int, why: AliasMove) -> bool:
    """Point `alias` at `version` and record it; False (and no row) if it already points there.

    The audit row is written first and commits only after the registry call succeeds; if the
    commit then fails, the registry is put back, so neither changes without the other."""
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"loopline.alias:{name}:{alias}",))
            current = alias_version(client, name, alias)
            if current == version:
                return False
            cur.execute("""INSERT INTO loopline.alias_history
                             (pipeline, model_name, alias, from_version, to_version, reason, dag_id, run_id)
                           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
                        (pipeline, name, alias, current, version, why.reason, why.dag_id, why.run_id))
        client.set_registered_model_alias(name, alias, str(version))
        try:
            conn.commit()
        except psycopg2.Error as error:
            _put_back(client, name, alias, current, error)
    finally:
        conn.close()
    return True


def _put_back(client, name: str, alias: str, version: int | None, error: Exception) -> None:
    """Compensate a registry move whose audit row did not commit, then raise."""
    where = f"model {name}: alias {alias}"
    try:
        if version is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, str(version))
    except Exception as undo_error:  # noqa: BLE001 (reported with both causes)
        raise AliasAuditError(
            f"{where} moved in the registry, its audit row did not commit ({error}), and putting it back to "
            f"{version} failed too ({undo_error}); set it back by hand with the MLflow client before the next "
            f"run") from error
    raise AliasAuditError(f"{where} was put back to {version}: its audit row did not commit ({error}); "
                          f"the task can be retried") from error


def promoted_over(db_url: str, name: str, version: int) -> int | None:
    """The champion `version` replaced at its latest promotion (None if it was the first)."""
    with db.connect(db_url) as conn:
        rows = db.fetch_all(conn, """SELECT from_version FROM loopline.alias_history
                                      WHERE model_name = %s AND alias = %s AND to_version = %s
                                      ORDER BY id DESC LIMIT 1""", (name, CHAMPION, version))
    return rows[0]["from_version"] if rows else None


def version_at(db_url: str, name: str, alias: str, moment: datetime) -> int | None:
    """The version `alias` pointed at, at `moment` (None before its first move)."""
    with db.connect(db_url) as conn:
        rows = db.fetch_all(conn, """SELECT to_version FROM loopline.alias_history
                                      WHERE model_name = %s AND alias = %s AND changed_at <= %s
                                      ORDER BY changed_at DESC, id DESC LIMIT 1""", (name, alias, moment))
    return rows[0]["to_version"] if rows else None


def history(db_url: str, name: str) -> list[dict]:
    with db.connect(db_url) as conn:
        return db.fetch_all(conn, "SELECT * FROM loopline.alias_history WHERE model_name = %s ORDER BY id", (name,))


def rollback(client, db_url: str, pipeline: str, name: str, why: AliasMove, to_version: int | None = None,
             judged: int | None = None) -> Rollback:
    """Make `to_version` (default: `previous_champion`) the champion again, in one step.

    The demoted champion becomes `previous_champion`, so a rollback can itself be undone. The
    target must load from the registry before any alias moves. `judged`: the champion the
    caller judged outside the lock; if a gate replaced it meanwhile, nothing moves.
    """
    with champion_decisions(db_url, name):
        return _rollback(client, db_url, pipeline, name, why, to_version, judged)


def _rollback(client, db_url: str, pipeline: str, name: str, why: AliasMove, to_version: int | None,
              judged: int | None) -> Rollback:
    from loopline.models.store import load_version

    champion = alias_version(client, name, CHAMPION)
    target = to_version if to_version is not None else alias_version(client, name, PREVIOUS)
    if champion is None:
        raise RollbackError(f"model {name} has no champion: nothing to roll back")
    if judged is not None and champion != judged:
        raise RollbackError(f"model {name}: v{judged} was judged, but v{champion} has become the champion since; "
                            "the new champion is judged on its own labels")
    if target is None:
        raise RollbackError(f"model {name} has no {PREVIOUS}: name the version to restore (--to-version N)")
    if target == champion:
        raise RollbackError(f"model {name}: version {target} is already the champion")
    try:
        load_version(db_url, name, target)
    except Exception as error:  # noqa: BLE001 (any load failure disqualifies the target)
        raise RollbackError(f"model {name} version {target} cannot be loaded from the registry, so it cannot "
                            f"serve: {error}") from error
    move_alias(client, db_url, pipeline, name, CHAMPION, target, AliasMove(f"rollback: {why.reason}", why.dag_id,
                                                                             why.run_id))
    move_alias(client, db_url, pipeline, name, PREVIOUS, champion,
               AliasMove(f"rolled back from v{champion} to v{target}", why.dag_id, why.run_id))
    telemetry.count("rollbacks", pipeline=pipeline)
    telemetry.gauge("champion.version", target, pipeline=pipeline)
    return Rollback(name, champion, target, why.reason)
