"""The stack's supervisor brings back a service that crashed, and `make status` says so.

Each service is crashed for real: every process of it gets SIGKILL at once, with no chance
to shut down. The supervisor (started by `make up`) restarts it; a client then uses it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress

import pytest

from loopline.core.config import REPOSITORY, Settings
from stack_access import stack


def _works(name: str) -> None:
    """A real call to the restarted service, as a task would make it."""
    settings = Settings.from_env()
    if name == "kafka":
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(**settings.kafka("admin").python())
        try:
            assert admin.list_topics()
        finally:
            admin.close()
    elif name == "mlflow":
        from mlflow import MlflowClient

        assert MlflowClient().search_experiments(max_results=1) is not None
    else:
        from loopline.core.spark import get_spark

        with suppress(Exception):  # the session died with the server: forget it, then open a new one
            get_spark(settings).stop()
        assert get_spark(settings).range(3).count() == 3


@pytest.mark.parametrize("name", ["kafka", "mlflow", "spark-connect"])
def test_a_crashed_service_is_restarted_by_the_supervisor_and_status_says_so(name):
    env = stack.load_env()
    service = stack.service_named(env, name)
    assert stack.supervisor_pid() is not None, "make up starts the supervisor"
    before = len(service.restarts())
    for pid in service.processes():
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (len(service.restarts()) > before and service.healthy(env)):
        time.sleep(1)

    assert len(service.restarts()) == before + 1 and service.healthy(env)
    status = subprocess.run([sys.executable, str(REPOSITORY / "infra" / "stack.py"), "status"], capture_output=True,
                            text=True, cwd=REPOSITORY).stdout
    line = next(line for line in status.splitlines() if line.strip().startswith(name))
    assert line.split()[1] == "healthy" and f"restarted {before + 1}x" in line, status
    _works(name)
