"""The warm LocalExecutor: the stages' libraries are in the scheduler before its workers fork.
The check runs in a fresh interpreter, so what it sees was imported by the executor, not by
another test. (That tasks run when forked this way, every DAG run in tests/integration shows.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"

PROBE = """
import json, sys
from airflow.executors.local_executor import LocalExecutor
from loopline_airflow.warm_executor import PRELOADED, WarmLocalExecutor

seen = {}
def record_start(self):  # stands in for the fork of the workers: what would they inherit?
    seen["missing"] = [m for m in PRELOADED if m not in sys.modules]
LocalExecutor.start = record_start
before = [m for m in PRELOADED if m in sys.modules]
WarmLocalExecutor(parallelism=1).start()
print(json.dumps({"before": before, **seen}))
"""


def test_the_libraries_are_imported_before_the_workers_fork():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [str(PLUGINS), *filter(None, [os.environ.get("PYTHONPATH")])])})
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "great_expectations" not in seen["before"]  # the probe starts cold
    assert seen["missing"] == []
