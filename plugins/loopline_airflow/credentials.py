"""A task's credentials: from the stack's environment, or from Airflow Connections.

Teams that keep credentials in Airflow Connections, or in a secrets backend Airflow reads
(HashiCorp Vault, AWS Secrets Manager, GCP Secret Manager, `AIRFLOW_CONN_*` variables),
create the connections in CONNECTIONS; a task then takes those settings from them, over
what its environment says. `include/loopline` keeps reading plain settings
(loopline.core.config) and never imports Airflow: this module is the bridge.

Whatever the source, every credential a task holds is registered with Airflow's secrets
masker before the task runs, so a log line that would show one shows *** instead.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import get_args
from urllib.parse import quote

from loopline.core.config import credential_values
from loopline.core.kafka_auth import Role


def _database_url(c) -> dict[str, str]:
    credentials = f"{quote(c.login or '', safe='')}:{quote(c.password or '', safe='')}@" if c.login else ""
    return {"LOOPLINE_DB_URL": f"postgresql://{credentials}{c.host}:{c.port or 5432}/{c.schema}"}


def _mlflow(c) -> dict[str, str]:
    settings = {"MLFLOW_TRACKING_USERNAME": c.login, "MLFLOW_TRACKING_PASSWORD": c.password}
    if c.host:
        settings["MLFLOW_TRACKING_URI"] = c.host if "://" in c.host else f"http://{c.host}:{c.port or 5000}"
    return settings


def _object_store(c) -> dict[str, str]:
    settings = {"AWS_ACCESS_KEY_ID": c.login, "AWS_SECRET_ACCESS_KEY": c.password}
    if endpoint := c.extra_dejson.get("endpoint_url"):
        settings.update(LOOPLINE_S3_ENDPOINT=endpoint, MLFLOW_S3_ENDPOINT_URL=endpoint)
    return settings


def _kafka(role: str) -> Callable:
    def settings(c) -> dict[str, str]:
        return {f"LOOPLINE_KAFKA_{role.upper()}_USER": c.login, f"LOOPLINE_KAFKA_{role.upper()}_PASSWORD": c.password}
    return settings


def _spark_connect(c) -> dict[str, str]:
    return {"SPARK_CONNECT_AUTHENTICATE_TOKEN": c.password}


# Airflow connection id -> the Loopline settings it provides (its fields that are set).
CONNECTIONS: dict[str, Callable] = {
    "loopline_db": _database_url,
    "loopline_mlflow": _mlflow,
    "loopline_object_store": _object_store,
    "loopline_spark_connect": _spark_connect,
    # Tasks never act as Kafka's admin (topics and ACLs are `loopline bootstrap`'s).
    **{f"loopline_kafka_{role}": _kafka(role) for role in get_args(Role) if role != "admin"},
}


def settings_from_connections(lookup: Callable) -> dict[str, str]:
    """The settings the defined connections provide; `lookup(conn_id)` returns a connection
    or raises Airflow's not-found error for one that is not defined."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    settings = {}
    for conn_id, to_settings in CONNECTIONS.items():
        try:
            connection = lookup(conn_id)
        except AirflowNotFoundException:
            continue
        settings.update({k: v for k, v in to_settings(connection).items() if v})
    return settings


@functools.cache
def prepare_task_credentials() -> None:
    """Once per task process: take settings from the defined Airflow Connections, then mask
    every credential the process holds."""
    from airflow.sdk import Connection
    from airflow.sdk.log import mask_secret

    os.environ.update(settings_from_connections(Connection.get))
    for secret in credential_values(os.environ):
        mask_secret(secret)
