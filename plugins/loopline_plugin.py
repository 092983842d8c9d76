"""Registers Loopline's operator extra links and timetable with Airflow (the API server and
the scheduler need to know them)."""
from airflow.plugins_manager import AirflowPlugin

from loopline_airflow.operators import ContractReportLink
from loopline_airflow.timetables import IntervalTimetable


class LooplinePlugin(AirflowPlugin):
    name = "loopline"
    operator_extra_links = [ContractReportLink()]
    timetables = [IntervalTimetable]
