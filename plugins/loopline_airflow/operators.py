"""ContractOperator: one pipeline dataset's data contract as an Airflow task, with a report link.

The task validates the run's batch: the dataset's rows of every date in the run's interval.
Its "Contract report" button (an operator extra link) opens the GX Data Docs page of the
validation in the loop view (behind Airflow's login; the link never expires); the same URL is
in the task log. A failing batch fires the spec's alert
channels, then fails the task without retries: retrying cannot fix data, and downstream
tasks end as upstream_failed, so the champion stays as it is.
"""
from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, BaseOperatorLink
from airflow.sdk.bases.xcom import BaseXCom
from loopline_airflow.alerting import LineStopped
from loopline_airflow.evidence import contract_report_url
from loopline_airflow.stages import run_interval

REPORT_URL_KEY = "contract_report_url"


class ContractReportLink(BaseOperatorLink):
    """Link to the GX Data Docs page the task published (pushed as XCom during execute)."""

    name = "Contract report"

    def get_link(self, operator: BaseOperator, *, ti_key) -> str:
        return BaseXCom.get_value(ti_key=ti_key, key=REPORT_URL_KEY) or ""


class ContractOperator(BaseOperator):
    """Validate `dataset` of `pipeline` for the run's logical date (loopline.contracts.validate).

    :param pipeline: pipeline spec name
    :param dataset: bronze dataset with a contract in the spec
    """

    template_fields = ("pipeline", "dataset")
    operator_extra_links = (ContractReportLink(),)
    ui_color = "#e8f4e8"

    def __init__(self, *, pipeline: str, dataset: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.dataset = dataset

    def execute(self, context) -> dict:
        from dataclasses import asdict

        from loopline.contracts.validate import ContractViolation, validate_dataset
        from loopline.core.alerts import Alert, notify
        from loopline_airflow.stages import task_pipeline

        p, interval = task_pipeline(self.pipeline), run_interval()
        report_url = contract_report_url(self.pipeline, self.dataset, interval.first.isoformat())
        try:
            outcome = validate_dataset(p, self.dataset, interval, context["run_id"])
        except ContractViolation as violation:
            failed = violation.outcome
            if failed.report_uri:
                context["ti"].xcom_push(key=REPORT_URL_KEY, value=report_url)
            alert = Alert(p.spec.name, f"line stopped, contract failed on {self.dataset}", failed.logical_date,
                          failed.run_id, failed.describe(), report_url if failed.report_uri else None)
            for line in notify(p.spec.alerts, alert, p.settings.db_url):
                self.log.info("alert %s", line)
            raise LineStopped(str(violation)) from violation
        context["ti"].xcom_push(key=REPORT_URL_KEY, value=report_url)
        self.log.info("%s\n  contract report: %s", outcome.describe(), report_url)
        return {k: v for k, v in asdict(outcome).items() if k != "results"}
