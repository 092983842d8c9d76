"""Kafka → lake ingestion under abuse, on the real broker, Spark, PostgreSQL and lake.

(Broken messages: test_poison_input.py.)
- the ingest job killed with SIGKILL at random points, then rerun: exactly once;
- the broker stopped in the middle of a run and started again: exactly once after a rerun;
- the job killed once a batch's dead letters are out, before the batch is recorded: exactly
  once in the lake, every dead letter at least once on its topic (deduplicated by its source
  coordinates).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from kafka_records import DAY, event, read_dataset, send
from lake_audit import assert_exactly_once, topic_records
from loopline.core import db
from loopline.core.pipeline import Pipeline
from loopline.ingest.streaming import ingest_source
from card_fraud_simulator import SimulationConfig, produce

REPO = Path(__file__).resolve().parents[2]


def _start_ingest_job(pipeline: str, script: Path = REPO / "spark_jobs" / "ingest.py") -> subprocess.Popen:
    """spark_jobs/ingest.py (or a `script` wrapping it) in its own process group, with its own
    local Spark (no Connect server), so SIGKILL of the group kills the driver and the query
    mid-flight."""
    # pyspark marks this process as Spark Connect (SPARK_CONNECT_MODE_ENABLED) once a remote
    # session exists; the child must not inherit that.
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    return subprocess.Popen([sys.executable, str(script), "--pipeline", pipeline,
                             "--date", DAY.isoformat()], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(job: subprocess.Popen, timeout: float = 600) -> str:
    try:
        out, err = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        out, err = job.communicate()
    assert job.returncode == 0, err[-3000:]
    return out


def _batches(p: Pipeline) -> int:
    with db.connect(p.settings.db_url) as conn:
        return db.fetch_all(conn, "SELECT count(*) AS n FROM loopline.ingest_batches WHERE pipeline=%s",
                            (p.spec.name,))[0]["n"]


def _simulate(p: Pipeline, days: list[date], seed: int) -> None:
    sim = SimulationConfig(seed=seed, transactions_per_day=2500, malformed_rate=0.01, world_start=days[0])
    produce(sim, days, p.settings.kafka("producer"), {k: s.topic for k, s in p.spec.sources.items()})


def _wait_for_new_batch(p: Pipeline, job: subprocess.Popen, seen: int, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while _batches(p) <= seen and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)


def test_kill_9_at_random_points_then_rerun_lands_every_record_exactly_once(make_pipeline):
    # Batches small enough that each attempt is killed between or inside them, few enough
    # that the final rerun is not dominated by every micro-batch's fixed cost.
    p = Pipeline.load(make_pipeline(ingest={"max_records_per_batch": 1200}))
    rng = random.Random(20261123)
    _simulate(p, [date(2026, 6, 1), date(2026, 6, 2)], seed=21)
    kills_mid_run = 0
    for attempt in range(3):
        job = _start_ingest_job(p.spec.name)
        _wait_for_new_batch(p, job, seen=_batches(p))  # this attempt has landed a batch ...
        time.sleep(rng.uniform(0, 2.5))  # ... and is somewhere in the next one (or between them)
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            kills_mid_run += 1
        job.communicate()
        _simulate(p, [date(2026, 6, 3 + attempt)], seed=21)  # new data keeps arriving between crashes
    _finish(_start_ingest_job(p.spec.name))
    assert kills_mid_run >= 2, "the job finished before it could be killed: the test proved nothing"
    for source in p.spec.sources.values():
        assert assert_exactly_once(p, source) > 0


def test_kill_9_once_dead_letters_are_out_then_rerun_loses_and_doubles_nothing(make_pipeline):
    p = Pipeline.load(make_pipeline(ingest={"max_rejected_share": 0.5}))
    events = p.spec.sources["events"]
    sim = SimulationConfig(seed=41, transactions_per_day=2500, malformed_rate=0.3, world_start=date(2026, 6, 10))
    produce(sim, [date(2026, 6, 10)], p.settings.kafka("producer"), {k: s.topic for k, s in p.spec.sources.items()})
    dead_letter_topic = p.spec.dead_letter_topic(events)
    job = _start_ingest_job(p.spec.name, Path(__file__).with_name("stalled_dead_letters.py"))
    deadline = time.monotonic() + 300
    while not topic_records(p.settings.kafka("reader"), dead_letter_topic):  # the dead letters are out
        assert job.poll() is None and time.monotonic() < deadline, "the job ended before publishing dead letters"
        time.sleep(0.1)
    os.killpg(job.pid, signal.SIGKILL)
    job.communicate()
    with db.connect(p.settings.db_url) as conn:
        recorded = db.fetch_all(conn, "SELECT count(*) AS n FROM loopline.ingest_batches WHERE pipeline = %s AND "
                                      "dataset = %s", (p.spec.name, events.dataset))[0]["n"]
    assert recorded == 0, "the batch was recorded before the kill: the test proved nothing"

    _finish(_start_ingest_job(p.spec.name))

    assert assert_exactly_once(p, events) > 0
    rejected = read_dataset(p.lake.location("quarantine", subdir=events.dataset),
                            columns=["source", "source_partition", "source_offset"]).to_pylist()
    quarantined = {(r["source"], r["source_partition"], r["source_offset"]) for r in rejected}
    dead_letters = [{k: v.decode() for k, v in r.headers} for r in topic_records(p.settings.kafka("reader"),
                                                                                   dead_letter_topic)]
    republished = {(h["loopline.source.topic"], int(h["loopline.source.partition"]), int(h["loopline.source.offset"]))
                   for h in dead_letters}
    assert republished == quarantined and len(dead_letters) >= len(quarantined) > 500


def _stack(command: str, service: str) -> None:
    subprocess.run([sys.executable, str(REPO / "infra" / "stack.py"), command, service], check=True, cwd=REPO,
                   timeout=180)


def _job_in_mid_run(p: Pipeline) -> subprocess.Popen:
    """The ingest job, started and waited for until it has landed its first batch (of several)."""
    job = _start_ingest_job(p.spec.name)
    deadline = time.monotonic() + 120
    while _batches(p) == 0 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.poll() is None, "the job finished before the outage could start; lower max_records_per_batch"
    return job


def test_broker_outage_mid_run_then_rerun_lands_every_record_exactly_once(make_pipeline):
    p = Pipeline.load(make_pipeline(ingest={"max_records_per_batch": 800}))
    _simulate(p, [date(2026, 7, 1), date(2026, 7, 2)], seed=33)
    job = _job_in_mid_run(p)
    _stack("stop", "kafka")
    try:
        time.sleep(10)
    finally:
        _stack("start", "kafka")
    try:  # the interrupted run may finish once the broker is back, or fail: both are fine
        job.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
    _finish(_start_ingest_job(p.spec.name))
    for source in p.spec.sources.values():
        assert assert_exactly_once(p, source) > 0


def test_a_query_that_stops_making_progress_is_stopped_then_the_rerun_lands_every_record_once(make_pipeline):
    p = Pipeline.load(make_pipeline(ingest={"max_records_per_batch": 800, "stall_minutes": 0.5}))
    _simulate(p, [date(2026, 7, 3)], seed=35)
    job = _job_in_mid_run(p)
    _stack("stop", "kafka")
    try:  # no batch can finish without the broker: the watchdog stops the query after 30 s (the stop
        _, err = job.communicate(timeout=300)  # itself may wait up to spark.sql.streaming.stopTimeout)
    finally:
        _stack("start", "kafka")
    assert job.returncode != 0 and "QueryStalled" in err and "finished no micro-batch in 30 s" in err, err[-3000:]
    _finish(_start_ingest_job(p.spec.name))
    assert assert_exactly_once(p, p.spec.sources["events"]) > 0


def test_a_lost_checkpoint_refuses_to_start_instead_of_ingesting_twice(make_pipeline):
    from loopline.ingest.streaming import CheckpointLost
    import shutil

    p = Pipeline.load(make_pipeline())
    events = p.spec.sources["events"]
    send(p.settings.kafka("producer"), events.topic, [event(1)])
    ingest_source(p.spark(), p, events, "first", DAY)
    checkpoint = p.lake.location("checkpoints", subdir=events.dataset)
    shutil.rmtree(checkpoint.arrow_path)
    with pytest.raises(CheckpointLost, match="ingest-reset"):
        ingest_source(p.spark(), p, events, "second", DAY)


def test_late_events_land_in_their_own_date_and_are_counted_late_by_the_run_that_reads_them(make_pipeline):
    p = Pipeline.load(make_pipeline())
    events = p.spec.sources["events"]
    on_time = [event(i) for i in range(1, 4)]
    late = [event(i, event_time="2026-05-04T23:59:00+00:00") for i in range(4, 6)]
    send(p.settings.kafka("producer"), events.topic, on_time)
    run_for_day = ingest_source(p.spark(), p, events, "run-for-day", DAY)
    send(p.settings.kafka("producer"), events.topic, late)  # events of DAY, arriving after DAY's run
    next_day = date(2026, 5, 5)
    run_for_next_day = ingest_source(p.spark(), p, events, "run-for-next-day", next_day)

    assert (run_for_day.accepted, run_for_day.late) == (3, 0)
    assert (run_for_next_day.accepted, run_for_next_day.late) == (2, 2)
    partition = read_dataset(p.lake.location(events.dataset, DAY))
    assert sorted(partition.column("transaction_id").to_pylist()) == [f"tx-corpus-{i}" for i in range(1, 6)]
    assert not p.lake.location(events.dataset, next_day).exists()


def test_two_runs_ingesting_one_source_at_once_take_turns_and_land_each_record_once(make_pipeline):
    from concurrent.futures import ThreadPoolExecutor

    p = Pipeline.load(make_pipeline(ingest={"max_records_per_batch": 200}))
    events = p.spec.sources["events"]
    _simulate(p, [DAY], seed=33)
    with ThreadPoolExecutor(max_workers=2) as pool:  # e.g. a nightly run and a run triggered by hand
        runs = list(pool.map(lambda run_id: ingest_source(p.spark(), p, events, run_id, DAY), ["first", "second"]))

    landed = assert_exactly_once(p, events)
    assert sum(run.consumed for run in runs) == landed
    assert sorted(run.batches > 0 for run in runs) == [False, True]  # the second found nothing left
