"""The schedule of a pipeline: its spec's cron over data intervals, with run ids that name the dates.

A run covers the interval [start, end) of its cron (a day, a week, a month) and starts once
the interval is over; its logical date is the interval's start. Scheduled run ids name the
event dates the run processes (`scheduled__2026-11-28`, `scheduled__2026-11-01..2026-11-30`)
instead of the moment the run was due (Airflow's default, the day after).
"""
from __future__ import annotations

from airflow.timetables.interval import CronDataIntervalTimetable

from loopline.core.interval import Interval


class IntervalTimetable(CronDataIntervalTimetable):
    description_prefix = "Loopline: "

    def generate_run_id(self, *, run_type, run_after, data_interval, **extra) -> str:
        if data_interval is None:
            return super().generate_run_id(run_type=run_type, run_after=run_after, data_interval=data_interval, **extra)
        return run_type.generate_run_id(suffix=str(Interval.between(data_interval.start, data_interval.end)))
