"""Locked down by default, checked on the running stack: what listens, who PostgreSQL lets in
and with what rights, what a second account on this machine can read, and where the
generated secrets never appear."""
from __future__ import annotations

import importlib.util
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from loopline.core.config import REPOSITORY
from loopline.ops.bootstrap import admin_db_url

INTRUDER = "loopline-intruder"  # a second account on the machine, made by this module
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def _stack_module():
    spec = importlib.util.spec_from_file_location("loopline_stack", REPOSITORY / "infra" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stack = _stack_module()
STATE = Path(os.environ["LOOPLINE_STATE_DIR"])


def generated_secrets() -> dict[str, str]:
    values = stack.read_env_file()
    return {key: values[key] for key in stack.SECRETS}


@pytest.fixture(scope="module")
def intruder():
    if os.geteuid() != 0:
        pytest.skip("creating a second OS account needs root (CI runs as root)")
    try:
        pwd.getpwnam(INTRUDER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", INTRUDER],
                       check=True)
    yield INTRUDER
    subprocess.run(["userdel", INTRUDER], check=False)


def as_intruder(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", INTRUDER, "--", *command], capture_output=True, text=True, cwd="/")


def test_nothing_the_stack_runs_listens_beyond_loopback():
    pids = {pid for service in stack.SERVICES for pid in service.processes()}
    assert len(pids) > 20, "the stack is not running"
    listening = subprocess.run(["ss", "-ltnupH"], capture_output=True, text=True, check=True).stdout
    ours = []
    for line in listening.splitlines():
        fields = line.split()
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            address = fields[4].rsplit(":", 1)[0].strip("[]")
            ours.append((address, fields[4], line.split("users:")[-1]))
    assert len(ours) >= 9  # PostgreSQL, Kafka x2, the S3 gateway, MLflow, Spark Connect, Airflow...
    assert [o for o in ours if o[0] not in LOOPBACK] == []


def test_postgres_refuses_missing_and_wrong_passwords_over_tcp():
    url = psycopg2.extensions.parse_dsn(admin_db_url())
    for password in ("", "wrong-" + url["password"]):
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(**{**url, "password": password}, connect_timeout=5)
    for user in ("postgres", "loopline_app", "airflow"):
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(**{**url, "user": user, "password": "guess"}, connect_timeout=5)


def test_postgres_socket_is_closed_to_another_account(intruder):
    sockets = stack.Postgres.socket_dir
    assert sockets.stat().st_mode & 0o077 == 0
    psql = stack.postgres_bin("psql")
    refused = as_intruder(psql, "-h", str(sockets), "-p", os.environ["LOOPLINE_PG_PORT"], "-U", "postgres",
                          "-d", "postgres", "-c", "SELECT 1")
    assert refused.returncode != 0 and "Permission denied" in refused.stderr


def test_the_application_role_has_data_access_only():
    app = psycopg2.extensions.parse_dsn(os.environ["LOOPLINE_DB_URL"])
    for database in ("airflow", "mlflow", "postgres"):
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            psycopg2.connect(**{**app, "dbname": database}, connect_timeout=5)
    refused = ["CREATE TABLE loopline.sneaky (x int)", "DROP TABLE loopline.predictions",
               "ALTER TABLE loopline.predictions ADD COLUMN x int", "TRUNCATE loopline.alias_history",
               "INSERT INTO loopline.schema_migrations (version) VALUES (9999)",
               "CREATE TABLE public.sneaky (x int)", "COPY (SELECT 1) TO PROGRAM 'true'"]
    for statement in refused:
        with psycopg2.connect(**app) as conn, conn.cursor() as cur:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
    with psycopg2.connect(**app) as conn, conn.cursor() as cur:  # what tasks do need
        cur.execute("CREATE TABLE loopline_staging.allowed (x int); DROP TABLE loopline_staging.allowed")
        cur.execute("SELECT count(*) FROM loopline.predictions")


def test_another_account_can_read_nothing_under_the_state_folder(intruder):
    assert STATE.stat().st_mode & 0o777 == 0o711
    assert as_intruder("ls", str(STATE)).returncode != 0
    for relative in ("env", "lake", "s3/identities.json", "airflow/passwords.json", "postgres/data", "logs",
                     "spark", "kafka/server.properties"):
        path = STATE / relative
        assert path.exists(), path
        command = ["ls", str(path)] if path.is_dir() else ["cat", str(path)]
        denied = as_intruder(*command)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, relative
    lake_files = [p for p in Path(os.environ["LOOPLINE_ONPREM_ROOT"]).rglob("*.parquet")][:1]
    assert lake_files, "the lake holds data by now"
    assert as_intruder("cat", str(lake_files[0])).returncode != 0


def test_no_generated_secret_is_on_a_command_line_or_in_a_task_log():
    secrets = generated_secrets()
    command_lines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command_lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    assert len(command_lines) > 20
    logs = [p for p in (Path(os.environ["AIRFLOW_HOME"]) / "logs").rglob("*") if p.is_file()]
    logs += [p for p in (STATE / "logs").glob("*.log")]
    assert logs
    for key, value in secrets.items():
        assert not [c for c in command_lines if value in c], f"{key} is on a command line"
        assert not [p for p in logs if value in p.read_text(errors="replace")], f"{key} is in a log"


def test_no_generated_secret_is_in_mlflow_params_or_tags():
    from mlflow import MlflowClient

    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=5000)
    assert runs
    recorded = " ".join(f"{k}={v}" for r in runs for k, v in {**r.data.params, **r.data.tags}.items())
    assert not [key for key, value in generated_secrets().items() if value in recorded]


@pytest.mark.parametrize("token", [None, "a-guess"])
def test_spark_connect_refuses_a_client_without_the_token(token):
    env = {k: v for k, v in os.environ.items() if k != "SPARK_CONNECT_AUTHENTICATE_TOKEN"}
    if token:
        env["SPARK_CONNECT_AUTHENTICATE_TOKEN"] = token
    probe = ("import os; from pyspark.sql import SparkSession; "
             "print(SparkSession.builder.remote(os.environ['SPARK_REMOTE']).create().range(3).count())")
    refused = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "UNAUTHENTICATED" in refused.stderr, refused.stderr[-1500:]
    allowed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert allowed.returncode == 0 and allowed.stdout.strip().endswith("3"), allowed.stderr[-1500:]


def _card_fraud_topics() -> tuple[str, str]:
    from loopline.core.spec import load_spec

    spec = load_spec("card_fraud")
    return spec.entity_source.topic, spec.predictions_topic


def test_kafka_refuses_a_client_without_credentials_or_with_wrong_ones():
    import kafka.errors
    from kafka import KafkaConsumer

    from loopline.core.config import Settings

    bootstrap = Settings.from_env().kafka_bootstrap
    with pytest.raises(kafka.errors.NoBrokersAvailable):
        KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000, api_version_auto_timeout_ms=5000)
    with pytest.raises(kafka.errors.KafkaError, match="[Aa]uthentication"):
        KafkaConsumer(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                      sasl_plain_username=os.environ["LOOPLINE_KAFKA_INGEST_USER"], sasl_plain_password="a-guess")


def test_each_kafka_principal_is_refused_outside_its_acls():
    import kafka.errors
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

    from loopline.core.config import Settings

    settings, (raw, predictions) = Settings.from_env(), _card_fraud_topics()

    def first_poll(role: str, topic: str):
        consumer = KafkaConsumer(**settings.kafka(role).python(), enable_auto_commit=False)
        try:
            consumer.assign([TopicPartition(topic, 0)])
            consumer.seek_to_beginning()
            return consumer.poll(timeout_ms=5000)
        finally:
            consumer.close()

    with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
        first_poll("scoring", raw)  # scoring cannot read the raw events
    with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
        first_poll("reader", raw)
    first_poll("ingest", raw)  # what ingest is for
    producer = KafkaProducer(**settings.kafka("producer").python(), max_block_ms=10000)
    try:
        with pytest.raises(kafka.errors.KafkaError):  # the producer cannot forge predictions
            producer.send(predictions, b"forged").get(timeout=10)
    finally:
        producer.close()
    for role in ("ingest", "scoring", "producer", "reader"):
        admin = KafkaAdminClient(**settings.kafka(role).python())
        try:
            with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
                admin.delete_topics([raw])
        finally:
            admin.close()
    admin = KafkaAdminClient(**settings.kafka("admin").python())
    try:
        assert raw in admin.list_topics()  # still there
    finally:
        admin.close()
