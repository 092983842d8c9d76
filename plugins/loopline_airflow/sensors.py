"""The ingest sensor: wait (deferred, in the triggerer) until a pipeline has new data for the run's dates."""
from __future__ import annotations

from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from loopline_airflow.stages import run_interval
from loopline_airflow.triggers import NewDataTrigger, check_new_data


class NewDataSensor(BaseSensorOperator):
    """Proceeds at once when data is there; otherwise defers to NewDataTrigger.

    Waits at most the spec's `ingest.wait_timeout_minutes`, then fails naming the backlog
    per source (usually: the producer is down, or the topic name is wrong).
    """

    template_fields = ("pipeline",)

    def __init__(self, *, pipeline: str, poll_interval_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.poll_interval_s = poll_interval_s

    def execute(self, context) -> dict:
        from loopline.core.spec import load_spec

        interval = run_interval()
        status = check_new_data(self.pipeline, interval.first.isoformat(), interval.last.isoformat())
        if status["ready"]:
            self.log.info("data available: %s", status["description"])
            return status
        self.log.info("deferring until data arrives: %s", status["description"])
        timeout_s = load_spec(self.pipeline).ingest.wait_timeout_minutes * 60.0
        self.defer(trigger=NewDataTrigger(self.pipeline, interval.first.isoformat(), interval.last.isoformat(),
                                          self.poll_interval_s, timeout_s),
                   method_name="execute_complete")

    def execute_complete(self, context, event: dict) -> dict:
        if not event["ready"]:
            raise AirflowFailException(
                f"{self.pipeline}: no new data after waiting: {event['description']}. Check that the producers "
                "are running and the spec's topics are right, then clear this task to wait again."
            )
        self.log.info("data available: %s", event["description"])
        return event
