"""The schedule of a pipeline: its spec's cron over data intervals, with run ids that name the dates.

A run covers the interval [start, end) of its cron (a day, a week, a month) and starts once
the interval is over; its logical date is the interval's start. Scheduled run ids name the
event dates the run processes (`scheduled__2026-11-28`, `scheduled__2026-11-01..2026-11-30`)
instead of the moment the run was due (Airflow's default, the day after). The spec's
`end_date` ends the schedule here, not as the DAG's end date: runs triggered by hand (with
the form's dates) work whatever their logical date.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import pendulum
from airflow.timetables.base import TimeRestriction
from airflow.timetables.interval import CronDataIntervalTimetable

from loopline.core.interval import Interval


class IntervalTimetable(CronDataIntervalTimetable):
    description_prefix = "Loopline: "

    def __init__(self, cron: str, timezone: Any, end: date | None = None) -> None:
        super().__init__(cron, timezone)
        self._end = end

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "end": self._end.isoformat() if self._end else None}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> "IntervalTimetable":
        base = super().deserialize(data)
        return cls(base._expression, base._timezone, date.fromisoformat(data["end"]) if data.get("end") else None)

    def next_dagrun_info(self, *, last_automated_data_interval, restriction: TimeRestriction):
        if self._end is not None:  # no interval starts after the spec's end_date
            last_start = pendulum.datetime(self._end.year, self._end.month, self._end.day, tz="UTC")
            latest = min(restriction.latest, last_start) if restriction.latest else last_start
            restriction = TimeRestriction(restriction.earliest, latest, restriction.catchup)
        return super().next_dagrun_info(last_automated_data_interval=last_automated_data_interval,
                                        restriction=restriction)

    def generate_run_id(self, *, run_type, run_after, data_interval, **extra) -> str:
        if data_interval is None:
            return super().generate_run_id(run_type=run_type, run_after=run_after, data_interval=data_interval, **extra)
        return run_type.generate_run_id(suffix=str(Interval.between(data_interval.start, data_interval.end)))
