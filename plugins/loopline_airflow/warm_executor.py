"""Airflow's LocalExecutor, with the stages' libraries imported once before its workers fork.

Every task runs in a process that a LocalExecutor worker forks, and a worker is itself forked
from the scheduler when the executor starts. Whatever the scheduler has imported by then,
every task inherits for free, its pages shared until written. A nightly run is ten short
tasks in a row, and each paid its imports again: Great Expectations alone takes about 6 s,
MLflow and scikit-learn a few more. Here they are imported once per scheduler start.

Nothing preloaded opens a connection: what must not cross a fork is live state (a channel, a
socket), not code. gRPC's module comes in with GX (through pyspark), but no channel exists
before the fork, and each task opens its own Spark Connect session after it. The native
thread pools that numpy, pyarrow and scikit-learn start (BLAS, jemalloc, OpenMP) have their
own fork handlers. Every DAG run through the scheduler in the integration tests runs its
tasks this way.

Selected with AIRFLOW__CORE__EXECUTOR=loopline_airflow.warm_executor.WarmLocalExecutor
(infra/stack.py sets it on the local profile).
"""
from __future__ import annotations

import importlib
import time

from airflow.executors.local_executor import LocalExecutor

PRELOADED = (
    "numpy", "pandas", "pyarrow.dataset", "pyarrow.parquet",
    "sklearn.compose", "sklearn.impute", "sklearn.linear_model", "sklearn.metrics", "sklearn.pipeline",
    "sklearn.preprocessing",
    "mlflow", "mlflow.models", "mlflow.pyfunc", "mlflow.sklearn",
    "great_expectations",
)


class WarmLocalExecutor(LocalExecutor):
    """LocalExecutor that imports PRELOADED before it forks its workers."""

    def start(self) -> None:
        started = time.monotonic()
        for module in PRELOADED:
            importlib.import_module(module)
        self.log.info("preloaded %d libraries for the tasks in %.1f s", len(PRELOADED), time.monotonic() - started)
        super().start()
