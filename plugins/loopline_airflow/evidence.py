"""Every Loopline task one click from its evidence in the Airflow UI (operator extra links on
every operator, registered by the plugin):

  "Loopline evidence"  what the task produced: the MLflow run it trained (train), the model
                       version it registered (register), the drift report it wrote
                       (monitor); tasks push the link as an XCom while they run;
  "Loopline loop"      the pipeline's page in the loop view.

The view's links go through the Airflow API server behind its login and never expire.
"""
from __future__ import annotations

import os
from datetime import date
from urllib.parse import quote

from airflow.sdk import BaseOperator, BaseOperatorLink
from airflow.sdk.bases.xcom import BaseXCom

EVIDENCE_KEY = "loopline_evidence_url"
PIPELINE_DAG_SUFFIXES = ("_nightly", "_retrain")


def view_url(path: str = "") -> str:
    from airflow.configuration import conf

    return f"{conf.get('api', 'base_url', fallback='').rstrip('/')}/loopline/{path}"


def pipeline_url(pipeline: str) -> str:
    return view_url(f"pipelines/{quote(pipeline)}")


def drift_report_url(pipeline: str, interval_first: date) -> str:
    return view_url(f"pipelines/{quote(pipeline)}/reports/drift/{interval_first.isoformat()}")


def contract_report_url(pipeline: str, dataset: str, interval_first: str) -> str:
    """The contract report (GX Data Docs) of the dataset's validation of the interval, as the view serves it."""
    return view_url(f"pipelines/{quote(pipeline)}/reports/contract/{quote(dataset)}/{interval_first}/")


def mlflow_run_url(run_id: str) -> str:
    return f"{os.environ.get('MLFLOW_TRACKING_URI', '').rstrip('/')}/#/runs/{run_id}"


def mlflow_version_url(model_name: str, version: int) -> str:
    return f"{os.environ.get('MLFLOW_TRACKING_URI', '').rstrip('/')}/#/models/{quote(model_name)}/versions/{version}"


def push(url: str) -> None:
    """Make `url` the running task's "Loopline evidence" link (and say it in the log)."""
    from airflow.sdk import get_current_context

    get_current_context()["ti"].xcom_push(key=EVIDENCE_KEY, value=url)
    print(f"evidence: {url}")


def pipeline_of(dag_id: str) -> str | None:
    """The pipeline a Loopline pipeline DAG (`<pipeline>_nightly`, `<pipeline>_retrain`) runs."""
    return next((dag_id.removesuffix(s) for s in PIPELINE_DAG_SUFFIXES if dag_id.endswith(s)), None)


class EvidenceLink(BaseOperatorLink):
    name = "Loopline evidence"

    def get_link(self, operator: BaseOperator, *, ti_key) -> str:
        return BaseXCom.get_value(ti_key=ti_key, key=EVIDENCE_KEY) or ""


class PipelineLoopLink(BaseOperatorLink):
    name = "Loopline loop"

    def get_link(self, operator: BaseOperator, *, ti_key) -> str:
        pipeline = pipeline_of(ti_key.dag_id)
        return pipeline_url(pipeline) if pipeline else ""
