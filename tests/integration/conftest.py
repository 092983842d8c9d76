"""Integration tests run against the real stack started by `make up` (`make test` does it).

Tests make throw-away pipelines (a spec under a unique name, with its own topics, lake
paths, table rows and registered model), so they neither see nor disturb the demo's data:
copies of card_fraud, and a pipeline in which every name differs (renamed_pipeline.py).
They live in a temporary pipelines folder (and expectations folder) made the process's
own through LOOPLINE_PIPELINES_DIR and LOOPLINE_EXPECTATIONS_DIR.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
import yaml

import renamed_pipeline
from loopline.contracts.rules import EXPECTATIONS_DIR
from loopline.core.spec import PIPELINES_DIR, derived_spec

REQUIRED_ENV = ["LOOPLINE_DB_URL", "LOOPLINE_KAFKA_BOOTSTRAP", "MLFLOW_TRACKING_URI", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def pytest_collection_modifyitems(items):
    missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
    if missing and any("integration" in str(item.fspath) for item in items):
        pytest.exit(f"integration tests need the running stack: {missing} unset. Run `make test` "
                    "(it starts the stack), or `make up && source .loopline/env`.", returncode=2)


class ThrowAwayPipelines:
    """Makes throw-away pipelines on the real services and removes them all at the end."""

    def __init__(self, pipelines: Path, expectations: Path) -> None:
        from loopline.core.config import Settings

        self.pipelines, self.expectations = pipelines, expectations
        self.settings = Settings.from_env()
        self.created: list[str] = []

    def __call__(self, **overrides) -> str:
        """A copy of card_fraud; `overrides` are merged into the spec's top-level blocks.

        The copy has no `deadline_hours`: Airflow 3.3's dag.test() fails at the end of a run of a
        DAG with a deadline (apache/airflow#73428); the scheduler, which the demo uses, does not."""
        name = f"it_{uuid.uuid4().hex[:8]}"
        return self.from_document(derived_spec("card_fraud", name, {"training": {"min_labelled_rows": 1000},
                                                                     "deadline_hours": None, **overrides}))

    def renamed(self) -> str:
        """The pipeline whose every source, field, dataset, topic and suite has another name."""
        renamed_pipeline.write_suites(self.expectations, EXPECTATIONS_DIR)
        return self.from_document(renamed_pipeline.spec(f"it_{uuid.uuid4().hex[:8]}"))

    def from_document(self, raw: dict) -> str:
        from loopline.core.spec import load_spec
        from loopline.ops.bootstrap import ensure_topics

        name = raw["name"]
        (self.pipelines / f"{name}.yaml").write_text(yaml.safe_dump(raw))
        ensure_topics(self.settings, [load_spec(name)])
        self.created.append(name)
        return name

    def remove_all(self) -> None:
        for name in self.created:
            remove_pipeline(name, self.settings)


@pytest.fixture(scope="session")
def make_pipeline(tmp_path_factory):
    """`make_pipeline(**overrides)`: a card_fraud copy; `make_pipeline.renamed()`: the renamed one."""
    pipelines, expectations = tmp_path_factory.mktemp("pipelines"), tmp_path_factory.mktemp("expectations")
    for pipeline_file in [*PIPELINES_DIR.glob("*.yaml"), *PIPELINES_DIR.glob("*.py")]:  # specs, feature modules
        shutil.copy(pipeline_file, pipelines)
    for suite in EXPECTATIONS_DIR.glob("*.json"):
        shutil.copy(suite, expectations)
    os.environ["LOOPLINE_PIPELINES_DIR"], os.environ["LOOPLINE_EXPECTATIONS_DIR"] = str(pipelines), str(expectations)
    made = ThrowAwayPipelines(pipelines, expectations)
    yield made
    made.remove_all()


def remove_pipeline(name: str, settings) -> None:
    """Delete everything the throw-away pipeline left on the shared services; parts a failed
    run never created are skipped."""
    from contextlib import suppress

    from airflow.api.common.delete_dag import delete_dag
    from airflow.exceptions import DagNotFound
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from loopline.core.spec import load_spec
    from loopline.ops.bootstrap import remove_pipeline_data

    remove_pipeline_data(settings, load_spec(name))
    with suppress(MlflowException):  # no model if the run failed before registering one
        MlflowClient().delete_registered_model(name)
    for kind in ("nightly", "retrain"):
        with suppress(DagNotFound):
            delete_dag(f"{name}_{kind}")


@pytest.fixture(scope="session")
def dag_for(tmp_path_factory):
    """`dag_for(pipeline, kind="nightly")`: the pipeline's nightly (or retrain) DAG, built by the
    same factory as dags/.

    dag.test() needs the DAG in a DAG bundle: this process gets a second local bundle holding
    a three-line DAG file per test pipeline and kind, so the real dags folder stays untouched.
    """
    bundle = tmp_path_factory.mktemp("dag_bundle")
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps([
        {"name": "dags-folder", "classpath": local, "kwargs": {}},
        {"name": "loopline-integration-tests", "classpath": local, "kwargs": {"path": str(bundle)}},
    ])

    def build(pipeline: str, kind: str = "nightly"):
        from loopline_airflow.dag_factory import nightly_dag, retrain_dag

        arguments = {"nightly": ("nightly_dag", ", scheduled=False"), "retrain": ("retrain_dag", "")}[kind]
        (bundle / f"{pipeline}_{kind}.py").write_text(f"from loopline_airflow.dag_factory import {arguments[0]}\n\n"
                                                      f"dag = {arguments[0]}({pipeline!r}{arguments[1]})\n")
        return nightly_dag(pipeline, scheduled=False) if kind == "nightly" else retrain_dag(pipeline)

    return build
