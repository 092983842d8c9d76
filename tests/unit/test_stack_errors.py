"""infra/stack.py refuses to start a service on a taken port, naming the service, cause and fix;
and a profile's settings say which engines the same code runs on."""
import importlib.util
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import pytest

STACK_PATH = Path(__file__).resolve().parents[2] / "infra" / "stack.py"


def load_stack():
    spec = importlib.util.spec_from_file_location("loopline_stack", STACK_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stack():
    return load_stack()


@pytest.fixture
def stack_in(tmp_path, monkeypatch):
    """infra/stack.py with its state folder in tmp_path (settings only: nothing is started)."""
    monkeypatch.setenv("LOOPLINE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("LOOPLINE_PROFILE", raising=False)
    return load_stack()


def test_taken_port_stops_setup_with_service_port_and_remedy(stack):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        service = stack.Service(name="probe-service", port_var="PROBE_PORT")
        with pytest.raises(stack.StackError) as error:
            service.start({"PROBE_PORT": str(port)})
    message = str(error.value)
    assert "probe-service" in message and str(port) in message and "PROBE_PORT" in message


def test_exited_service_reports_its_log(stack, tmp_path):
    class Crashes(stack.Service):
        def command(self, env):
            return ["sh", "-c", "echo 'fatal: config broken' ; exit 3"]

    service = Crashes(name="probe-crash", port_var="PROBE_PORT", startup_timeout=20)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    try:
        with pytest.raises(stack.StackError, match="exited with status 3(.|\n)*fatal: config broken"):
            service.start({"PROBE_PORT": str(port)})
    finally:
        service.log.unlink(missing_ok=True)
        service.pid_file.unlink(missing_ok=True)


def test_a_live_service_that_is_still_starting_is_awaited_not_started_twice(stack):
    class SlowStarter(stack.Service):
        def command(self, env):
            return ["sleep", "60"]

        def healthy(self, env):
            return Path(env["READY_FLAG"]).exists()

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    service = SlowStarter(name="probe-slow", port_var="PROBE_PORT", startup_timeout=2)
    ready = service.log.with_suffix(".ready")
    env = {"PROBE_PORT": str(port), "READY_FLAG": str(ready)}
    try:
        with pytest.raises(stack.StackError, match="did not become healthy"):
            service.start(env)  # starts `sleep`, which never reports healthy
        first = service.pid()
        assert first is not None
        with pytest.raises(stack.StackError, match="did not become healthy"):
            service.start(env)  # must wait on the same process, not launch another
        assert service.pid() == first
        ready.touch()
        service.start(env)
        assert service.pid() == first
    finally:
        service.stop(env)
        ready.unlink(missing_ok=True)
        service.log.unlink(missing_ok=True)


def test_the_cluster_profile_points_the_same_code_at_three_brokers_a_spark_master_and_celery(stack_in, monkeypatch):
    monkeypatch.setenv("LOOPLINE_PROFILE", "cluster")
    stack_in.write_env_file()
    env = stack_in.read_env_file()
    assert env["LOOPLINE_PROFILE"] == "cluster"
    assert env["LOOPLINE_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292"
    assert (env["LOOPLINE_KAFKA_REPLICATION_FACTOR"], env["LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
    assert env["LOOPLINE_SPARK_MASTER"] == "spark://127.0.0.1:17077"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].endswith("@127.0.0.1:16379/0")
    names = [service.name for service in stack_in.services(env)]
    assert names.index("spark-worker-2") < names.index("spark-connect") and names.count("airflow-celery-worker-1") == 1
    assert [n for n in names if n.startswith("kafka")] == ["kafka-1", "kafka-2", "kafka-3"]
    broker = stack_in.service_named(env, "kafka-2")
    properties = broker.properties(env).read_text()
    assert "node.id=2" in properties and "min.insync.replicas=2" in properties
    assert "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293" in properties


def test_the_local_profile_is_the_default_with_one_broker_local_spark_and_the_local_executor(stack_in):
    stack_in.write_env_file()
    env = stack_in.read_env_file()
    assert (env["LOOPLINE_PROFILE"], env["LOOPLINE_SPARK_MASTER"], env["AIRFLOW__CORE__EXECUTOR"]) == (
        "local", "local[2]", "loopline_airflow.warm_executor.WarmLocalExecutor")
    assert env["LOOPLINE_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092" and env["LOOPLINE_KAFKA_REPLICATION_FACTOR"] == "1"
    assert "AIRFLOW__CELERY__BROKER_URL" not in env
    assert not any(s.name.startswith(("spark-worker", "redis", "airflow-celery")) for s in stack_in.services(env))


def test_a_stack_keeps_its_profile_and_says_how_to_run_the_other_beside_it(stack_in, monkeypatch):
    stack_in.write_env_file()
    (stack_in.STATE / "kafka").mkdir()  # the local broker's log: this stack has data
    monkeypatch.setenv("LOOPLINE_PROFILE", "cluster")
    with pytest.raises(stack_in.StackError) as refused:
        stack_in.write_env_file()
    message = str(refused.value)
    assert "set up with the local profile" in message and "LOOPLINE_STATE_DIR=.loopline-cluster" in message
    assert stack_in.read_env_file()["LOOPLINE_PROFILE"] == "local"


def test_a_running_service_whose_start_up_work_failed_gets_it_done_at_the_next_start(stack):
    """A process left running when its start-up work (users, principals) failed is not started
    again, but that work is: `up` after a fix completes it, and the service counts as ready."""

    class FailsOnce(stack.Service):
        attempts = 0

        def command(self, env):
            return ["sleep", "60"]

        def healthy(self, env):
            return True

        def after_healthy(self, env):
            FailsOnce.attempts += 1
            if FailsOnce.attempts == 1:
                raise stack.StackError("creating the principals failed")

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    service, env = FailsOnce(name="probe-start-up", port_var="PROBE_PORT", startup_timeout=5), {"PROBE_PORT": str(port)}
    try:
        with pytest.raises(stack.StackError, match="principals failed"):
            service.start(env)
        first = service.pid()
        assert first is not None and not service.ready(env)
        service.start(env)
        assert service.pid() == first and service.ready(env) and FailsOnce.attempts == 2
    finally:
        service.stop(env)
        service.log.unlink(missing_ok=True)


def _free_port() -> str:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return str(free.getsockname()[1])


@pytest.fixture
def signal_handlers():
    """`Service.run` installs SIGTERM and SIGINT handlers in this process: put Python's back."""
    yield
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_run_in_the_foreground_is_ready_after_its_start_up_work_and_stops_cleanly_on_sigterm(stack, signal_handlers):
    """`stack.py run` is a container's main process: `health` says ready once the start-up work
    is done; `docker stop`'s SIGTERM reaches the service, and the container exits 0."""
    class Sleeper(stack.Service):
        def command(self, env):
            return ["sleep", "60"]

        def healthy(self, env):
            return True

    service, env, seen = Sleeper(name="probe-run", port_var="PROBE_PORT", startup_timeout=5), {"PROBE_PORT": _free_port()}, {}

    def docker_stop() -> None:
        seen["ready"] = service.ready(env)
        os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Timer(2, docker_stop)
    timer.start()
    try:
        assert service.run(env) == 0
    finally:
        timer.cancel()
    assert seen["ready"] and not service.ready(env)


def test_run_in_the_foreground_returns_the_status_of_a_service_that_crashes(stack, signal_handlers):
    class Crashes(stack.Service):
        def command(self, env):
            return ["sh", "-c", "sleep 1; exit 3"]

        def healthy(self, env):
            return True

    assert Crashes(name="probe-run-crash", port_var="PROBE_PORT").run({"PROBE_PORT": _free_port()}) == 3
