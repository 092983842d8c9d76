"""The secrets-backend bridge: settings from Airflow Connections, through Airflow's own
environment-variable secrets backend (`AIRFLOW_CONN_*`), and every credential masked."""
from __future__ import annotations

import os

import pytest

from loopline_airflow import credentials


@pytest.fixture
def connections(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LOOPLINE_DB", "postgresql://team%40app:p%2Fss-w0rd@db.internal:6432/lakehouse")
    monkeypatch.setenv("AIRFLOW_CONN_LOOPLINE_MLFLOW", "http://writer:mlflow-s3cret@mlflow.internal:8443")
    monkeypatch.setenv("AIRFLOW_CONN_LOOPLINE_KAFKA_INGEST", "kafka://ingest-bot:kafka-s3cret@")
    monkeypatch.setenv("AIRFLOW_CONN_LOOPLINE_OBJECT_STORE",
                       '{"conn_type": "aws", "login": "AKIA1", "password": "s3-s3cret", '
                       '"extra": {"endpoint_url": "https://s3.internal"}}')
    for name in ("AIRFLOW_CONN_LOOPLINE_SPARK_CONNECT", "AIRFLOW_CONN_LOOPLINE_KAFKA_SCORING"):
        monkeypatch.delenv(name, raising=False)


def test_defined_connections_provide_settings_and_the_others_are_left_alone(connections):
    from airflow.sdk import Connection

    settings = credentials.settings_from_connections(Connection.get)
    assert settings["LOOPLINE_DB_URL"] == "postgresql://team%40app:p%2Fss-w0rd@db.internal:6432/lakehouse"
    assert settings["MLFLOW_TRACKING_URI"] == "http://mlflow.internal:8443"
    assert (settings["MLFLOW_TRACKING_USERNAME"], settings["MLFLOW_TRACKING_PASSWORD"]) == ("writer", "mlflow-s3cret")
    assert (settings["LOOPLINE_KAFKA_INGEST_USER"], settings["LOOPLINE_KAFKA_INGEST_PASSWORD"]) == (
        "ingest-bot", "kafka-s3cret")
    assert settings["AWS_SECRET_ACCESS_KEY"] == "s3-s3cret" and settings["LOOPLINE_S3_ENDPOINT"] == "https://s3.internal"
    assert not {"SPARK_CONNECT_AUTHENTICATE_TOKEN", "LOOPLINE_KAFKA_SCORING_USER"} & settings.keys()
    assert not any(k.startswith("LOOPLINE_KAFKA_ADMIN") for k in settings)  # tasks never get Kafka's admin


def test_a_task_takes_the_connections_and_masks_every_credential(connections, monkeypatch):
    from airflow.sdk._shared.secrets_masker import redact

    monkeypatch.setenv("LOOPLINE_DB_URL", "postgresql://loopline_app:stack-db-password@127.0.0.1:15432/loopline")
    monkeypatch.setenv("SPARK_CONNECT_AUTHENTICATE_TOKEN", "stack-spark-token-123")
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the bridge writes to the task's environment
    credentials.prepare_task_credentials.cache_clear()
    credentials.prepare_task_credentials()
    assert os.environ["LOOPLINE_DB_URL"].endswith("@db.internal:6432/lakehouse")  # the connection won
    assert os.environ["SPARK_CONNECT_AUTHENTICATE_TOKEN"] == "stack-spark-token-123"  # no connection: env stays
    line = "connecting with p/ss-w0rd, mlflow-s3cret, kafka-s3cret, s3-s3cret and stack-spark-token-123"
    assert redact(line) == "connecting with ***, ***, ***, *** and ***"
