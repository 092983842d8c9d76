"""infra/stack.py refuses to start a service on a taken port, naming the service, cause and fix."""
import importlib.util
import socket
import sys
from pathlib import Path

import pytest

STACK_PATH = Path(__file__).resolve().parents[2] / "infra" / "stack.py"


@pytest.fixture(scope="module")
def stack():
    spec = importlib.util.spec_from_file_location("loopline_stack", STACK_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


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
