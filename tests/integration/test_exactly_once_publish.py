"""Exactly-once publishing of predictions on the real broker, Spark, PostgreSQL and registry: a
publish killed half-way is never seen by read_committed consumers, and neither a rerun after
it nor one after a crash between the commit and its record sends anything twice."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from lake_audit import topic_messages
from lifecycle_data import booster, gate, labelled, lightgbm_model, write_labelled_days
from loopline.core import db
from loopline.core.interval import Interval
from loopline.core.pipeline import Pipeline
from loopline.scoring.publish import Publisher
from loopline.scoring.score import score

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 8, 3)


def with_champion(make_pipeline, rows: int) -> tuple[Pipeline, int]:
    """A pipeline with a champion and `rows` valid events on DAY."""
    p = Pipeline.load(make_pipeline())
    _, champion = gate(p, labelled([date(2026, 7, 28)]), lightgbm_model(
        p.spec, booster(p.spec, labelled([date(2026, 7, d) for d in range(20, 27)]))), date(2026, 7, 30))
    write_labelled_days(p, labelled([DAY], per_day=rows))
    return p, champion.model_version


def committed(p: Pipeline) -> Counter:
    """Messages per key that a read_committed consumer of the predictions topic sees."""
    return Counter(key for key, _ in topic_messages(p.settings.kafka("reader"), p.spec.predictions_topic,
                                                    isolation_level="read_committed"))


def record_of(p: Pipeline) -> dict:
    with db.connect(p.settings.db_url) as conn:
        [row] = db.fetch_all(conn, "SELECT published_rows, publish_batch FROM loopline.score_runs WHERE pipeline = %s "
                                   "AND logical_date = %s", (p.spec.name, DAY))
        row["upserted"] = db.fetch_all(conn, "SELECT count(*) AS n FROM loopline.predictions WHERE pipeline = %s",
                                       (p.spec.name,))[0]["n"]
    return row


def intent_recorded(p: Pipeline) -> bool:
    with db.connect(p.settings.db_url) as conn:
        return bool(db.fetch_all(conn, "SELECT 1 FROM loopline.score_runs WHERE pipeline = %s AND publish_batch "
                                       "IS NOT NULL", (p.spec.name,)))


def sent_uncommitted(p: Pipeline) -> int:
    return len(topic_messages(p.settings.kafka("reader"), p.spec.predictions_topic))


def test_a_publish_killed_half_way_is_never_seen_and_the_rerun_publishes_each_prediction_once(make_pipeline):
    rows = 20_000
    p, version = with_champion(make_pipeline, rows)
    job = subprocess.Popen([sys.executable, str(REPO / "tests" / "integration" / "stalled_publish.py"), "--pipeline",
                            p.spec.name, "--date", DAY.isoformat()], cwd=REPO, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while sent_uncommitted(p) < rows or not intent_recorded(p):  # between the database's commit and Kafka's
        assert job.poll() is None, f"scoring ended before it was killed: {job.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "scoring never published"
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert record_of(p)["publish_batch"] is not None and record_of(p)["published_rows"] is None

    result = score(p, Interval.of_day(DAY), version)  # Airflow's retry

    assert result.published == rows and result.rows == rows
    seen = committed(p)
    assert len(seen) == rows and set(seen.values()) == {1}, "a prediction seen twice, or one missing"
    assert sent_uncommitted(p) == 2 * rows  # the killed attempt's messages are on the log, aborted
    assert record_of(p) == {"published_rows": rows, "publish_batch": None, "upserted": rows}


def test_a_publish_committed_just_before_a_crash_is_recorded_by_the_rerun_and_not_sent_again(make_pipeline,
                                                                                            monkeypatch):
    rows = 2_000
    p, version = with_champion(make_pipeline, rows)

    def crash(self, conn, rows_by_date):
        raise RuntimeError("the worker died after the commit, before recording it")

    monkeypatch.setattr(Publisher, "_mark_published", crash)
    with pytest.raises(RuntimeError, match="after the commit"):
        score(p, Interval.of_day(DAY), version)
    assert sum(committed(p).values()) == rows and record_of(p)["published_rows"] is None
    monkeypatch.undo()

    result = score(p, Interval.of_day(DAY), version)  # Airflow's retry

    assert result.published == 0
    seen = committed(p)
    assert len(seen) == rows and set(seen.values()) == {1}
    assert record_of(p) == {"published_rows": rows, "publish_batch": None, "upserted": rows}


def test_a_publish_of_several_batches_copies_and_sends_each_prediction_once(make_pipeline, monkeypatch):
    import loopline.scoring.score as scoring

    rows = 2_000
    p, version = with_champion(make_pipeline, rows)
    sent_per_batch = []
    send = Publisher.send

    def counted(self, intent, batch):
        sent_per_batch.append(send(self, intent, batch))
        return sent_per_batch[-1]

    monkeypatch.setattr(scoring, "BATCH_ROWS", 700)
    monkeypatch.setattr(Publisher, "send", counted)

    result = score(p, Interval.of_day(DAY), version)

    assert len(sent_per_batch) >= 3 and sum(sent_per_batch) == result.published == rows
    seen = committed(p)
    assert len(seen) == rows and set(seen.values()) == {1}
    assert record_of(p) == {"published_rows": rows, "publish_batch": None, "upserted": rows}


def test_two_scoring_runs_of_one_date_at_once_take_turns_and_publish_each_prediction_once(make_pipeline):
    rows = 3_000
    p, _ = with_champion(make_pipeline, rows)
    jobs = [subprocess.Popen([sys.executable, str(REPO / "spark_jobs" / "score.py"), "--pipeline", p.spec.name,
                              "--date", DAY.isoformat()], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    ended = [job.communicate(timeout=900) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], [err[-2000:] for _, err in ended]
    assert sorted(json.loads(out.strip().splitlines()[-1])["published"] for out, _ in ended) == [0, rows]
    seen = committed(p)
    assert len(seen) == rows and set(seen.values()) == {1}
    assert record_of(p) == {"published_rows": rows, "publish_batch": None, "upserted": rows}


def test_a_publish_fenced_by_a_newer_attempt_reports_why_it_stopped_not_the_abort_that_a_fence_refuses(
        make_pipeline, monkeypatch):
    rows = 1_000
    p, version = with_champion(make_pipeline, rows)
    send, sent = Publisher.send, []

    def overtaken(self, intent, batch):
        sent.append(send(self, intent, batch))
        self.producer.flush(60)  # on the broker, uncommitted
        Publisher(p)  # a newer attempt's producer: this one is fenced and cannot abort
        raise RuntimeError("this attempt stopped after its messages were sent")

    monkeypatch.setattr(Publisher, "send", overtaken)
    with pytest.raises(RuntimeError, match="stopped after its messages were sent"):
        score(p, Interval.of_day(DAY), version)
    assert sent_uncommitted(p) == sent[0] > 0 and not committed(p)
    monkeypatch.undo()

    result = score(p, Interval.of_day(DAY), version)  # Airflow's retry

    assert result.published == rows
    seen = committed(p)
    assert len(seen) == rows and set(seen.values()) == {1}


def test_a_run_that_fails_before_its_database_commit_leaves_nothing_and_its_retry_writes_everything(
        make_pipeline, monkeypatch):
    import loopline.scoring.score as scoring

    p, version = with_champion(make_pipeline, 500)

    def lost(*args):
        raise RuntimeError("connection lost before the upsert")

    monkeypatch.setattr(scoring, "_record_scores", lost)
    with pytest.raises(RuntimeError, match="before the upsert"):
        score(p, Interval.of_day(DAY), version)
    with db.connect(p.settings.db_url) as conn:
        assert db.fetch_all(conn, "SELECT count(*) AS n FROM loopline.predictions WHERE pipeline = %s",
                            (p.spec.name,))[0]["n"] == 0
    assert not committed(p)  # what was sent in the transaction was aborted
    monkeypatch.undo()

    assert score(p, Interval.of_day(DAY), version).published == 500  # Airflow's retry
    assert record_of(p) == {"published_rows": 500, "publish_batch": None, "upserted": 500}
    seen = committed(p)
    assert len(seen) == 500 and set(seen.values()) == {1}


def test_an_entity_scored_again_on_a_later_date_moves_there_and_is_published_again(make_pipeline):
    p, version = with_champion(make_pipeline, 300)
    score(p, Interval.of_day(DAY), version)
    again = labelled([DAY], per_day=300)  # the same payments, a day later: their keys are scored already
    write_labelled_days(p, again.assign(event_time=again["event_time"] + timedelta(days=1)))
    later = DAY + timedelta(days=1)

    result = score(p, Interval.of_day(later), version)

    assert result.rows == result.published == 300
    with db.connect(p.settings.db_url) as conn:
        dates = db.fetch_all(conn, "SELECT score_date, count(*) AS n FROM loopline.predictions WHERE pipeline = %s "
                                   "GROUP BY score_date", (p.spec.name,))
    assert dates == [{"score_date": later, "n": 300}]
    assert Counter(committed(p).values()) == {2: 300}  # each key once per date it was scored on
