"""Outages in the middle of scoring, on the real stack: PostgreSQL, the object store, MLflow and
the Spark Connect server are each stopped for 40 s once a scoring attempt writes, then started again,
and the attempt is retried as Airflow would (up to three attempts, each a new process).
Afterwards the date's outputs equal an undisturbed run's row for row (Parquet, PostgreSQL,
the predictions topic read_committed), and nothing was published twice.

Heavy (each service is stopped and started): `make test-outages` runs it, `make test` does not.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import suppress
from datetime import date
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from lake_audit import topic_messages
from lifecycle_data import booster, gate, labelled, lightgbm_model, write_labelled_days
from loopline.core import db
from loopline.core.pipeline import Pipeline
from stack_access import run_stack

pytestmark = pytest.mark.outage
REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 9, 14)
ROWS = 5_000
ATTEMPTS = 3  # the spec's retries + 1


def scored_pipeline(make_pipeline) -> Pipeline:
    """A pipeline with the same champion and valid events as every other here."""
    p = Pipeline.load(make_pipeline())
    gate(p, labelled([date(2026, 9, 8)]), lightgbm_model(p.spec, booster(p.spec, labelled(
        [date(2026, 9, d) for d in range(1, 8)]))), date(2026, 9, 10))
    write_labelled_days(p, labelled([DAY], per_day=ROWS))
    return p


def attempt(p: Pipeline) -> subprocess.CompletedProcess:
    """One attempt of the score task: a process of its own, as an Airflow task try is."""
    return subprocess.run([sys.executable, str(REPO / "spark_jobs" / "score.py"), "--pipeline", p.spec.name,
                           "--date", DAY.isoformat()], cwd=REPO, capture_output=True, text=True, timeout=1200)


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


@pytest.fixture(scope="module")
def undisturbed(make_pipeline) -> dict:
    p = scored_pipeline(make_pipeline)
    done = attempt(p)
    assert done.returncode == 0, done.stderr[-3000:]
    return outputs(p)


@pytest.mark.parametrize("service", ["postgres", "object-store", "mlflow", "spark-connect"])
def test_a_service_stopped_mid_scoring_then_retried_gives_the_undisturbed_outputs(make_pipeline, undisturbed,
                                                                                 service):
    p = scored_pipeline(make_pipeline)
    outage = Outage(p, service)
    outage.start()
    try:
        tries = [attempt(p)]
        first_ended = time.monotonic()
        outage.join()
        while tries[-1].returncode != 0 and len(tries) < ATTEMPTS:
            tries.append(attempt(p))
    finally:
        if service == "spark-connect":  # this process's session died with the server: start a new one
            forget_spark_session()
            p.spark()
    assert outage.stopped_at is not None and outage.stopped_at < first_ended, "the outage missed the attempt"
    assert tries[-1].returncode == 0, tries[-1].stderr[-3000:]
    got = outputs(p)
    assert got["parquet"] == undisturbed["parquet"] and got["postgres"] == undisturbed["postgres"]
    assert got["published"] == undisturbed["published"] and set(got["published"].values()) == {1}
    print(f"{service}: {len(tries)} attempts; the first ended with {tries[0].returncode} "
          f"{tries[0].stderr.strip().splitlines()[-1][:300] if tries[0].returncode else ''}")
