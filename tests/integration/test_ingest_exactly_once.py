"""Kafka → lake ingestion under abuse, on the real broker, Spark, PostgreSQL and lake.

- a corpus of broken messages: each is quarantined with the right reason and dead-lettered;
- the ingest job killed with SIGKILL at random points, then rerun: exactly once;
- the broker stopped in the middle of a run and started again: exactly once after a rerun.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from lake_audit import assert_exactly_once
from loopline.core import db
from loopline.core.kafka_auth import KafkaLogin
from loopline.core.pipeline import Pipeline
from loopline.ingest.streaming import ingest_source
from card_fraud_simulator import SimulationConfig, produce

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 5, 4)
MAX_RECORD_BYTES = 4096
GOOD = {"transaction_id": "tx-corpus-0", "customer_id": "c00001", "event_time": "2026-05-04T12:00:00+00:00",
        "amount": 10.0, "merchant_category": "grocery", "country": "DE", "channel": "pos", "is_new_device": False,
        "customer_tx_count_30d": 3, "customer_avg_amount_30d": 20.0, "schema_version": 1}


def _good(i: int, **changes) -> tuple[bytes, bytes]:
    record = {**GOOD, "transaction_id": f"tx-corpus-{i}", **changes}
    return record["transaction_id"].encode(), json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


# expected reason -> (key, value); `...` as a value drops the field
BAD_MESSAGES = {
    "null_value": (b"k-tombstone", None),
    "empty_value": (b"k-empty", b""),
    "oversize": _good(101, customer_id="c" * MAX_RECORD_BYTES),
    "bad_encoding": (b"k-latin1", '{"transaction_id": "caf\xe9"}'.encode("latin-1")),
    "null_key": (None, _good(102)[1]),
    "not_json": (b"k-text", b"{not json at all"),
    "not_an_object": (b"k-array", b"[1, 2, 3]"),
    "unknown_schema_version": _good(103, schema_version=2, amount="moved to amount_minor"),
    "missing_field:event_time": _good(104, event_time=...),
    "null_field:customer_id": _good(105, customer_id=None),
    "wrong_type:amount": _good(106, amount="12.50"),
    "wrong_type:event_time": _good(107, event_time="yesterday afternoon"),
    "wrong_type:customer_tx_count_30d": _good(108, customer_tx_count_30d=3.5),
    "key_mismatch": (b"tx-somebody-else", _good(109)[1]),
}


def _send(kafka: KafkaLogin, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> list[int]:
    """Produce in order; return each message's offset (all to partition 0)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka.python(), acks="all")
    try:
        futures = [producer.send(topic, key=k, value=v, partition=0) for k, v in messages]
        producer.flush()
        return [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close()


def _read(location, columns=None):
    return ds.dataset(location.arrow_path, filesystem=location.filesystem(), format="parquet",
                      partitioning="hive").to_table(columns=columns)


def test_each_kind_of_bad_message_is_quarantined_and_dead_lettered_with_its_reason(make_pipeline):
    p = Pipeline.load(make_pipeline(ingest={"max_record_bytes": MAX_RECORD_BYTES}))
    events = p.spec.sources["events"]
    good = [_good(i) for i in range(1, 6)]
    offsets = _send(p.settings.kafka("producer"), events.topic, good + list(BAD_MESSAGES.values()))
    expected = dict(zip(offsets[len(good):], BAD_MESSAGES))

    run = ingest_source(p.spark(), p, events, "corpus-run", DAY)

    assert (run.consumed, run.accepted, run.quarantined) == (len(good) + len(BAD_MESSAGES), len(good), len(BAD_MESSAGES))
    quarantine = _read(p.lake.location("quarantine", subdir=events.dataset)).to_pylist()
    assert {q["source_offset"]: q["reject_reason"] for q in quarantine} == expected
    raw_by_reason = {q["reject_reason"]: (q["raw_key"], q["raw_value"]) for q in quarantine}
    assert raw_by_reason == BAD_MESSAGES  # payloads kept byte for byte, bad encodings included
    assert {q["run_id"] for q in quarantine} == {"corpus-run"}
    bronze = _read(p.lake.location(events.dataset, DAY))
    assert sorted(bronze.column("transaction_id").to_pylist()) == sorted(k.decode() for k, _ in good)

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(p.spec.dead_letter_topic(events), **p.settings.kafka("reader").python(),
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    dead_letters = {int(dict(m.headers)["loopline.source.offset"]): (dict(m.headers), m.key, m.value) for m in consumer}
    consumer.close()
    assert {o: h["loopline.reason"].decode() for o, (h, _, _) in dead_letters.items()} == expected
    assert all(h["loopline.source.topic"].decode() == events.topic for h, _, _ in dead_letters.values())
    assert {expected[o]: (k, v) for o, (_, k, v) in dead_letters.items()} == BAD_MESSAGES
    with db.connect(p.settings.db_url) as conn:
        recorded = db.fetch_all(conn, "SELECT consumed, accepted, quarantined, reconciled FROM loopline.ingest_runs "
                                      "WHERE pipeline=%s AND run_id='corpus-run' AND dataset=%s",
                                (p.spec.name, events.dataset))
    assert recorded == [{"consumed": run.consumed, "accepted": run.accepted, "quarantined": run.quarantined,
                         "reconciled": True}]


def _start_ingest_job(pipeline: str) -> subprocess.Popen:
    """spark_jobs/ingest.py in its own process group, with its own local Spark (no Connect
    server), so SIGKILL of the group kills the driver and the query mid-flight."""
    # pyspark marks this process as Spark Connect (SPARK_CONNECT_MODE_ENABLED) once a remote
    # session exists; the child must not inherit that.
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    return subprocess.Popen([sys.executable, str(REPO / "spark_jobs" / "ingest.py"), "--pipeline", pipeline,
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
    p = Pipeline.load(make_pipeline(ingest={"max_records_per_batch": 500}))
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


def _stack(command: str, service: str) -> None:
    subprocess.run([sys.executable, str(REPO / "infra" / "stack.py"), command, service], check=True, cwd=REPO,
                   timeout=180)


def test_broker_outage_mid_run_then_rerun_lands_every_record_exactly_once(make_pipeline):
    p = Pipeline.load(make_pipeline(ingest={"max_records_per_batch": 800}))
    _simulate(p, [date(2026, 7, 1), date(2026, 7, 2)], seed=33)
    job = _start_ingest_job(p.spec.name)
    deadline = time.monotonic() + 120
    while _batches(p) == 0 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.poll() is None, "the job finished before the outage could start; lower max_records_per_batch"
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


def test_a_lost_checkpoint_refuses_to_start_instead_of_ingesting_twice(make_pipeline):
    from loopline.ingest.streaming import CheckpointLost
    import shutil

    p = Pipeline.load(make_pipeline())
    events = p.spec.sources["events"]
    _send(p.settings.kafka("producer"), events.topic, [_good(1)])
    ingest_source(p.spark(), p, events, "first", DAY)
    checkpoint = p.lake.location("checkpoints", subdir=events.dataset)
    shutil.rmtree(checkpoint.arrow_path)
    with pytest.raises(CheckpointLost, match="ingest-reset"):
        ingest_source(p.spark(), p, events, "second", DAY)


def test_late_events_land_in_their_own_date_and_are_counted_late_by_the_run_that_reads_them(make_pipeline):
    p = Pipeline.load(make_pipeline())
    events = p.spec.sources["events"]
    on_time = [_good(i) for i in range(1, 4)]
    late = [_good(i, event_time="2026-05-04T23:59:00+00:00") for i in range(4, 6)]
    _send(p.settings.kafka("producer"), events.topic, on_time)
    run_for_day = ingest_source(p.spark(), p, events, "run-for-day", DAY)
    _send(p.settings.kafka("producer"), events.topic, late)  # events of DAY, arriving after DAY's run
    next_day = date(2026, 5, 5)
    run_for_next_day = ingest_source(p.spark(), p, events, "run-for-next-day", next_day)

    assert (run_for_day.accepted, run_for_day.late) == (3, 0)
    assert (run_for_next_day.accepted, run_for_next_day.late) == (2, 2)
    partition = _read(p.lake.location(events.dataset, DAY))
    assert sorted(partition.column("transaction_id").to_pylist()) == [f"tx-corpus-{i}" for i in range(1, 6)]
    assert not p.lake.location(events.dataset, next_day).exists()
