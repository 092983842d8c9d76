"""Registers Loopline with Airflow: the operator extra links (every task's evidence) and the
timetable (the API server and the scheduler need to know them), and the loop view, a FastAPI
app on the API server with its entry in the UI's navigation."""
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from loopline_airflow.evidence import EvidenceLink, PipelineLoopLink
from loopline_airflow.operators import ContractReportLink
from loopline_airflow.timetables import IntervalTimetable


class LooplinePlugin(AirflowPlugin):
    name = "loopline"
    operator_extra_links = [ContractReportLink()]
    global_operator_extra_links = [EvidenceLink(), PipelineLoopLink()]
    timetables = [IntervalTimetable]
    external_views = [{"name": "Loopline", "href": "loopline/", "url_route": "loopline", "destination": "nav",
                       "category": "browse"}]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:
        """The loop view, imported only where it is asked for (the API server): its import costs
        seconds that the scheduler's and every task's process would pay for nothing."""
        from loopline_airflow.loop_view.app import app

        return [{"app": app, "url_prefix": "/loopline", "name": "Loopline loop view"}]
