#!/usr/bin/env python3
"""Start, stop and check Loopline's local stack: one real process per service.

Stdlib only, so it runs before (and without) the project's virtualenv.
Every service binds 127.0.0.1, keeps its state under ``.loopline/`` (git-ignored),
writes one log file under ``.loopline/logs/`` and has a health check.

    python3 infra/stack.py env      # write .loopline/env (ports, generated secrets) once
    python3 infra/stack.py up       # start what is not running, wait until healthy
    python3 infra/stack.py status   # one line per service
    python3 infra/stack.py down     # stop everything this script started
    python3 infra/stack.py stop kafka   # stop / start one service (outage drills, tests)

`up` also starts a supervisor, which restarts a service whose process died (a crash, an
OOM kill) and records it; `status` shows the restarts. `stop` and `down` are never undone.

In a container (docker-compose.yaml), one service runs in the foreground instead, its output
to the container's, and the engine's health check asks whether it is up and ready:

    python3 infra/stack.py run kafka     # until SIGTERM; exits with the service's status
    python3 infra/stack.py health kafka  # status 0 when healthy and its start-up work is done
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

REPO = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("LOOPLINE_STATE_DIR", REPO / ".loopline"))
TOOLS = Path(os.environ.get("LOOPLINE_TOOLS_DIR") or STATE)  # what `make setup` builds: classpaths, statsd_exporter
ENV_FILE = STATE / "env"
LOGS = STATE / "logs"
RUN = STATE / "run"
VENV_BIN = REPO / ".venv" / "bin"

DEFAULT_PORTS = {
    "LOOPLINE_PG_PORT": 15432,
    "LOOPLINE_KAFKA_PORT": 19092,
    "LOOPLINE_KAFKA_CONTROLLER_PORT": 19093,
    "LOOPLINE_KAFKA_INTERNAL_PORT": 19094,
    "LOOPLINE_S3_PORT": 18333,
    "LOOPLINE_MLFLOW_PORT": 15000,
    "LOOPLINE_SPARK_CONNECT_PORT": 15002,
    "LOOPLINE_AIRFLOW_PORT": 18080,
    "LOOPLINE_STATSD_PORT": 19125,          # statsd_exporter: StatsD in (UDP and TCP)
    "LOOPLINE_STATSD_EXPORTER_PORT": 19102,  # statsd_exporter: /metrics out
    "LOOPLINE_PROMETHEUS_PORT": 19090,
}
# The cluster profile's extra processes (LOOPLINE_PROFILE=cluster; docs/scaling.md).
CLUSTER_PORTS = {
    **{f"LOOPLINE_KAFKA_{node}_{kind}PORT": 19092 + 100 * (node - 1) + offset
       for node in (2, 3) for kind, offset in (("", 0), ("CONTROLLER_", 1), ("INTERNAL_", 2))},
    "LOOPLINE_SPARK_MASTER_PORT": 17077,
    "LOOPLINE_SPARK_MASTER_UI_PORT": 18081,
    **{f"LOOPLINE_SPARK_WORKER_{n}_{kind}PORT": base + n for n in (1, 2)
       for kind, base in (("", 17077), ("UI_", 18081))},
    "LOOPLINE_REDIS_PORT": 16379,
}
PROFILES = ("local", "cluster")
WARM_LOCAL_EXECUTOR = "loopline_airflow.warm_executor.WarmLocalExecutor"
SPARK_ACCOUNT = "loopline-spark"  # the OS account Spark Connect runs as when root starts the stack
MEMORY = {  # sized for a 2-core / 24 GiB machine; see docs/operations.md "Footprint"
    "kafka_heap": "512m",
    "spark_driver": "3g",  # both profiles: scoring publishes its predictions through the driver
    "airflow_parallelism": "2",  # a task a core: the demo week no slower than with 3, faster than with 4, in less memory
    # cluster profile: three brokers, two 1-core executors
    "cluster_kafka_heap": "384m",
    "spark_master_heap": "256m",
    "spark_worker_heap": "256m",
    "spark_executor": "2g",
    "celery_concurrency": "2",
}


class StackError(RuntimeError):
    """A service could not be started or stopped; the message says which, why, and the log."""


# ---------------------------------------------------------------- settings


SECRETS = {  # generated once, kept across `make setup`; every other setting derives from them
    "LOOPLINE_PG_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(18),   # loopline_owner: migrations, purges
    "LOOPLINE_PG_APP_PASSWORD": lambda: secrets.token_urlsafe(18),     # loopline_app: the pipeline's tasks
    "LOOPLINE_PG_AIRFLOW_PASSWORD": lambda: secrets.token_urlsafe(18),
    "LOOPLINE_PG_MLFLOW_PASSWORD": lambda: secrets.token_urlsafe(18),
    "AWS_ACCESS_KEY_ID": lambda: "loopline" + secrets.token_hex(4),
    "AWS_SECRET_ACCESS_KEY": lambda: secrets.token_urlsafe(30),
    "LOOPLINE_S3_VIEWER_ACCESS_KEY_ID": lambda: "viewer" + secrets.token_hex(4),  # read-only, for people
    "LOOPLINE_S3_VIEWER_SECRET_ACCESS_KEY": lambda: secrets.token_urlsafe(30),
    "AIRFLOW__API__SECRET_KEY": lambda: secrets.token_urlsafe(24),
    "AIRFLOW__API_AUTH__JWT_SECRET": lambda: secrets.token_urlsafe(24),
    # Airflow's users, one per FAB role (infra/airflow_users.py).
    **{f"AIRFLOW_{user}_PASSWORD": lambda: secrets.token_urlsafe(16)
       for user in ("ADMIN", "OPERATOR", "ENGINEER", "VIEWER")},
    # Kafka: the broker's own login (PLAIN, internal and controller listeners), and one SCRAM
    # principal per component (KAFKA_PRINCIPALS), each limited by ACLs to what it does.
    "LOOPLINE_KAFKA_BROKER_PASSWORD": lambda: secrets.token_urlsafe(24),
    **{f"LOOPLINE_KAFKA_{role.upper()}_PASSWORD": lambda: secrets.token_urlsafe(24)
       for role in ("admin", "ingest", "producer", "scoring", "reader")},
    # MLflow's basic-auth app: its admin (created at the server's first start), the tasks'
    # writer and a read-only viewer (created by loopline.ops.mlflow_users).
    "MLFLOW_AUTH_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(24),
    "MLFLOW_FLASK_SERVER_SECRET_KEY": lambda: secrets.token_urlsafe(32),
    "LOOPLINE_MLFLOW_WRITER_PASSWORD": lambda: secrets.token_urlsafe(24),
    "LOOPLINE_MLFLOW_VIEWER_PASSWORD": lambda: secrets.token_urlsafe(24),
    # Spark Connect refuses a client without it (the server and PySpark read this variable).
    "SPARK_CONNECT_AUTHENTICATE_TOKEN": lambda: secrets.token_urlsafe(32),
    # Prometheus's UI and API (basic auth, user `loopline`; its bcrypt hash is in its web config).
    "LOOPLINE_PROMETHEUS_PASSWORD": lambda: secrets.token_urlsafe(24),
    # Cluster profile: Spark's shared secret (master, workers, executors and the driver prove
    # they hold it; it also signs the JWTs the master's and workers' web UIs require), and
    # the Celery broker's (Redis) login.
    "LOOPLINE_SPARK_AUTH_SECRET": lambda: secrets.token_urlsafe(32),
    "LOOPLINE_REDIS_PASSWORD": lambda: secrets.token_urlsafe(24),
}
# Settings only a service's own process receives (see Service.environment): tasks, Spark and
# the other services never hold another component's database password.
PRIVATE_TO = {  # setting -> the service names (prefixes) that receive it
    "LOOPLINE_DB_ADMIN_URL": (),  # no service: `loopline bootstrap` and the operator's shell only
    "MLFLOW_BACKEND_STORE_URI": ("mlflow",),
    "MLFLOW_AUTH_ADMIN_PASSWORD": ("mlflow",),
    "MLFLOW_FLASK_SERVER_SECRET_KEY": ("mlflow",),
    "MLFLOW_AUTH_CONFIG_PATH": ("mlflow",),
    "LOOPLINE_MLFLOW_VIEWER_PASSWORD": (),
    "LOOPLINE_S3_VIEWER_SECRET_ACCESS_KEY": (),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": ("airflow-",),
    "AIRFLOW__API_AUTH__JWT_SECRET": ("airflow-",),
    "AIRFLOW__API__SECRET_KEY": ("airflow-",),
    **{k: () for k in SECRETS if k.startswith("AIRFLOW_") and k.endswith("_PASSWORD")},
    "LOOPLINE_KAFKA_BROKER_PASSWORD": ("kafka",),
    "LOOPLINE_KAFKA_ADMIN_PASSWORD": (),
    "LOOPLINE_PROMETHEUS_PASSWORD": (),  # people and the tests; Prometheus holds only its hash
    "LOOPLINE_SPARK_AUTH_SECRET": (),  # in Spark's private properties files only
    "LOOPLINE_REDIS_PASSWORD": (),  # in Redis's private config; Airflow has it in its broker URL
    "AIRFLOW__CELERY__BROKER_URL": ("airflow-",),
    "AIRFLOW__CELERY__RESULT_BACKEND": ("airflow-",),
    **{k: () for k in SECRETS if k.startswith("LOOPLINE_PG_")},
}


def read_env_file() -> dict[str, str]:
    values = {}
    for line in ENV_FILE.read_text().splitlines() if ENV_FILE.exists() else []:
        key, _, value = line.removeprefix("export ").partition("=")
        values[key] = shlex.split(value)[0] if value else ""
    return values


def write_private(path: Path, text: str) -> None:
    """Write a file that is created 0600 (never readable by others, not even for a moment)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    path.chmod(0o600)  # an older file keeps its mode on O_CREAT


def write_env_file() -> None:
    """Write .loopline/env: ports, URLs and local secrets (generated once, never committed).
    Secrets and ports already in the file are kept; URLs are derived from them every time,
    so a stack from an older Loopline gains the settings it lacks."""
    existing = read_env_file()
    profile = chosen_profile(existing)
    make_private_state()
    wanted_ports = {**DEFAULT_PORTS, **(CLUSTER_PORTS if profile == "cluster" else {})}
    ports = {k: int(existing.get(k) or os.environ.get(k, v)) for k, v in wanted_ports.items()}
    keys = {k: existing.get(k) or generate() for k, generate in SECRETS.items()}
    pg = f"127.0.0.1:{ports['LOOPLINE_PG_PORT']}"

    def db_url(role: str, password_key: str, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{role}:{keys[password_key]}@{pg}/{database}"

    airflow_home = STATE / "airflow"
    values = {
        **{k: str(v) for k, v in ports.items()},
        **keys,
        "LOOPLINE_STATE_DIR": str(STATE),
        "LOOPLINE_DB_URL": db_url("loopline_app", "LOOPLINE_PG_APP_PASSWORD", "loopline"),
        "LOOPLINE_DB_ADMIN_URL": db_url("loopline_owner", "LOOPLINE_PG_ADMIN_PASSWORD", "loopline"),
        "MLFLOW_BACKEND_STORE_URI": db_url("mlflow", "LOOPLINE_PG_MLFLOW_PASSWORD", "mlflow"),
        "LOOPLINE_PROFILE": profile,
        "LOOPLINE_KAFKA_BOOTSTRAP": ",".join(f"127.0.0.1:{ports[kafka_port(node)]}"
                                             for node in range(1, KAFKA_BROKERS[profile] + 1)),
        # Three brokers: every partition on all three, and a write needs two of them.
        "LOOPLINE_KAFKA_REPLICATION_FACTOR": str(KAFKA_BROKERS[profile]),
        "LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS": "2" if profile == "cluster" else "1",
        **{f"LOOPLINE_KAFKA_{role.upper()}_USER": f"loopline-{role}" for role in KAFKA_PRINCIPALS},
        "LOOPLINE_S3_ENDPOINT": f"http://127.0.0.1:{ports['LOOPLINE_S3_PORT']}",
        "LOOPLINE_S3_BUCKET": "loopline",
        "LOOPLINE_ONPREM_ROOT": str(STATE / "lake"),
        "LOOPLINE_SPARK_MASTER": (f"spark://127.0.0.1:{ports['LOOPLINE_SPARK_MASTER_PORT']}" if profile == "cluster"
                                  else "local[2]"),
        # `localhost`: PySpark sends the token over gRPC's local-TCP credentials, without TLS,
        # only to a host of that name.
        "SPARK_REMOTE": f"sc://localhost:{ports['LOOPLINE_SPARK_CONNECT_PORT']}",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": str(VENV_BIN / "python"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['LOOPLINE_MLFLOW_PORT']}",
        "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports['LOOPLINE_S3_PORT']}",
        # Every MLflow client (tasks, Spark's workers, the operator's shell) logs in as the writer.
        "LOOPLINE_MLFLOW_WRITER_USER": "loopline-writer",
        "LOOPLINE_MLFLOW_VIEWER_USER": "loopline-viewer",
        "MLFLOW_TRACKING_USERNAME": "loopline-writer",
        "MLFLOW_TRACKING_PASSWORD": keys["LOOPLINE_MLFLOW_WRITER_PASSWORD"],
        "MLFLOW_AUTH_CONFIG_PATH": str(STATE / "mlflow" / "basic_auth.ini"),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Local: Airflow's LocalExecutor, with the stages' libraries imported before it forks
        # its workers, so each task inherits them instead of importing them again.
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if profile == "cluster" else WARM_LOCAL_EXECUTOR,
        "AIRFLOW__CORE__PARALLELISM": MEMORY["airflow_parallelism"],
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL":
            f"http://127.0.0.1:{ports['LOOPLINE_AIRFLOW_PORT']}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url("airflow", "LOOPLINE_PG_AIRFLOW_PASSWORD", "airflow",
                                                      "postgresql+psycopg2"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(ports["LOOPLINE_AIRFLOW_PORT"]),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{ports['LOOPLINE_AIRFLOW_PORT']}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        # Airflow's own metrics, and Loopline's (loopline.core.telemetry), go as StatsD to
        # statsd_exporter, which Prometheus scrapes.
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(ports["LOOPLINE_STATSD_PORT"]),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__METRICS__STATSD_CUSTOM_CLIENT_PATH": "loopline_airflow.statsd_client.ConnectedStatsClient",
        "LOOPLINE_STATSD_ADDRESS": f"127.0.0.1:{ports['LOOPLINE_STATSD_PORT']}",
        "LOOPLINE_PROMETHEUS_URL": f"http://127.0.0.1:{ports['LOOPLINE_PROMETHEUS_PORT']}",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "GX_ANALYTICS_ENABLED": "false",
        # `psql` alone opens the loopline database as the application role; the passwords of
        # every role are in the pgpass file, so none is ever typed on a command line.
        "PGPASSFILE": str(STATE / "pgpass"),
        "PGHOST": "127.0.0.1", "PGPORT": str(ports["LOOPLINE_PG_PORT"]), "PGUSER": "loopline_app",
        "PGDATABASE": "loopline",
    }
    if profile == "cluster":
        values.update({
            "AIRFLOW__CELERY__BROKER_URL":
                f"redis://airflow:{keys['LOOPLINE_REDIS_PASSWORD']}@127.0.0.1:{ports['LOOPLINE_REDIS_PORT']}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": db_url("airflow", "LOOPLINE_PG_AIRFLOW_PASSWORD", "airflow",
                                                      "db+postgresql"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": MEMORY["celery_concurrency"],
            # A task Redis handed out and no worker acknowledged in this time goes to another
            # worker: longer than any task's time limit (the specs' timeouts).
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
        })
    write_private(STATE / "pgpass", "".join(
        f"127.0.0.1:{ports['LOOPLINE_PG_PORT']}:*:{role}:{keys[key]}\n" for role, key in ROLES.items()))
    write_private(ENV_FILE, "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items()))
    print(f"settings: {shown(ENV_FILE)} " + ("updated, its secrets kept" if existing
                                                        else "written with freshly generated secrets"))


KAFKA_BROKERS = {"local": 1, "cluster": 3}


def kafka_port(node: int, kind: str = "") -> str:
    """The setting holding broker `node`'s port of a kind ("", "CONTROLLER_", "INTERNAL_")."""
    return f"LOOPLINE_KAFKA_{kind}PORT" if node == 1 else f"LOOPLINE_KAFKA_{node}_{kind}PORT"


def chosen_profile(existing: dict[str, str]) -> str:
    """LOOPLINE_PROFILE when given, else the stack's own (local for a new one). A stack keeps
    its profile: its Kafka log, and the offsets its checkpoints hold, belong to its brokers."""
    current = existing.get("LOOPLINE_PROFILE", "local")
    requested = os.environ.get("LOOPLINE_PROFILE") or current
    if requested not in PROFILES:
        raise StackError(f"LOOPLINE_PROFILE={requested!r}: the profiles are {', '.join(PROFILES)}")
    if requested != current and any((STATE / name).exists() for name in ("kafka", "kafka-1")):
        raise StackError(
            f"this stack ({STATE}) was set up with the {current} profile, and its Kafka log and checkpoints "
            f"belong to those brokers. Keep it (run without LOOPLINE_PROFILE), or start over with the "
            f"{requested} profile beside it, in a folder of its own: `LOOPLINE_PROFILE={requested} "
            f"LOOPLINE_STATE_DIR=.loopline-{requested} make up` (stop this one first: `make down`; the ports are "
            f"the same). Or start over: `make clean` (deletes its data) then `LOOPLINE_PROFILE={requested} make up`.")
    return requested


def shown(path: Path) -> str:
    """A path as the user should read it: relative to the checkout when it is inside."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def make_private_state() -> None:
    """The state folder is the owner's alone: 0711 (others may pass through to the PostgreSQL
    folder, which belongs to the `postgres` account, but list and read nothing), and each entry
    in it 0700/0600. Deeper entries are out of reach through them."""
    STATE.mkdir(mode=0o700, parents=True, exist_ok=True)
    STATE.chmod(0o711)
    for entry in STATE.iterdir():
        # Only entries others can reach (a stack from an older Loopline): a chmod would also
        # clear the ACL mask that lets Spark's account into the lake (SparkConnect.prepare).
        mine = entry.stat().st_uid == os.geteuid()
        if mine and not entry.is_symlink() and entry.stat().st_mode & 0o007:
            entry.chmod(0o700 if entry.is_dir() else 0o600)


def load_env() -> dict[str, str]:
    if not ENV_FILE.exists():
        raise StackError(f"{ENV_FILE} is missing: run `make setup` first")
    env = {**os.environ, **read_env_file()}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ---------------------------------------------------------------- helpers


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def pid_alive(pid: int) -> bool:
    """True while the process runs; a zombie (exited, not yet reaped by its parent) is not alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_setup(script: list[str], env: dict[str, str], what: str) -> None:
    """Run a setup script with the venv's Python (`-m module` or a file): users, principals.
    Secrets reach it by environment, never argv."""
    result = subprocess.run([str(VENV_BIN / "python"), *script], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"{what} failed:\n{result.stderr[-3000:]}")
    print(f"  {result.stdout.strip().splitlines()[-1]}")


def classpath(name: str) -> str:
    path = TOOLS / "classpath" / f"{name}.cp"
    if not path.exists():
        raise StackError(f"{path} is missing: run `make setup` to resolve the jars from Maven Central")
    return path.read_text().strip()


def create_account(name: str, home: Path) -> None:
    """A system account with its own group and no login, made once."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(home),
                        "--shell", "/usr/sbin/nologin", name], check=True)


def grant_folder(folder: Path, account: str) -> None:
    """Give one account read and write on a folder tree, now and for whatever is created in
    it later (a default ACL: the umask of whoever writes does not matter). Nobody else gains."""
    if shutil.which("setfacl") is None:
        raise StackError("setfacl not found: run `make setup` (installs Debian's acl)")
    result = subprocess.run(["setfacl", "-R", "-m", f"u:{account}:rwX,d:u:{account}:rwX", str(folder)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"setfacl on {folder} failed (does its file system support ACLs?): {result.stderr.strip()}")


# ---------------------------------------------------------------- services


@dataclass
class Service:
    """A long-running process started in its own session, tracked by a pid file."""

    name: str
    port_var: str
    startup_timeout: float = 90.0
    extra_ports: list[str] = field(default_factory=list)

    def port(self, env: dict[str, str]) -> int:
        return int(env[self.port_var])

    @property
    def log(self) -> Path:
        return LOGS / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return RUN / f"{self.name}.pid"

    @property
    def wanted(self) -> Path:
        """Present from a successful start to a `stop`: a service wanted but not running crashed."""
        return RUN / f"{self.name}.wanted"

    def crashed(self) -> bool:
        return self.pid() is None and self.wanted.exists()  # in this order: `stop` unlinks, then kills

    def restarts(self) -> list[str]:
        """When the supervisor restarted this service (UTC), oldest first."""
        log = RUN / f"{self.name}.restarts"
        return log.read_text().split() if log.exists() else []

    def record_restart(self) -> None:
        with (RUN / f"{self.name}.restarts").open("a") as log:
            log.write(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))

    def pid(self) -> int | None:
        if not self.pid_file.exists():
            return None
        pid = int(self.pid_file.read_text().strip() or 0)
        if pid and pid_alive(pid):
            return pid
        self.pid_file.unlink()  # stale: the process died without `down`
        return None

    def owned_ports(self) -> list[str]:
        """Port variables this service listens on; each must be free before it starts."""
        return [self.port_var, *self.extra_ports]

    def prepare(self, env: dict[str, str]) -> None:
        """One-time initialisation before the first start (idempotent)."""

    def account(self) -> str | None:
        """The OS account the service runs as (and its group); None: the one running the stack."""
        return None

    def command(self, env: dict[str, str]) -> list[str]:
        raise NotImplementedError

    def healthy(self, env: dict[str, str]) -> bool:
        return port_open(self.port(env))

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """The process environment, without the settings private to other services."""
        return {k: v for k, v in env.items()
                if k not in PRIVATE_TO or any(self.name.startswith(owner) for owner in PRIVATE_TO[k])}

    def after_healthy(self, env: dict[str, str]) -> None:
        """Work that needs the service up (create users, buckets...)."""

    def start(self, env: dict[str, str]) -> None:
        if self.pid() is not None:
            # Ours and alive: maybe still starting. Wait for it rather than start a second copy,
            # which would orphan this one; a wedged one fails here with its log.
            self.wait_healthy(env)
            if not self.wanted.exists():  # its start-up work failed or was cut short: do it now
                self.after_healthy(env)
                self.wanted.touch()
            print(f"  {self.name:<22} already running")
            return
        self.check_ports_free(env)
        LOGS.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            process = self.spawn(env, log)
        self.pid_file.write_text(str(process.pid))
        self.wait_healthy(env, process)
        self.after_healthy(env)
        self.wanted.touch()
        print(f"  {self.name:<22} started (pid {process.pid}, log {shown(self.log)})")

    def check_ports_free(self, env: dict[str, str]) -> None:
        for var in self.owned_ports():
            deadline = time.monotonic() + 15  # a process that is exiting (a `stop` just now) lets go
            while port_open(int(env[var])) and time.monotonic() < deadline:
                time.sleep(0.5)
            if port_open(int(env[var])):
                raise StackError(
                    f"{self.name}: port {env[var]} on 127.0.0.1 is already taken by another process. "
                    f"Stop that process, or move Loopline: on a new stack `make clean` then `{var}=<free port> "
                    f"make up`; on an existing one replace {env[var]} everywhere in {ENV_FILE}."
                )

    def spawn(self, env: dict[str, str], output: BinaryIO | None) -> subprocess.Popen:
        """Prepare the service and start its process in a session of its own, writing to
        `output` (None: this process's own output, as in a container)."""
        self.prepare(env)
        RUN.mkdir(parents=True, exist_ok=True)
        account = self.account()
        as_account = {"user": account, "group": account, "extra_groups": []} if account else {}
        return subprocess.Popen(self.command(env), stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self.environment(env), cwd=REPO, start_new_session=True, **as_account)

    def run(self, env: dict[str, str]) -> int:
        """Run in the foreground until the process ends or SIGTERM/SIGINT stops it (a
        container's main process). Returns 0 when stopped so, else the process's exit status
        (a crash: the engine's restart policy starts it again). The ports are checked as by
        `start`; no pid file is written (a pid means nothing outside its container)."""
        self.wanted.unlink(missing_ok=True)  # `health` says ready only once the start-up work is done
        self.check_ports_free(env)
        process = self.spawn(env, None)
        stopped = False

        def forward(signum: int, _frame: object) -> None:
            nonlocal stopped
            stopped = True
            try:
                os.killpg(process.pid, signum)
            except ProcessLookupError:
                pass

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        self.wait_healthy(env, process, output="Its output is above.")
        self.after_healthy(env)
        self.wanted.touch()
        print(f"{self.name} is ready", flush=True)
        status = process.wait()
        self.wanted.unlink(missing_ok=True)
        return 0 if stopped else status

    def ready(self, env: dict[str, str]) -> bool:
        """Healthy, and the work after its start (users, principals...) done: others may use it."""
        return self.wanted.exists() and self.healthy(env)

    def wait_healthy(self, env: dict[str, str], process: subprocess.Popen | None = None, output: str = "") -> None:
        """Wait until healthy; fail with the end of its log (or `output`: where its output went)."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.healthy(env):
                return
            if process is not None and process.poll() is not None:
                raise StackError(f"{self.name} exited with status {process.returncode} while starting. "
                                 f"{output or self.log_tail()}")
            time.sleep(1)
        raise StackError(f"{self.name} did not become healthy within {self.startup_timeout:.0f}s. "
                         f"{output or self.log_tail()}")

    def log_tail(self) -> str:
        return f"Log {self.log}:\n{tail(self.log)}"

    def stop(self, env: dict[str, str]) -> None:
        """SIGTERM the service's session, wait up to 30 s, then SIGKILL whatever of it is left."""
        self.wanted.unlink(missing_ok=True)  # first: the supervisor must not bring it back
        pid = self.pid()
        if pid is None:
            return
        members = set(self.processes())
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while any(pid_alive(p) for p in members) and time.monotonic() < deadline:
            time.sleep(0.5)
        survivors = sorted(p for p in members if pid_alive(p))
        for survivor in survivors:
            try:
                os.kill(survivor, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.pid_file.unlink(missing_ok=True)
        note = f" ({len(survivors)} processes did not stop within 30 s: killed)" if survivors else ""
        print(f"  {self.name:<22} stopped{note}")

    def processes(self) -> dict[int, int]:
        """pid -> RSS KiB of the service: its session (it starts one) plus its process tree,
        which covers children that start sessions of their own, like PostgreSQL backends."""
        pid = self.pid()
        if pid is None:
            return {}
        rows = subprocess.run(["ps", "-eo", "pid=,ppid=,sid=,rss="], capture_output=True, text=True).stdout
        table = [tuple(int(x) for x in line.split()) for line in rows.splitlines()]
        children: dict[int, list[int]] = {}
        for child, parent, _, _ in table:
            children.setdefault(parent, []).append(child)
        members = {row[0] for row in table if row[2] == pid}
        todo = [pid]
        while todo:
            current = todo.pop()
            members.add(current)
            todo += children.get(current, [])
        return {child: rss for child, _, _, rss in table if child in members}

    def rss_mib(self) -> float:
        """Resident memory; pages shared between processes count once per process (upper bound)."""
        return sum(self.processes().values()) / 1024

    def pss_mib(self) -> float:
        """Proportional resident memory: a page shared by n processes counts 1/n in each, so the
        services' sum is what they hold together (RSS where the kernel does not show PSS)."""
        total_kib = 0
        for pid, rss_kib in self.processes().items():
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                total_kib += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
            except (OSError, StopIteration):  # gone, or another user's process we may not read
                total_kib += rss_kib
        return total_kib / 1024

    def status(self, env: dict[str, str]) -> str:
        pid = self.pid()
        restarts = self.restarts()
        restarted = f"  restarted {len(restarts)}x, last {restarts[-1]}" if restarts else ""
        if pid is None:
            return ("CRASHED (the supervisor restarts it)" if self.wanted.exists() else "stopped") + restarted
        health = "healthy" if self.healthy(env) else "UNHEALTHY"
        port = self.port(env) if self.port_var in self.owned_ports() else "-"  # e.g. a worker listens on none
        return f"{health:<9} pid {pid:<7} port {port:<6} RSS {self.rss_mib():>6.0f} MiB{restarted}"


def postgres_bin(tool: str) -> str:
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), reverse=True)
    if not candidates:
        raise StackError("postgres: PostgreSQL server binaries not found; run `make setup` (installs Debian's postgresql)")
    return str(candidates[0])


class Postgres(Service):
    """PostgreSQL cluster owned by the `postgres` OS user (the server refuses to run as root).

    Password (scram-sha-256) logins over TCP only; the socket sits in a private 0700 folder
    and lets in the cluster's own OS account alone (peer). One role per component."""

    root = STATE / "postgres"
    data, socket_dir = root / "data", root / "socket"

    def os_user(self) -> str:
        return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _as_postgres(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(prefix + args, capture_output=True, text=True, **kwargs)

    def _own(self, path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    def prepare(self, env: dict[str, str]) -> None:
        for path in (self.root, self.data, self.socket_dir):
            self._own(path)
        if not (self.data / "PG_VERSION").exists():
            result = self._as_postgres([postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres",
                                        "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8"])
            if result.returncode != 0:
                raise StackError(f"postgres: initdb failed:\n{result.stderr}")
        # Written on every start, so an older cluster's `trust` entry is gone too.
        self._as_postgres(["tee", str(self.data / "pg_hba.conf")], input=(
            "# Loopline (infra/stack.py): the cluster's OS account over the private socket; passwords over TCP\n"
            "local  all  postgres                 peer map=cluster\n"
            "host   all  all       127.0.0.1/32   scram-sha-256\n"), check=True)
        self._as_postgres(["tee", str(self.data / "pg_ident.conf")],
                          input=f"cluster  {self.os_user()}  postgres\n", check=True)

    def command(self, env: dict[str, str]) -> list[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return prefix + [postgres_bin("postgres"), "-D", str(self.data), "-h", "127.0.0.1",
                         "-p", env["LOOPLINE_PG_PORT"], "-k", str(self.socket_dir),
                         "-c", "shared_buffers=128MB", "-c", "max_connections=200"]

    def healthy(self, env: dict[str, str]) -> bool:
        return self._as_postgres([postgres_bin("pg_isready"), "-q", "-h", "127.0.0.1",
                                  "-p", env["LOOPLINE_PG_PORT"]]).returncode == 0

    def psql(self, env: dict[str, str], sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the private socket. The SQL goes in on stdin: it may hold
        a password, and a command line is visible to every account in `ps`."""
        result = self._as_postgres([postgres_bin("psql"), "-h", str(self.socket_dir), "-p", env["LOOPLINE_PG_PORT"],
                                    "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-tAq"], input=sql)
        if result.returncode != 0:
            raise StackError(f"postgres: SQL on {database} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def after_healthy(self, env: dict[str, str]) -> None:
        """Roles and databases (idempotent; passwords follow .loopline/env)."""
        for role, key in ROLES.items():
            password = env[key].replace("'", "''")
            exists = self.psql(env, f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'")
            self.psql(env, f"{'ALTER' if exists else 'CREATE'} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB "
                           f"NOCREATEROLE PASSWORD '{password}'")
        for database, (owner, users) in DATABASES.items():
            if not self.psql(env, f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):
                self.psql(env, f"CREATE DATABASE {database} OWNER {owner}")
            self.psql(env, f"ALTER DATABASE {database} OWNER TO {owner}; "
                           f"REVOKE ALL ON DATABASE {database} FROM PUBLIC; "
                           f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {', '.join((owner, *users))}")
        self.psql(env, "REVOKE ALL ON DATABASE postgres FROM PUBLIC")
        self._retire_shared_role(env)

    def _retire_shared_role(self, env: dict[str, str]) -> None:
        """A stack from before per-component roles had one role, `loopline`, owning everything:
        hand what it owns to each database's new owner and drop it."""
        if not self.psql(env, "SELECT 1 FROM pg_roles WHERE rolname = 'loopline'"):
            return
        for database, (owner, _) in DATABASES.items():
            self.psql(env, f"REASSIGN OWNED BY loopline TO {owner}; DROP OWNED BY loopline", database=database)
        self.psql(env, "DROP ROLE loopline")
        print("  postgres: the shared role `loopline` was replaced by one role per component")


ROLES = {  # role -> its password in .loopline/env
    "loopline_owner": "LOOPLINE_PG_ADMIN_PASSWORD",
    "loopline_app": "LOOPLINE_PG_APP_PASSWORD",
    "airflow": "LOOPLINE_PG_AIRFLOW_PASSWORD",
    "mlflow": "LOOPLINE_PG_MLFLOW_PASSWORD",
}
DATABASES = {  # database -> (owner, other roles that may connect and create temporary tables)
    "loopline": ("loopline_owner", ("loopline_app",)),
    "airflow": ("airflow", ()),
    "mlflow": ("mlflow", ()),
}


class ObjectStore(Service):
    """SeaweedFS (`weed mini`): the real S3-compatible server, the `cloud` storage tier.

    Only the S3 gateway takes clients, who sign every request with an identity's keys (the
    pipeline's, or the read-only viewer's). Its master, volume and filer servers speak HTTPS
    and gRPC with mutual TLS (a private CA made here; only the gateway holds a client
    certificate), and their requests carry JWTs signed with keys made fresh at each start."""

    home = STATE / "s3" / "home"  # weed reads $HOME/.seaweedfs/security.toml
    tls = STATE / "s3" / "tls"

    def prepare(self, env: dict[str, str]) -> None:
        (STATE / "s3" / "data").mkdir(parents=True, exist_ok=True)
        identities = {"identities": [
            {"name": "loopline",
             "credentials": [{"accessKey": env["AWS_ACCESS_KEY_ID"], "secretKey": env["AWS_SECRET_ACCESS_KEY"]}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "loopline-viewer",
             "credentials": [{"accessKey": env["LOOPLINE_S3_VIEWER_ACCESS_KEY_ID"],
                              "secretKey": env["LOOPLINE_S3_VIEWER_SECRET_ACCESS_KEY"]}],
             "actions": ["Read", "List"]},
        ]}
        write_private(STATE / "s3" / "identities.json", json.dumps(identities))
        self.make_certificates()
        write_private(self.home / ".seaweedfs" / "security.toml", self.security_toml())

    def make_certificates(self) -> None:
        """A private CA, and one certificate for the servers and one for their clients (once)."""
        if (self.tls / "client.crt").exists():
            return
        self.tls.mkdir(mode=0o700, parents=True, exist_ok=True)

        def openssl(*args: str) -> None:
            result = subprocess.run(["openssl", *args], cwd=self.tls, capture_output=True, text=True)
            if result.returncode != 0:
                raise StackError(f"object-store: openssl {args[0]} failed:\n{result.stderr[-2000:]}")

        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
                "-subj", "/CN=loopline-seaweedfs-ca")
        (self.tls / "usage.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                            "extendedKeyUsage=serverAuth,clientAuth\n")
        for name in ("server", "client"):
            openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=loopline-{name}")
            openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                    "-out", f"{name}.crt", "-days", "3650", "-extfile", "usage.ext")

    def security_toml(self) -> str:
        ca, server, client = (self.tls / "ca.crt", (self.tls / "server.crt", self.tls / "server.key"),
                              (self.tls / "client.crt", self.tls / "client.key"))
        lines = []
        for section in ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read"):
            lines += [f"[{section}]", f'key = "{secrets.token_urlsafe(32)}"', "expires_after_seconds = 10"]
        lines += ["[grpc]", f'ca = "{ca}"']
        for role in ("volume", "master", "filer", "s3", "admin"):
            lines += [f"[grpc.{role}]", f'cert = "{server[0]}"', f'key = "{server[1]}"']
        lines += ["[grpc.client]", f'cert = "{client[0]}"', f'key = "{client[1]}"',
                  "[https.client]", "enabled = true", f'cert = "{client[0]}"', f'key = "{client[1]}"', f'ca = "{ca}"']
        for role in ("volume", "master", "filer"):
            lines += [f"[https.{role}]", f'cert = "{server[0]}"', f'key = "{server[1]}"', f'ca = "{ca}"']
        return "\n".join(lines) + "\n"

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        return {**super().environment(env), "HOME": str(self.home)}

    def command(self, env: dict[str, str]) -> list[str]:
        base, sockets = int(env["LOOPLINE_S3_PORT"]), STATE / "s3"
        # Iceberg and Lance catalogs are off: Loopline does not use them, and each is a port.
        return [str(VENV_BIN / "weed"), "mini", f"-dir={STATE / 's3' / 'data'}",
                "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={base}",
                f"-master.port={base + 1000}", f"-volume.port={base + 1007}", f"-filer.port={base + 555}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={STATE / 's3' / 'identities.json'}",
                f"-filer.localSocket={sockets / 'filer.sock'}", f"-s3.localSocket={sockets / 's3.sock'}",
                f"-admin.port={base + 5313}", "-webdav=false", "-admin.ui=false"]

    def healthy(self, env: dict[str, str]) -> bool:
        # An anonymous request is answered (403) only once the gateway and filer are up.
        try:
            urllib.request.urlopen(env["LOOPLINE_S3_ENDPOINT"], timeout=2)
        except urllib.error.HTTPError as error:
            return error.code in (403, 400)
        except (urllib.error.URLError, OSError):
            return False
        return True


KAFKA_PRINCIPALS = ("admin", "ingest", "producer", "scoring", "reader")  # see loopline.core.kafka_auth


class Kafka(Service):
    """An Apache Kafka broker in KRaft mode (combined broker + controller): one on the local
    profile, three (a quorum of three controllers) on the cluster profile.

    Clients log in with SASL/SCRAM-SHA-256 (one principal per component) and the
    StandardAuthorizer denies what no ACL allows. The brokers use PLAIN on their internal
    and controller listeners (KRaft cannot use SCRAM there: the credentials live in the
    metadata it serves); that login is in the 0600 properties file only."""

    def __init__(self, node: int = 1, nodes: int = 1) -> None:
        super().__init__(name="kafka" if nodes == 1 else f"kafka-{node}", port_var=kafka_port(node),
                         extra_ports=[kafka_port(node, "CONTROLLER_"), kafka_port(node, "INTERNAL_")])
        self.node, self.nodes = node, nodes

    @property
    def folder(self) -> Path:
        return STATE / self.name

    def properties(self, env: dict[str, str]) -> Path:
        port, controller, internal = (env[var] for var in self.owned_ports())
        secret = env["LOOPLINE_KAFKA_BROKER_PASSWORD"]
        copies, in_sync = env["LOOPLINE_KAFKA_REPLICATION_FACTOR"], env["LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS"]
        quorum = (f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}" if self.nodes == 1 else
                  "controller.quorum.voters=" + ",".join(f"{n}@127.0.0.1:{env[kafka_port(n, 'CONTROLLER_')]}"
                                                         for n in range(1, self.nodes + 1)))
        plain = (f'org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" '
                 f'password="{secret}" user_broker="{secret}";')
        scram = "SASL_PLAINTEXT"
        path = self.folder / "server.properties"
        write_private(path, "\n".join([
            "process.roles=broker,controller",
            f"node.id={self.node}",
            quorum,
            f"listeners=CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=INTERNAL",
            f"listener.security.protocol.map=CONTROLLER:{scram},INTERNAL:{scram},CLIENT:{scram}",
            "sasl.mechanism.controller.protocol=PLAIN",
            "sasl.mechanism.inter.broker.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={plain}",
            "listener.name.internal.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.internal.plain.sasl.jaas.config={plain}",
            "listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.client.scram-sha-256.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.client.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:broker;User:loopline-admin",
            "allow.everyone.if.no.acl.found=false",
            f"log.dirs={self.folder / 'data'}",
            "num.partitions=2",
            f"offsets.topic.replication.factor={copies}",
            f"transaction.state.log.replication.factor={copies}",
            f"transaction.state.log.min.isr={in_sync}",
            f"min.insync.replicas={in_sync}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            # Local stack: keep every record (simulated days may be older than the 7-day
            # default). Production sets retention per topic.
            "log.retention.ms=-1",
            "",
        ]))
        return path

    def java(self, env: dict[str, str], main: str, *args: str) -> list[str]:
        if shutil.which("java") is None:
            raise StackError("kafka: `java` not found on PATH; Kafka 4 needs Java 17+ (`make setup` installs it)")
        log4j = REPO / "infra" / "kafka" / "log4j2.properties"
        heap = MEMORY["kafka_heap" if self.nodes == 1 else "cluster_kafka_heap"]
        return ["java", f"-Xmx{heap}", f"-Xms{heap}",
                f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath("kafka"), main, *args]

    def prepare(self, env: dict[str, str]) -> None:
        properties = self.properties(env)
        if (self.folder / "data" / "meta.properties").exists():
            return
        quorum = ["--standalone"] if self.nodes == 1 else []  # three: the voters are in the properties
        result = subprocess.run(self.java(env, "kafka.tools.StorageTool", "format", "-t", kafka_cluster_id(),
                                          "-c", str(properties), *quorum), capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"{self.name}: formatting the KRaft log directory failed:\n{result.stdout}{result.stderr}")

    def command(self, env: dict[str, str]) -> list[str]:
        return self.java(env, "kafka.Kafka", str(self.folder / "server.properties"))

    def healthy(self, env: dict[str, str]) -> bool:
        # The controller listener: the brokers of a quorum start one after the other, and the
        # first one serves clients only once a majority of controllers is up.
        return port_open(int(env[kafka_port(self.node, "CONTROLLER_")]))

    def after_healthy(self, env: dict[str, str]) -> None:
        """Once every broker runs (the last one started): create or update every principal's SCRAM
        credentials, as the broker (over its internal listener). The passwords follow
        .loopline/env and reach the tool by environment."""
        if self.node != self.nodes:
            return
        deadline = time.monotonic() + self.startup_timeout
        while not all(port_open(int(env[kafka_port(n)])) for n in range(1, self.nodes + 1)):
            if time.monotonic() > deadline:
                raise StackError(f"kafka: the brokers' client listeners did not open within {self.startup_timeout:.0f}s. "
                                 f"Logs: {', '.join(str(LOGS / f'kafka-{n}.log') for n in range(1, self.nodes + 1))}")
            time.sleep(1)
        run_setup(["-m", "loopline.ops.kafka_principals"],
                  {**env, "LOOPLINE_KAFKA_INTERNAL_PORT": env[kafka_port(self.node, "INTERNAL_")]},
                  "kafka: creating the SCRAM principals")


def kafka_cluster_id() -> str:
    """The cluster's id, made once and shared by its brokers (a random UUID, base64url as Kafka
    writes it)."""
    path = STATE / "kafka-cluster.id"
    if not path.exists():
        cluster_id = "-"
        while cluster_id.startswith("-"):  # Kafka's own tool avoids ids a command line reads as an option
            cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        write_private(path, cluster_id)
    return path.read_text()


class MLflow(Service):
    """MLflow tracking server + registry: PostgreSQL backend, artifacts proxied to the object
    store, and the basic-auth app: every request but /health needs a user (users and their
    permissions in a private SQLite file; see loopline.ops.mlflow_users)."""

    def prepare(self, env: dict[str, str]) -> None:
        write_private(Path(env["MLFLOW_AUTH_CONFIG_PATH"]), "\n".join([
            "[mlflow]",
            "default_permission = READ",
            f"database_uri = sqlite:///{STATE / 'mlflow' / 'auth.db'}",
            "admin_username = admin",  # its password: MLFLOW_AUTH_ADMIN_PASSWORD, by environment
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
            "grant_default_workspace_access = false",
            # A password check is a deliberate slow PBKDF2 hash; tasks make many requests.
            "auth_cache_ttl_seconds = 60",
            "",
        ]))

    def command(self, env: dict[str, str]) -> list[str]:
        # The backend URI (with its password) reaches MLflow as MLFLOW_BACKEND_STORE_URI, not argv.
        return [str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", env["LOOPLINE_MLFLOW_PORT"],
                "--artifacts-destination", f"s3://{env['LOOPLINE_S3_BUCKET']}/mlflow-artifacts",
                "--workers", "1", "--app-name", "basic-auth"]

    def after_healthy(self, env: dict[str, str]) -> None:
        run_setup(["-m", "loopline.ops.mlflow_users"], env, "mlflow: creating its users")

    def healthy(self, env: dict[str, str]) -> bool:
        return http_ok(f"{env['MLFLOW_TRACKING_URI']}/health")

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        # MLflow 3 starts a job runner and seven huey consumers (~2 GiB) for GenAI jobs
        # Loopline does not use; tracking and the registry work without them.
        return {**super().environment(env), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class SparkProcess(Service):
    """A Spark JVM: the Connect server (the driver), and on the cluster profile the standalone
    master and its workers. Started by root, all run as Spark's own account."""

    # What Spark's processes and their Python workers need, and nothing else: the object
    # store's keys (S3A), MLflow's writer (scoring loads models), the storage layout. Database
    # URLs and Kafka logins reach a job inside the work a client sends (its foreachBatch
    # handler), never through Spark's environment, so Spark cannot open what its clients did not.
    ENVIRONMENT = ("PATH", "HOME", "LANG", "TZ", "JAVA_HOME", "PYSPARK_PYTHON", "PYTHONUNBUFFERED",
                   "SPARK_LOCAL_IP", "SPARK_CONNECT_AUTHENTICATE_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                   "AWS_DEFAULT_REGION", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                   "MLFLOW_S3_ENDPOINT_URL", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "LOOPLINE_STATE_DIR",
                   "LOOPLINE_ONPREM_ROOT", "LOOPLINE_S3_ENDPOINT", "LOOPLINE_S3_BUCKET", "LOOPLINE_STORAGE_CONFIG",
                   "LOOPLINE_PIPELINES_DIR", "LOOPLINE_KAFKA_BOOTSTRAP", "GX_ANALYTICS_ENABLED")

    home = STATE / "spark"
    jars = home / "jars"

    @property
    def properties(self) -> Path:
        return self.home / f"{self.name}.conf"

    @property
    def spark_home(self) -> Path:
        return next((REPO / ".venv" / "lib").glob("python3*/site-packages/pyspark"))

    def account(self) -> str | None:
        # Started by root (CI, a server): its own account, which cannot read .loopline/env, the
        # other services' state, or anything outside the lake. Started by an ordinary account,
        # Spark runs as that account (switching needs root).
        return SPARK_ACCOUNT if os.geteuid() == 0 else None

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        # Not SPARK_REMOTE: it tells clients where the server is; spark-submit would read it as "be a client".
        allowed = {k: v for k, v in super().environment(env).items() if k in self.ENVIRONMENT or k.startswith("LC_")}
        return {**allowed, "HOME": str(self.home / "home")} if self.account() else allowed

    def settings(self, env: dict[str, str]) -> dict[str, str]:
        """This process's private properties file: on a standalone cluster, every member proves it
        holds the shared secret (RPC), and the master's and workers' web UIs require a JWT
        signed with it (docs/security.md)."""
        if not env["LOOPLINE_SPARK_MASTER"].startswith("spark://"):
            return {}
        return {"spark.authenticate": "true", "spark.authenticate.secret": env["LOOPLINE_SPARK_AUTH_SECRET"],
                "spark.ui.filters": "org.apache.spark.ui.JWSFilter",
                "spark.org.apache.spark.ui.JWSFilter.param.secretKey": spark_ui_key(env)}

    def prepare(self, env: dict[str, str]) -> None:
        for folder in (self.home, self.home / "home", self.home / "tmp"):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(self.properties, "".join(f"{k}={v}\n" for k, v in self.settings(env).items()))
        account = self.account()
        if account is None:
            return
        create_account(account, self.home / "home")
        self.share_jars()
        owned = [self.home / "home", self.home / "tmp"]  # and what is in them
        for path in [self.home, self.properties, self.jars, *owned, *(p for o in owned for p in o.rglob("*"))]:
            shutil.chown(path, account, account)
        lake = Path(env["LOOPLINE_ONPREM_ROOT"])
        lake.mkdir(mode=0o700, parents=True, exist_ok=True)
        grant_folder(lake, account)
        python = env["PYSPARK_PYTHON"]
        if subprocess.run(["runuser", "-u", account, "--", python, "-c", "import loopline"],
                          capture_output=True, cwd="/").returncode != 0:
            raise StackError(
                f"{self.name}: the account {account} cannot run {python} with Loopline's code. Spark runs "
                f"as that account when the stack is started by root: put the checkout where other accounts "
                f"may read it (not under /root), or start the stack as an ordinary user.")

    def share_jars(self) -> None:
        """Spark's extra jars, linked (or copied) out of the Maven cache, which is private to root."""
        self.jars.mkdir(mode=0o700, exist_ok=True)
        for jar in map(Path, classpath("spark").split(":")):
            target = self.jars / jar.name
            if target.exists() and target.stat().st_size == jar.stat().st_size:
                continue
            target.unlink(missing_ok=True)
            try:
                if not jar.stat().st_mode & 0o004:
                    raise OSError("a private file: copy it")
                os.link(jar, target)  # the same read-only file, no copy
            except OSError:
                shutil.copyfile(jar, target)
                shutil.chown(target, SPARK_ACCOUNT, SPARK_ACCOUNT)


def spark_ui_key(env: dict[str, str]) -> str:
    """The JWSFilter's HMAC key (base64url, 256 bits), derived from Spark's shared secret."""
    digest = hashlib.sha256(f"loopline-spark-ui:{env['LOOPLINE_SPARK_AUTH_SECRET']}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


# The Spark JVMs' logging: Spark's defaults with the Kafka client's per-poll INFO lines left out.
SPARK_LOGGING = f"-Dlog4j2.configurationFile={REPO / 'infra' / 'spark' / 'log4j2.properties'}"


class SparkConnect(SparkProcess):
    """A long-lived Spark driver that tasks reach over Spark Connect: no JVM start per task.
    Its master is LOOPLINE_SPARK_MASTER: `local[2]`, or the cluster profile's standalone master."""

    def settings(self, env: dict[str, str]) -> dict[str, str]:
        # Session settings (S3A, time zone...) come from loopline.core.spark, the single source.
        result = subprocess.run([str(VENV_BIN / "python"), "-m", "loopline.core.spark"], env=env,
                                capture_output=True, text=True, check=True)
        session = dict(line.split("=", 1) for line in result.stdout.splitlines() if line)
        return {**session, **super().settings(env)}

    def command(self, env: dict[str, str]) -> list[str]:
        master = env["LOOPLINE_SPARK_MASTER"]
        server_conf = {
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": env["LOOPLINE_SPARK_CONNECT_PORT"],
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.host": "127.0.0.1",  # where executors reach the driver
            "spark.local.dir": str(self.home / "tmp"),
            # Spark's UI has no login of its own (only servlet filters a deployment supplies), and
            # it shows every query with its literals: off here. docs/security.md says how to see it.
            "spark.ui.enabled": "false",
            # Give the heap a busy stage grew back to the OS once the server idles: a GC cycle
            # after 30 s without one, and no more than half the heap left free after it.
            "spark.driver.extraJavaOptions": f"-XX:G1PeriodicGCInterval=30000 -XX:MaxHeapFreeRatio=50 {SPARK_LOGGING}",
        }
        if master.startswith("spark://"):  # one executor per worker, a core each
            server_conf.update({"spark.executor.cores": "1", "spark.executor.memory": MEMORY["spark_executor"],
                                "spark.cores.max": "2", "spark.executor.extraJavaOptions": SPARK_LOGGING})
        jars = classpath("spark").split(":")
        if self.account():
            jars = [str(self.jars / Path(jar).name) for jar in jars]
        args = [str(self.spark_home / "bin" / "spark-submit"),
                "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
                "--name", "loopline-spark-connect", "--master", master,
                "--driver-memory", MEMORY["spark_driver"], "--properties-file", str(self.properties),
                "--jars", ",".join(jars)]
        for key, value in server_conf.items():
            args += ["--conf", f"{key}={value}"]
        return args + ["spark-internal"]


class SparkMaster(SparkProcess):
    """The cluster profile's Spark standalone master: the Connect server's executors run on its workers."""

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        return {**super().environment(env), "SPARK_DAEMON_MEMORY": MEMORY["spark_master_heap"]}

    def command(self, env: dict[str, str]) -> list[str]:
        return [str(self.spark_home / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
                "--host", "127.0.0.1", "--port", env[self.port_var], "--webui-port", env["LOOPLINE_SPARK_MASTER_UI_PORT"],
                "--properties-file", str(self.properties)]


class SparkWorker(SparkProcess):
    """A standalone worker offering one core and MEMORY["spark_executor"] to the master; its
    executors' scratch space is its own folder."""

    def __init__(self, number: int) -> None:
        super().__init__(name=f"spark-worker-{number}", port_var=f"LOOPLINE_SPARK_WORKER_{number}_PORT",
                         extra_ports=[f"LOOPLINE_SPARK_WORKER_{number}_UI_PORT"])

    @property
    def work(self) -> Path:
        return self.home / self.name

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        return {**super().environment(env), "SPARK_DAEMON_MEMORY": MEMORY["spark_worker_heap"]}

    def prepare(self, env: dict[str, str]) -> None:
        self.work.mkdir(mode=0o700, parents=True, exist_ok=True)
        super().prepare(env)
        if self.account():
            shutil.chown(self.work, SPARK_ACCOUNT, SPARK_ACCOUNT)

    def command(self, env: dict[str, str]) -> list[str]:
        port, ui = (env[var] for var in self.owned_ports())
        return [str(self.spark_home / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
                "--host", "127.0.0.1", "--port", port, "--webui-port", ui, "--cores", "1",
                "--memory", MEMORY["spark_executor"], "--work-dir", str(self.work),
                "--properties-file", str(self.properties), env["LOOPLINE_SPARK_MASTER"]]


PROMETHEUS_CONFIG = REPO / "infra" / "prometheus"


class StatsdExporter(Service):
    """The StatsD bridge (statsd_exporter, built by `make setup`): Airflow's metrics and
    Loopline's arrive as StatsD (DogStatsD tags become labels; infra/prometheus/statsd_mapping.yml
    names Airflow's), and Prometheus scrapes them from its /metrics."""

    def command(self, env: dict[str, str]) -> list[str]:
        statsd = f"127.0.0.1:{env['LOOPLINE_STATSD_PORT']}"
        return [str(TOOLS / "bin" / "statsd_exporter"), f"--web.listen-address=127.0.0.1:{env[self.port_var]}",
                f"--statsd.listen-udp={statsd}", f"--statsd.listen-tcp={statsd}",
                f"--statsd.mapping-config={PROMETHEUS_CONFIG / 'statsd_mapping.yml'}", "--statsd.cache-size=10000"]

    def healthy(self, env: dict[str, str]) -> bool:
        return http_ok(f"http://127.0.0.1:{env[self.port_var]}/metrics")


class Prometheus(Service):
    """Prometheus (Debian's package): scrapes the StatsD bridge every 5 s, evaluates
    infra/prometheus/loopline_rules.yml, keeps 15 days; basic auth on its UI and API."""

    def prepare(self, env: dict[str, str]) -> None:
        folder = STATE / "prometheus"
        (folder / "data").mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(folder / "prometheus.yml", "\n".join([
            "global: {scrape_interval: 5s, evaluation_interval: 15s}",
            f"rule_files: [{PROMETHEUS_CONFIG / 'loopline_rules.yml'}]",
            "scrape_configs:",
            "  - job_name: statsd",
            f"    static_configs: [{{targets: ['127.0.0.1:{env['LOOPLINE_STATSD_EXPORTER_PORT']}']}}]",
            "    honor_labels: true",
            "",
        ]))
        hashed = subprocess.run([str(VENV_BIN / "python"), "-c", "import bcrypt, sys; print(bcrypt.hashpw("
                                 "sys.stdin.read().encode(), bcrypt.gensalt()).decode())"],
                                input=env["LOOPLINE_PROMETHEUS_PASSWORD"], capture_output=True, text=True, check=True)
        write_private(folder / "web.yml", f"basic_auth_users:\n  loopline: '{hashed.stdout.strip()}'\n")

    def command(self, env: dict[str, str]) -> list[str]:
        folder = STATE / "prometheus"
        return ["prometheus", f"--config.file={folder / 'prometheus.yml'}", f"--web.config.file={folder / 'web.yml'}",
                f"--web.listen-address=127.0.0.1:{env[self.port_var]}", f"--storage.tsdb.path={folder / 'data'}",
                "--storage.tsdb.retention.time=15d"]

    def healthy(self, env: dict[str, str]) -> bool:
        login = base64.b64encode(f"loopline:{env['LOOPLINE_PROMETHEUS_PASSWORD']}".encode()).decode()
        request = urllib.request.Request(f"{env['LOOPLINE_PROMETHEUS_URL']}/-/healthy",
                                         headers={"Authorization": f"Basic {login}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False


class AirflowComponent(Service):
    """One Airflow 3 component (`airflow <subcommand>`); they share the env file's settings."""

    def __init__(self, subcommand: str, port_var: str = "LOOPLINE_AIRFLOW_PORT") -> None:
        super().__init__(name=f"airflow-{subcommand}", port_var=port_var)
        self.subcommand = subcommand

    def prepare(self, env: dict[str, str]) -> None:
        if self.subcommand != "api-server":
            return
        result = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=self.environment(env),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"airflow: `airflow db migrate` failed:\n{result.stderr[-3000:]}")
        (STATE / "airflow" / "passwords.json").unlink(missing_ok=True)  # the SimpleAuthManager's, before FAB
        run_setup([str(REPO / "infra" / "airflow_users.py")], env,
                  "airflow: creating its users")

    def command(self, env: dict[str, str]) -> list[str]:
        # The log servers listen on every interface (not configurable); on one machine the
        # API server reads task logs from the files, so they are not started.
        serves_logs = self.subcommand in ("scheduler", "triggerer")
        return [str(VENV_BIN / "airflow"), self.subcommand, *(["--skip-serve-logs"] if serves_logs else [])]

    def healthy(self, env: dict[str, str]) -> bool:
        url = f"{env['AIRFLOW__API__BASE_URL']}/api/v2/monitor/health"
        if self.subcommand == "api-server":
            return http_ok(url)
        key = self.subcommand.replace("-", "_")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.load(response).get(key, {}).get("status") == "healthy"
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def owned_ports(self) -> list[str]:
        return [self.port_var] if self.subcommand == "api-server" else []


class Redis(Service):
    """Redis (Debian's redis-server): the cluster profile's Celery broker. Only the `airflow`
    user may log in (ACL; the default user is off); queued tasks survive a restart (AOF)."""

    folder = STATE / "redis"

    def prepare(self, env: dict[str, str]) -> None:
        if shutil.which("redis-server") is None:
            raise StackError("redis: `redis-server` not found; run `make setup` (installs Debian's redis-server)")
        (self.folder / "data").mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(self.folder / "redis.conf", "\n".join([
            "bind 127.0.0.1", f"port {env[self.port_var]}", "protected-mode yes", "daemonize no",
            f"dir {self.folder / 'data'}", "appendonly yes", 'save ""', "maxmemory 256mb",
            "user default off", f"user airflow on >{env['LOOPLINE_REDIS_PASSWORD']} ~* &* +@all", ""]))

    def command(self, env: dict[str, str]) -> list[str]:
        return ["redis-server", str(self.folder / "redis.conf")]

    def healthy(self, env: dict[str, str]) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", int(env[self.port_var])), timeout=2) as sock:
                sock.sendall(f"AUTH airflow {env['LOOPLINE_REDIS_PASSWORD']}\r\nPING\r\n".encode())
                reply = b""
                while reply.count(b"\r\n") < 2:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    reply += chunk
            return reply == b"+OK\r\n+PONG\r\n"
        except OSError:
            return False


SPARK_QUEUE = "spark"  # the Celery queue of Spark-bound tasks (loopline_airflow.dag_factory)


class CeleryWorker(AirflowComponent):
    """An Airflow Celery worker taking tasks from some queues. A task instance's hostname names
    the worker that ran it (`<worker>@<host>`), as on a cluster of separate machines."""

    def __init__(self, number: int, queues: str) -> None:
        super().__init__("celery-worker")
        self.name, self.queues = f"airflow-celery-worker-{number}", queues

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        return {**super().environment(env), "LOOPLINE_WORKER_NAME": self.name,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "loopline_airflow.worker_identity.hostname"}

    def command(self, env: dict[str, str]) -> list[str]:
        # No log server (it would listen on every interface): the API server reads the log files.
        return [str(VENV_BIN / "airflow"), "celery", "worker", "--queues", self.queues,
                "--celery-hostname", f"{self.name}@%h", "--skip-serve-logs"]

    def healthy(self, env: dict[str, str]) -> bool:
        ping = subprocess.run([str(VENV_BIN / "celery"), "--app", "airflow.providers.celery.executors.celery_executor.app",
                               "inspect", "ping", "--timeout", "2", "--destination", f"{self.name}@{socket.gethostname()}"],
                              env=self.environment(env), capture_output=True, text=True, cwd=REPO)
        return ping.returncode == 0 and "pong" in ping.stdout


def services(env: dict[str, str]) -> list[Service]:
    """The stack's processes, in start order, for its profile (docs/scaling.md)."""
    cluster = env.get("LOOPLINE_PROFILE") == "cluster"
    brokers = KAFKA_BROKERS["cluster" if cluster else "local"]
    return [
        Postgres("postgres", "LOOPLINE_PG_PORT"),
        ObjectStore("object-store", "LOOPLINE_S3_PORT"),
        *(Kafka(node, brokers) for node in range(1, brokers + 1)),
        MLflow("mlflow", "LOOPLINE_MLFLOW_PORT"),
        *([SparkMaster("spark-master", "LOOPLINE_SPARK_MASTER_PORT", extra_ports=["LOOPLINE_SPARK_MASTER_UI_PORT"]),
           SparkWorker(1), SparkWorker(2)] if cluster else []),
        SparkConnect("spark-connect", "LOOPLINE_SPARK_CONNECT_PORT", startup_timeout=120.0),
        StatsdExporter("statsd-exporter", "LOOPLINE_STATSD_EXPORTER_PORT", extra_ports=["LOOPLINE_STATSD_PORT"]),
        Prometheus("prometheus", "LOOPLINE_PROMETHEUS_PORT"),
        *([Redis("redis", "LOOPLINE_REDIS_PORT")] if cluster else []),
        AirflowComponent("api-server"),
        AirflowComponent("scheduler"),
        AirflowComponent("dag-processor"),
        AirflowComponent("triggerer"),
        *([CeleryWorker(1, "default"), CeleryWorker(2, SPARK_QUEUE)] if cluster else []),
    ]


def service_named(env: dict[str, str], name: str) -> Service:
    for service in services(env):
        if service.name == name:
            return service
    raise StackError(f"no service {name!r}; services: {', '.join(s.name for s in services(env))}")


SUPERVISOR_PID = RUN / "supervisor.pid"
SUPERVISE_EVERY_S = 5.0


def supervise(env: dict[str, str]) -> None:
    """Run until stopped: restart every service that crashed (wanted, but its process is gone),
    in the stack's order, and record each restart for `status`. A service stopped on purpose
    (`down`, `stop`) is left alone."""
    while True:
        for service in services(env):
            if service.crashed():
                print(f"{time.strftime('%H:%M:%S')} {service.name} is not running: restarting", flush=True)
                try:
                    service.start(env)
                    service.record_restart()
                except StackError as error:
                    print(f"{service.name} did not restart: {error}", flush=True)
        time.sleep(SUPERVISE_EVERY_S)


def supervisor_pid() -> int | None:
    pid = int(SUPERVISOR_PID.read_text()) if SUPERVISOR_PID.exists() else None
    return pid if pid and pid_alive(pid) else None


def start_supervisor() -> None:
    if supervisor_pid() is not None:
        return
    with (LOGS / "supervisor.log").open("ab") as log:
        process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "supervise"], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                                   start_new_session=True)
    SUPERVISOR_PID.write_text(str(process.pid))
    print(f"  {'supervisor':<22} started (pid {process.pid}): restarts a service that crashes")


def stop_supervisor() -> None:
    pid = supervisor_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        print(f"  {'supervisor':<22} stopped")
    SUPERVISOR_PID.unlink(missing_ok=True)


def up(env: dict[str, str]) -> None:
    print(f"Starting the Loopline stack ({env.get('LOOPLINE_PROFILE', 'local')} profile):")
    for service in services(env):
        service.start(env)
    start_supervisor()
    print("Bootstrapping topics, bucket and tables:")
    result = subprocess.run([str(VENV_BIN / "loopline"), "bootstrap"], env=env)
    if result.returncode != 0:
        raise StackError("bootstrap failed (see the message above)")


def down(env: dict[str, str]) -> None:
    print("Stopping the Loopline stack:")
    stop_supervisor()
    for service in reversed(services(env)):
        service.stop(env)


def status(env: dict[str, str]) -> bool:
    all_healthy = True
    for service in services(env):
        line = service.status(env)
        all_healthy &= line.startswith("healthy")
        print(f"  {service.name:<22} {line}")
    print(f"  {'total':<22} {'':<35} RSS {sum(s.rss_mib() for s in services(env)):>6.0f} MiB "
          f"(PSS {sum(s.pss_mib() for s in services(env)):.0f} MiB: shared pages counted once)")
    supervisor = supervisor_pid()
    print(f"  {'supervisor':<22} " + (f"running   pid {supervisor}" if supervisor else "STOPPED (`make up` starts it)"))
    return all_healthy and supervisor is not None


def main(argv: list[str]) -> int:
    os.umask(0o077)  # everything the stack creates is its owner's alone; services inherit it
    command = argv[1] if len(argv) > 1 else "status"
    try:
        if command == "env":
            write_env_file()
            return 0
        env = load_env()
        if command == "up":
            up(env)
        elif command == "down":
            down(env)
        elif command == "status":
            return 0 if status(env) else 1
        elif command == "supervise":
            supervise(env)
        elif command in ("start", "stop") and len(argv) == 3:
            getattr(service_named(env, argv[2]), command)(env)
        elif command == "run" and len(argv) == 3:
            return service_named(env, argv[2]).run(env)
        elif command == "health" and len(argv) == 3:
            return 0 if service_named(env, argv[2]).ready(env) else 1
        else:
            print(__doc__)
            return 2
    except StackError as error:
        print(f"\nERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
