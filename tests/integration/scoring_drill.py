"""A scoring drill on the real stack: a pipeline with a champion and a date of valid events,
one score attempt as its own process (as an Airflow task try is), the date's outputs keyed by
entity, and an outage that stops a service of the stack once scoring writes. Shared by the
outage drills (test_service_outages.py) and the cluster profile's failover (test_cluster.py).
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import suppress
from datetime import date

import pyarrow.dataset as ds

from lake_audit import topic_messages
from lifecycle_data import booster, gate, labelled, lightgbm_model, write_labelled_days
from loopline.core import db
from loopline.core.config import REPOSITORY
from loopline.core.pipeline import Pipeline
from stack_access import run_stack

DAY = date(2026, 9, 14)


def scored_pipeline(make_pipeline, rows: int, in_process_below_rows: int = 0) -> Pipeline:
    """A pipeline with the same champion as every other drill's, and `rows` valid events on DAY.
    The drills are about Spark's scoring under faults, so it scores on Spark unless told."""
    p = Pipeline.load(make_pipeline(engine={"in_process_below_rows": in_process_below_rows}))
    gate(p, labelled([date(2026, 9, 8)]), lightgbm_model(p.spec, booster(p.spec, labelled(
        [date(2026, 9, d) for d in range(1, 8)]))), date(2026, 9, 10))
    write_labelled_days(p, labelled([DAY], per_day=rows))
    return p


def attempt(p: Pipeline) -> subprocess.CompletedProcess:
    """One attempt of the score task: a process of its own, as an Airflow task try is."""
    return subprocess.run([sys.executable, str(REPOSITORY / "spark_jobs" / "score.py"), "--pipeline", p.spec.name,
                           "--date", DAY.isoformat()], cwd=REPOSITORY, capture_output=True, text=True, timeout=1200)


def outputs(p: Pipeline) -> dict:
    """The date's outputs, keyed by entity so two pipelines compare: Parquet rows, PostgreSQL
    rows, and the messages per key on the predictions topic (read_committed)."""
    location = p.lake.location("predictions", DAY)
    parquet = ds.dataset(location.arrow_path, filesystem=location.filesystem(), format="parquet").to_table(
        columns=["entity_key", "prediction"]).to_pylist()
    with db.connect(p.settings.db_url) as conn:
        rows = db.fetch_all(conn, "SELECT entity_key, prediction FROM loopline.predictions WHERE pipeline = %s",
                            (p.spec.name,))
    published = Counter(key.decode().split(":", 1)[1] for key, _ in topic_messages(
        p.settings.kafka("reader"), p.spec.predictions_topic, isolation_level="read_committed"))
    return {"parquet": sorted((r["entity_key"], r["prediction"]) for r in parquet),
            "postgres": sorted((r["entity_key"], r["prediction"]) for r in rows), "published": published}


def staging_started(p: Pipeline) -> bool:
    """Scoring is writing: its Parquet output is being staged."""
    staging = p.lake.location("predictions").child("_staging")
    return staging.exists()


class Outage(threading.Thread):
    """Stops `service` once scoring is writing, keeps it down `seconds` (longer than the rest
    of the attempt takes undisturbed, so it meets the outage), starts it again."""

    def __init__(self, p: Pipeline, service: str, seconds: float = 40) -> None:
        super().__init__(daemon=True)
        self.p, self.service, self.seconds, self.stopped_at = p, service, seconds, None

    def run(self) -> None:
        deadline = time.monotonic() + 600
        while not staging_started(self.p) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.stopped_at = time.monotonic()  # from here on the service is going down
        run_stack("stop", self.service)
        try:
            time.sleep(self.seconds)
        finally:
            run_stack("start", self.service)


def forget_spark_session() -> None:
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        with suppress(Exception):  # the server it talked to is gone; only the client side is closed
            session.stop()


def undisturbed_outputs(make_pipeline, rows: int) -> dict:
    """The outputs of one attempt that nothing disturbs: what every drill is compared with."""
    p = scored_pipeline(make_pipeline, rows)
    done = attempt(p)
    assert done.returncode == 0, done.stderr[-3000:]
    return outputs(p)


def assert_same_outputs(got: dict, undisturbed: dict) -> None:
    """Parquet and PostgreSQL rows equal, and each prediction published once, as undisturbed."""
    assert got["parquet"] == undisturbed["parquet"] and got["postgres"] == undisturbed["postgres"]
    assert got["published"] == undisturbed["published"] and set(got["published"].values()) == {1}
