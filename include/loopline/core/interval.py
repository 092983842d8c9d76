"""The event dates one run processes: every date of its data interval (a day for a daily
schedule, a week or a month for others), so a team can backfill a year in a dozen runs."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta


@dataclass(frozen=True)
class Interval:
    first: date
    last: date  # inclusive

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"an interval cannot end ({self.last}) before it starts ({self.first})")

    @classmethod
    def of_day(cls, day: date) -> "Interval":
        return cls(day, day)

    @classmethod
    def between(cls, start: datetime, end: datetime) -> "Interval":
        """The dates of a data interval [start, end) (an empty interval is the start's date)."""
        last = (end - timedelta(microseconds=1)).date() if end > start else start.date()
        return cls(start.date(), last)

    @property
    def dates(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def __str__(self) -> str:
        return self.first.isoformat() if self.first == self.last else f"{self.first}..{self.last}"


def schedule_intervals(cron: str, first: date, last: date) -> list[Interval]:
    """The whole intervals of a cron schedule within the dates [first, last] (all of them as
    one, if no whole interval fits)."""
    from croniter import croniter

    start = datetime.combine(first, datetime.min.time())
    end = datetime.combine(last, datetime.min.time()) + timedelta(days=1)
    walker = croniter(cron, start - timedelta(microseconds=1))
    tick, whole = walker.get_next(datetime), []
    while tick < end:
        following = walker.get_next(datetime)
        if following <= end:
            whole.append(Interval.between(tick, following))
        tick = following
    return whole or [Interval(first, last)]


def interval_of(cron: str, day: date) -> Interval:
    """The interval of a cron schedule that holds `day`."""
    from croniter import croniter

    moment = datetime.combine(day, datetime.min.time())
    start = croniter(cron, moment + timedelta(microseconds=1)).get_prev(datetime)
    return Interval.between(start, croniter(cron, start).get_next(datetime))


def date_span(dates: list[str]) -> str:
    """A list of ISO dates, shortly: `first .. last (N dates)` (MLflow tag values hold 500 characters)."""
    if len(dates) < 2:
        return dates[0] if dates else "-"
    return f"{dates[0]} .. {dates[-1]} ({len(dates)} dates)"
