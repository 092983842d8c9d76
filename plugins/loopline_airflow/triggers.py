"""Deferrable wait for new data: runs in the triggerer, so a waiting run holds no worker slot."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import date
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def check_new_data(pipeline: str, first_date: str, last_date: str) -> dict:
    """One look at the pipeline's sources for the interval (blocking I/O: call it in a thread)."""
    from loopline.core.interval import Interval
    from loopline.core.pipeline import Pipeline
    from loopline.ingest.availability import data_status

    status = data_status(Pipeline.load(pipeline), Interval(date.fromisoformat(first_date), date.fromisoformat(last_date)))
    return {**asdict(status), "ready": status.ready, "description": status.describe()}


class NewDataTrigger(BaseTrigger):
    """Fires when the pipeline has enough new data for the interval, or when `timeout_s` has
    passed (then with ready=False and the backlog, so the task can say what it waited for)."""

    def __init__(self, pipeline: str, first_date: str, last_date: str, poll_interval_s: float, timeout_s: float,
                 started_at: float | None = None) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.first_date, self.last_date = first_date, last_date
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.started_at = started_at if started_at is not None else time.time()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__name__}", {
            "pipeline": self.pipeline, "first_date": self.first_date, "last_date": self.last_date,
            "poll_interval_s": self.poll_interval_s,
            "timeout_s": self.timeout_s, "started_at": self.started_at,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            status = await asyncio.to_thread(check_new_data, self.pipeline, self.first_date, self.last_date)
            if status["ready"] or time.time() - self.started_at >= self.timeout_s:
                yield TriggerEvent(status)
                return
            self.log.info("waiting for data: %s", status["description"])
            await asyncio.sleep(self.poll_interval_s)
