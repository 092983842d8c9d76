"""Locked down by default, checked on the running stack: what listens, who PostgreSQL lets in
and with what rights, what a second account on this machine can read, and where the
generated secrets never appear."""
from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from loopline.ops.bootstrap import admin_db_url
from stack_access import generated_secrets, stack

INTRUDER = "loopline-intruder"  # a second account on the machine, made by this module
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
STATE = Path(os.environ["LOOPLINE_STATE_DIR"])


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
    pids = {pid for service in stack.services(stack.load_env()) for pid in service.processes()}
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


def test_postgres_refuses_missing_and_wrong_passwords_over_tcp(monkeypatch):
    monkeypatch.delenv("PGPASSFILE")  # the operator's pgpass would fill in a missing password
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
        cur.execute("CREATE TEMPORARY TABLE allowed (x int); DROP TABLE allowed")
        cur.execute("SELECT count(*) FROM loopline.predictions")


def test_another_account_can_read_nothing_under_the_state_folder(intruder):
    assert STATE.stat().st_mode & 0o777 == 0o711
    assert as_intruder("ls", str(STATE)).returncode != 0
    for relative in ("env", "lake", "s3/identities.json", "s3/tls/ca.key", "s3/home", "airflow", "postgres/data", "logs",
                     "spark", "kafka/server.properties", "mlflow/auth.db", "mlflow/basic_auth.ini"):
        path = STATE / relative
        assert path.exists(), path
        command = ["ls", str(path)] if path.is_dir() else ["cat", str(path)]
        denied = as_intruder(*command)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, relative
    # What Spark writes into the lake (with the umask the stack gave it) is private as well.
    from loopline.core.config import Settings
    from loopline.core.spark import get_spark

    probe = Path(os.environ["LOOPLINE_ONPREM_ROOT"]) / "_security_probe"
    get_spark(Settings.from_env()).range(3).write.mode("overwrite").parquet(f"file://{probe}")
    try:
        written = next(probe.glob("*.parquet"))
        assert written.stat().st_mode & 0o077 == 0 and probe.stat().st_mode & 0o077 == 0
        assert as_intruder("cat", str(written)).returncode != 0
    finally:
        shutil.rmtree(probe)


def test_no_generated_secret_is_on_a_command_line():
    """Task logs and MLflow runs are checked after the nightly loop (test_nightly_loop.py)."""
    command_lines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command_lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    assert len(command_lines) > 20
    for key, value in generated_secrets().items():
        assert not [c for c in command_lines if value in c], f"{key} is on a command line"


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


def _kafka_bootstrap_fails(**login) -> None:
    import kafka.errors
    from kafka import KafkaConsumer

    from loopline.core.config import Settings

    with pytest.raises(kafka.errors.KafkaTimeoutError, match="Unable to bootstrap"):
        KafkaConsumer(bootstrap_servers=Settings.from_env().kafka_bootstrap, bootstrap_timeout_ms=5000, **login)


def test_kafka_refuses_a_client_without_sasl(caplog):
    _kafka_bootstrap_fails()
    assert "socket disconnected" in caplog.text  # the broker hangs up on a client that does not log in


def test_kafka_refuses_a_wrong_password():
    """The broker's own log is the proof: the client may see the refusal or only the hang-up."""
    log = STATE / "logs" / "kafka.log"
    refusal = "invalid credentials with SASL mechanism SCRAM-SHA-256"
    before = log.read_text(errors="replace").count(refusal)
    _kafka_bootstrap_fails(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                           sasl_plain_username="loopline-ingest", sasl_plain_password="a-guess")
    assert log.read_text(errors="replace").count(refusal) > before


def test_a_principal_may_log_in_with_scram_sha_512_as_strimzis_brokers_require(monkeypatch):
    """LOOPLINE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512 (docs/deploy-kubernetes.md): the same principal
    logs in with the other SCRAM variant, in kafka-python's and in Spark's options."""
    from kafka import KafkaConsumer, TopicPartition

    from loopline.core.config import Settings

    monkeypatch.setenv("LOOPLINE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    login = Settings.from_env().kafka("ingest")
    assert login.python()["sasl_mechanism"] == login.spark()["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    raw, _ = _card_fraud_topics()
    consumer = KafkaConsumer(**login.python(), enable_auto_commit=False)
    try:
        assert consumer.end_offsets([TopicPartition(raw, 0)])
    finally:
        consumer.close()


def test_each_kafka_principal_is_refused_outside_its_acls():
    import kafka.errors
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

    from loopline.core.config import Settings

    settings, (raw, predictions) = Settings.from_env(), _card_fraud_topics()

    def end_offsets(role: str, topic: str):
        consumer = KafkaConsumer(**settings.kafka(role).python(), enable_auto_commit=False)
        try:
            return consumer.end_offsets([TopicPartition(topic, 0)])
        finally:
            consumer.close()

    with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
        end_offsets("scoring", raw)  # scoring cannot read the raw events
    with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
        end_offsets("reader", raw)
    assert end_offsets("ingest", raw)  # what ingest is for
    producer = KafkaProducer(**settings.kafka("producer").python(), max_block_ms=10000)
    try:
        with pytest.raises(kafka.errors.TopicAuthorizationFailedError):  # the producer cannot forge predictions
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


def _mlflow(method: str, path: str, login: tuple[str, str] | None, **body):
    import requests

    return requests.request(method, f"{os.environ['MLFLOW_TRACKING_URI']}{path}", auth=login, json=body or None,
                            params=None if body else {"max_results": 1}, timeout=30)


def test_mlflow_refuses_a_client_without_credentials_or_with_wrong_ones():
    writer = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])
    for path in ("/api/2.0/mlflow/experiments/search", "/api/2.0/mlflow/registered-models/search",
                 "/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow/experiments/search"):
        for login in (None, (writer[0], "a-guess"), ("admin", "a-guess")):
            assert _mlflow("GET", path, login).status_code == 401, (path, login and login[0])
    assert _mlflow("GET", "/api/2.0/mlflow/experiments/search", writer).status_code == 200
    assert _mlflow("GET", "/health", None).status_code == 200  # the one open route, for health checks


def test_the_mlflow_viewer_reads_but_changes_nothing_of_the_pipelines():
    from mlflow import MlflowClient

    model = f"security-probe-{os.getpid()}"
    MlflowClient().create_registered_model(model)  # as the tasks' writer, who then manages it
    try:
        viewer = (os.environ["LOOPLINE_MLFLOW_VIEWER_USER"], stack.read_env_file()["LOOPLINE_MLFLOW_VIEWER_PASSWORD"])
        read = _mlflow("GET", f"/api/2.0/mlflow/registered-models/get?name={model}", viewer)
        assert read.status_code == 200 and read.json()["registered_model"]["name"] == model
        for path, body in (("/api/2.0/mlflow/registered-models/set-tag", {"name": model, "key": "k", "value": "v"}),
                           ("/api/2.0/mlflow/registered-models/alias", {"name": model, "alias": "champion",
                                                                         "version": "1"})):
            assert _mlflow("POST", path, viewer, **body).status_code == 403, path
        assert _mlflow("DELETE", "/api/2.0/mlflow/registered-models/delete", viewer, name=model).status_code == 403
    finally:
        MlflowClient().delete_registered_model(model)


def _s3(access_key: str, secret_key: str):
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["LOOPLINE_S3_ENDPOINT"], aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key)


def test_the_s3_gateway_refuses_anonymous_and_wrong_keys_and_the_viewer_only_reads():
    import botocore.exceptions
    import requests

    bucket = os.environ["LOOPLINE_S3_BUCKET"]
    assert requests.get(f"{os.environ['LOOPLINE_S3_ENDPOINT']}/{bucket}", timeout=10).status_code == 403
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidAccessKeyId|AccessDenied|SignatureDoesNotMatch"):
        _s3(os.environ["AWS_ACCESS_KEY_ID"], "a-guess").list_objects_v2(Bucket=bucket, MaxKeys=1)
    secrets = stack.read_env_file()
    viewer = _s3(secrets["LOOPLINE_S3_VIEWER_ACCESS_KEY_ID"], secrets["LOOPLINE_S3_VIEWER_SECRET_ACCESS_KEY"])
    writer = _s3(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    key = f"_security_probe/{os.getpid()}"
    writer.put_object(Bucket=bucket, Key=key, Body=b"written by the pipeline")
    try:
        assert viewer.get_object(Bucket=bucket, Key=key)["Body"].read() == b"written by the pipeline"
        for change in (lambda: viewer.put_object(Bucket=bucket, Key=key, Body=b"changed"),
                       lambda: viewer.delete_object(Bucket=bucket, Key=key)):
            with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
                change()
        assert writer.get_object(Bucket=bucket, Key=key)["Body"].read() == b"written by the pipeline"
    finally:
        writer.delete_object(Bucket=bucket, Key=key)


def _tls_accepts(port: int, certificate: tuple[Path, Path] | None) -> bool:
    """Whether the server at `port` lets a TLS client in (with or without a client certificate)."""
    import socket
    import ssl

    context = ssl.create_default_context(cafile=stack.ObjectStore.tls / "ca.crt")
    if certificate:
        context.load_cert_chain(*certificate)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\n\r\n")
                tls.recv(1)  # TLS 1.3: a missing client certificate is refused here
        except (ssl.SSLError, ConnectionResetError):
            return False
    return True


def test_seaweedfs_inner_servers_refuse_everyone_but_the_gateway():
    """Master, volume and filer (HTTP and gRPC) require the client certificate only the S3
    gateway holds; with it, the filer and volume still demand a signed JWT."""
    import requests

    base = int(os.environ["LOOPLINE_S3_PORT"])
    http_ports = {"master": base + 1000, "volume": base + 1007, "filer": base + 555}
    grpc_ports = {f"{name} gRPC": port + 10000 for name, port in http_ports.items()}
    client = (stack.ObjectStore.tls / "client.crt", stack.ObjectStore.tls / "client.key")
    for name, port in {**http_ports, **grpc_ports}.items():
        assert not _tls_accepts(port, None), f"{name} let a client without a certificate in"
        assert _tls_accepts(port, client), f"{name} refused the gateway's certificate"
    for name, port in http_ports.items():
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 400, name  # plain HTTP
    for name in ("volume", "filer"):
        answer = requests.get(f"https://127.0.0.1:{http_ports[name]}/loopline/", cert=tuple(map(str, client)),
                              verify=str(stack.ObjectStore.tls / "ca.crt"), timeout=5)
        assert answer.status_code == 401, name  # no JWT


def _airflow_token(username: str, password: str):
    import requests

    return requests.post(f"{os.environ['AIRFLOW__API__BASE_URL']}/auth/token",
                         json={"username": username, "password": password}, timeout=30)


def test_airflow_refuses_anonymous_callers_and_wrong_passwords():
    import requests

    api = f"{os.environ['AIRFLOW__API__BASE_URL']}/api/v2"
    assert requests.get(f"{api}/dags", timeout=30).status_code == 401
    forged = requests.get(f"{api}/dags", headers={"Authorization": "Bearer forged.token.value"}, timeout=30)
    assert forged.status_code == 403 and "dags" not in forged.json()  # Airflow's answer to a bad JWT
    for username in ("admin", "viewer", "nobody"):
        assert _airflow_token(username, "a-guess").status_code == 401


def test_the_loop_view_refuses_anonymous_callers():
    """The plugin's pages send an anonymous browser to Airflow's login; its API and assets
    answer a caller without a valid token with 401, a forged one with 403."""
    import requests

    base = f"{os.environ['AIRFLOW__API__BASE_URL']}/loopline"
    for page in ("/", "/pipelines/card_fraud", "/static/echarts.min.js"):
        answer = requests.get(f"{base}{page}", allow_redirects=False, timeout=30)
        assert answer.status_code == 302 and "/auth/login/?next=" in answer.headers["location"], page
    for api in ("/api/overview", "/api/pipelines/card_fraud"):
        assert requests.get(f"{base}{api}", timeout=30).status_code == 401, api
        forged = requests.get(f"{base}{api}", headers={"Authorization": "Bearer forged.token.value"}, timeout=30)
        assert forged.status_code == 403 and "pipeline" not in forged.text, api
    token = _airflow_token("viewer", stack.read_env_file()["AIRFLOW_VIEWER_PASSWORD"]).json()["access_token"]
    overview = requests.get(f"{base}/api/overview", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert overview.status_code == 200 and "card_fraud" in {row["pipeline"] for row in overview.json()}


def test_prometheus_refuses_anonymous_callers_and_wrong_passwords():
    import requests

    query = f"{os.environ['LOOPLINE_PROMETHEUS_URL']}/api/v1/query"
    assert requests.get(query, params={"query": "up"}, timeout=30).status_code == 401
    assert requests.get(query, params={"query": "up"}, auth=("loopline", "a-guess"), timeout=30).status_code == 401
    answer = requests.get(query, params={"query": "up"}, timeout=30,
                          auth=("loopline", stack.read_env_file()["LOOPLINE_PROMETHEUS_PASSWORD"]))
    assert answer.status_code == 200 and answer.json()["status"] == "success"


def test_each_airflow_role_may_do_only_its_own_part():
    """Viewer reads; engineer (User) also pauses and triggers, but sees no connections;
    operator (Op) manages connections; only admin manages users."""
    import requests

    secrets = stack.read_env_file()
    api = f"{os.environ['AIRFLOW__API__BASE_URL']}"

    def session(username: str) -> requests.Session:
        token = _airflow_token(username, secrets[f"AIRFLOW_{username.upper()}_PASSWORD"])
        assert token.status_code == 201, username
        client = requests.Session()
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        return client

    allowed = [  # (method, path, body, the logins allowed to do it)
        ("GET", "/api/v2/dags?limit=1", None, {"viewer", "engineer", "operator", "admin"}),
        ("PATCH", "/api/v2/dags/{dag}", {"is_paused": False}, {"engineer", "operator", "admin"}),
        ("GET", "/api/v2/connections?limit=1", None, {"operator", "admin"}),
        ("GET", "/auth/fab/v1/users?limit=1", None, {"admin"}),
    ]
    dag = session("viewer").get(f"{api}/api/v2/dags?limit=1", timeout=30).json()["dags"][0]["dag_id"]
    for login in ("viewer", "engineer", "operator", "admin"):
        client = session(login)
        for method, path, body, logins in allowed:
            status = client.request(method, api + path.format(dag=dag), json=body, timeout=30).status_code
            assert (status == 200) == (login in logins), (login, method, path, status)
            assert status in (200, 403), (login, path, status)


def _owner(pid: int) -> int | None:
    try:
        return Path(f"/proc/{pid}").stat().st_uid
    except OSError:  # a Python worker that just ended
        return None


def test_spark_connect_runs_as_an_account_that_cannot_read_the_stack_secrets():
    """Code that reaches Spark (any client's query, any UDF) runs as Spark's own account: it
    cannot read the settings file, the other services' state, or a stranger's files."""
    owners = {_owner(pid) for pid in stack.service_named(stack.load_env(), "spark-connect").processes()} - {None}
    if os.geteuid() != 0:  # an ordinary account cannot switch: Spark runs as it
        assert owners == {os.geteuid()}
        return
    spark = pwd.getpwnam(stack.SPARK_ACCOUNT)
    assert owners == {spark.pw_uid} and spark.pw_uid != 0
    assert os.getgrouplist(spark.pw_name, spark.pw_gid) == [spark.pw_gid]  # no root group
    for relative in ("env", "pgpass", "s3/identities.json", "kafka", "mlflow/auth.db", "airflow", "classpath"):
        denied = subprocess.run(["runuser", "-u", spark.pw_name, "--", "cat" if (STATE / relative).is_file()
                                 else "ls", str(STATE / relative)], capture_output=True, text=True, cwd="/")
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, relative


def test_spark_connect_holds_only_the_secrets_it_needs():
    """The driver and its Python workers get the object store's keys, MLflow's writer and the
    client token; no database password, no Kafka login, nothing of Airflow's."""
    needed = {"AWS_SECRET_ACCESS_KEY", "SPARK_CONNECT_AUTHENTICATE_TOKEN", "LOOPLINE_MLFLOW_WRITER_PASSWORD"}
    service = stack.service_named(stack.load_env(), "spark-connect")
    environments = []
    for pid in service.processes():
        try:
            environments.append(Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace"))
        except OSError:
            continue
    assert any("SPARK_CONNECT_AUTHENTICATE_TOKEN=" in e for e in environments)
    for key, value in generated_secrets().items():
        if key not in needed:
            assert not [e for e in environments if value in e], f"Spark Connect holds {key}"
    assert not [e for e in environments if "LOOPLINE_DB_URL=" in e or "AIRFLOW__" in e]
