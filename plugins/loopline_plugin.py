"""Registers Loopline's operator extra links with Airflow (the API server needs to know them)."""
from airflow.plugins_manager import AirflowPlugin

from loopline_airflow.operators import ContractReportLink


class LooplinePlugin(AirflowPlugin):
    name = "loopline"
    operator_extra_links = [ContractReportLink()]
