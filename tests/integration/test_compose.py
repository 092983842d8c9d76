"""`make compose-e2e`: the nightly loop through the scheduler of the Docker Compose stack.

Runs in the compose file's `e2e` container (the same image as every service, on the same
state volume), against the services started by `docker-compose up`: it sends five days of
the demo's events, has the scheduler run the nightly DAG for each, and checks what each date
produced. The first champion is trained on day 4, once enough labels have come back, and
scores from then on. Not in `make test` (marker `compose`)."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.compose
REPOSITORY = Path(__file__).resolve().parents[2]
DAYS = 5


@pytest.fixture(scope="module")
def loop():
    """`make demo`'s loop over DAYS days (card_fraud), through the scheduler in the containers."""
    from loopline.core.pipeline import Pipeline

    demo = subprocess.run([sys.executable, str(REPOSITORY / "infra" / "demo.py")], cwd=REPOSITORY,
                          env={**os.environ, "PIPELINE": "card_fraud", "LOOPLINE_DEMO_DAYS": str(DAYS)},
                          capture_output=True, text=True, timeout=3600)
    print(demo.stdout)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    return Pipeline.load("card_fraud"), demo.stdout, [yesterday - timedelta(days=n) for n in reversed(range(DAYS))]


def test_each_nightly_run_succeeded_through_the_scheduler(loop):
    _, printed, _ = loop
    assert f"Nightly runs: {DAYS}/{DAYS} succeeded" in printed


def test_from_the_first_champion_on_each_dates_valid_events_are_scored_into_postgres_and_the_lake(loop):
    from loopline.core import db

    p, _, days = loop
    with db.connect(p.settings.db_url) as conn:
        predicted = {day: {row["prediction_id"] for row in db.fetch_all(
            conn, "SELECT prediction_id FROM loopline.predictions WHERE pipeline=%s AND score_date=%s",
            (p.spec.name, day))} for day in days}
    scored = [day for day in days if predicted[day]]
    assert len(scored) >= 2 and scored == days[-len(scored):], predicted.keys()
    for day in scored:
        valid = p.lake.location(p.spec.entity_dataset, day)
        keys = pq.read_table(valid.arrow_path, filesystem=valid.filesystem()).column(p.spec.entity_source.key)
        assert predicted[day] == {f"{p.spec.name}:{key}" for key in keys.to_pylist()}, day
        on_object_store = p.lake.location("predictions", day)
        assert pq.read_table(on_object_store.arrow_path, filesystem=on_object_store.filesystem()).num_rows == len(keys)


def test_each_prediction_was_published_once_to_the_predictions_topic(loop):
    from lake_audit import topic_messages
    from loopline.core import db

    p, _, _ = loop
    keys = [key.decode() for key, _ in topic_messages(p.settings.kafka("reader"), p.spec.predictions_topic)]
    with db.connect(p.settings.db_url) as conn:
        stored = {row["prediction_id"] for row in db.fetch_all(
            conn, "SELECT prediction_id FROM loopline.predictions WHERE pipeline=%s", (p.spec.name,))}
    assert len(keys) == len(set(keys)) and set(keys) == stored
