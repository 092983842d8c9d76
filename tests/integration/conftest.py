"""Integration tests run against the real stack started by `make up` (`make test` does it).

Each session gets its own throw-away pipeline (spec copied from card_fraud under a unique
name, with its own topics, lake paths, tables rows and registered model), so the tests
neither see nor disturb the demo's data.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml

from loopline.spec import PIPELINES_DIR, derived_spec

REQUIRED_ENV = ["LOOPLINE_DB_URL", "LOOPLINE_KAFKA_BOOTSTRAP", "MLFLOW_TRACKING_URI", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def pytest_collection_modifyitems(items):
    missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
    if missing and any("integration" in str(item.fspath) for item in items):
        pytest.exit(f"integration tests need the running stack: {missing} unset. Run `make test` "
                    "(it starts the stack), or `make up && source .loopline/env`.", returncode=2)


@pytest.fixture(scope="session")
def make_pipeline(tmp_path_factory):
    """Create throw-away pipelines spec'd like card_fraud (own topics, lake paths, rows, model),
    visible to loopline through LOOPLINE_PIPELINES_DIR; all are removed at session end.

    `make_pipeline(**overrides)` merges `overrides` into the spec's top-level blocks."""
    from loopline.bootstrap import ensure_topics
    from loopline.config import Settings
    from loopline.spec import load_spec

    directory: Path = tmp_path_factory.mktemp("pipelines")
    for pipeline_file in [*PIPELINES_DIR.glob("*.yaml"), *PIPELINES_DIR.glob("*.py")]:  # specs, feature modules
        (directory / pipeline_file.name).write_text(pipeline_file.read_text())
    os.environ["LOOPLINE_PIPELINES_DIR"] = str(directory)
    settings, created = Settings.from_env(), []

    def make(**overrides) -> str:
        name = f"it_{uuid.uuid4().hex[:8]}"
        raw = derived_spec("card_fraud", name, {"training": {"min_labelled_rows": 1000}, **overrides})
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(raw))
        ensure_topics(settings.kafka_bootstrap, load_spec(name).topics)
        created.append(name)
        return name

    yield make
    for name in created:
        remove_pipeline(name, settings)


@pytest.fixture(scope="session")
def pipeline_name(make_pipeline) -> str:
    """The throw-away pipeline the nightly-loop tests share."""
    return make_pipeline()


def remove_pipeline(name: str, settings) -> None:
    """Delete everything the throw-away pipeline left on the shared services; parts a failed
    run never created are skipped."""
    from contextlib import suppress

    from airflow.api.common.delete_dag import delete_dag
    from airflow.exceptions import DagNotFound
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from loopline.bootstrap import remove_pipeline_data
    from loopline.spec import load_spec

    remove_pipeline_data(settings, load_spec(name))
    with suppress(MlflowException):  # no model if the run failed before registering one
        MlflowClient().delete_registered_model(name)
    with suppress(DagNotFound):
        delete_dag(f"{name}_nightly")


@pytest.fixture(scope="session")
def nightly_dag_for_tests(pipeline_name, tmp_path_factory):
    """The nightly DAG of the throw-away pipeline, built by the same factory as dags/.

    dag.test() needs the DAG in a DAG bundle: this process gets a second local bundle holding
    a three-line DAG file for the test pipeline, so the real dags folder stays untouched.
    """
    import json

    bundle = tmp_path_factory.mktemp("dag_bundle")
    (bundle / f"{pipeline_name}_nightly.py").write_text(
        "from loopline_airflow.dag_factory import nightly_dag\n\n"
        f"dag = nightly_dag({pipeline_name!r}, scheduled=False)\n"
    )
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps([
        {"name": "dags-folder", "classpath": local, "kwargs": {}},
        {"name": "loopline-integration-tests", "classpath": local, "kwargs": {"path": str(bundle)}},
    ])
    from loopline_airflow.dag_factory import nightly_dag

    return nightly_dag(pipeline_name, scheduled=False)
