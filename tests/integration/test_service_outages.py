"""Outages in the middle of scoring, on the real stack: PostgreSQL, the object store, MLflow and
the Spark Connect server are each stopped for 40 s once a scoring attempt writes, then started again,
and the attempt is retried as Airflow would (up to three attempts, each a new process).
Afterwards the date's outputs equal an undisturbed run's row for row (Parquet, PostgreSQL,
the predictions topic read_committed), and nothing was published twice.

Heavy (each service is stopped and started): `make test-outages` runs it, `make test` does not.
"""
from __future__ import annotations

import time

import pytest

from scoring_drill import Outage, assert_same_outputs, attempt, forget_spark_session, outputs, scored_pipeline, undisturbed_outputs

pytestmark = pytest.mark.outage
ROWS = 5_000
ATTEMPTS = 3  # the spec's retries + 1


@pytest.fixture(scope="module")
def undisturbed(make_pipeline) -> dict:
    return undisturbed_outputs(make_pipeline, ROWS)


@pytest.mark.parametrize("service", ["postgres", "object-store", "mlflow", "spark-connect"])
def test_a_service_stopped_mid_scoring_then_retried_gives_the_undisturbed_outputs(make_pipeline, undisturbed,
                                                                                 service):
    p = scored_pipeline(make_pipeline, ROWS)
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
    assert_same_outputs(got, undisturbed)
    print(f"{service}: {len(tries)} attempts; the first ended with {tries[0].returncode} "
          f"{tries[0].stderr.strip().splitlines()[-1][:300] if tries[0].returncode else ''}")
