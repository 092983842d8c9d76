"""Poison input on the real broker, Spark, PostgreSQL and lake: nothing wedges ingestion.

- a corpus of broken messages, 41 kinds: each ends in quarantine with its reason and its
  coordinates, filed under its event date when readable (else the run's date, never the
  producer's clock), and is dead-lettered; one at the broker's size limit is dead-lettered as
  a pointer to its quarantined copy;
- transactions: read_committed, so aborted records never land, and the offsets that hold no
  record reconcile as `skipped`;
- a run that rejects more than the spec tolerates stops the line, and its retry does too.
"""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone

import pytest

from kafka_records import DAY, event, read_dataset, send
from loopline.core import db
from loopline.core.pipeline import Pipeline
from loopline.ingest.streaming import TooManyRejects, ingest_pipeline, ingest_source

MAX_RECORD_BYTES = 4096
RUN_DAY = DAY + timedelta(days=1)  # the run's logical date: where records without a readable date go
NEAR_BROKER_LIMIT = 1024 * 1024 - 300  # a value this large fits a Kafka record, not one with headers added
NOON_OF_DAY_IN_SECONDS = int(datetime.combine(DAY, time(12), tzinfo=timezone.utc).timestamp())


def _dumped(i: int, **layout) -> tuple[bytes, bytes]:
    """A valid event, its JSON laid out by json.dumps with `layout`."""
    key, value = event(i)
    return key, json.dumps(json.loads(value), **layout).encode()


GOOD_AS_WELL = [  # odd but valid: accepted
    event(90, customer_id="\ud83d\ude00 emoji"),  # a surrogate pair, escaped by json.dumps
    event(91, customer_id="back\\ud800slash"),  # an escaped backslash, then text that looks like an escape
    event(92, customer_id='say "hi": now'),  # an escaped quote before a colon, inside a string
    event(96, customer_id="commas, inside, a string"),  # more commas than keys: the keys are bounded by `":`
    _dumped(93, separators=(",", ":")),  # compact
    _dumped(94, separators=(" , ", " : ")),  # blanks around every separator
    _dumped(95, indent=2),  # one field a line
    (event(97)[0], event(97)[1] + b"\n"),  # a line end after the object
]

# (expected reason, (key, value), quarantine date); several kinds may share a reason
EVENT, RUN = DAY, RUN_DAY  # filed under the record's event date (Spark's reader could read it), or the run's
CORPUS: list[tuple[str, tuple[bytes | None, bytes | None], date]] = [
    ("null_value", (b"k-tombstone", None), RUN),
    ("empty_value", (b"k-empty", b""), RUN),
    ("oversize", event(101, customer_id="c" * MAX_RECORD_BYTES), EVENT),
    ("oversize", (b"k-huge", b"x" * NEAR_BROKER_LIMIT), RUN),
    ("bad_encoding", (b"k-latin1", '{"transaction_id": "caf\xe9"}'.encode("latin-1")), RUN),
    ("bad_encoding", (event(110)[0], event(110)[1].replace(b'"c00001"', b'"\\ud800"')), EVENT),  # a lone surrogate
    ("null_key", (None, event(102)[1]), EVENT),
    ("byte_order_mark", (event(111)[0], b"\xef\xbb\xbf" + event(111)[1]), RUN),
    ("parser_limit", (b"k-deep", b'{"a": ' + b"[" * 1500 + b"]" * 1500 + b"}"), RUN),
    ("parser_limit", (event(112)[0], event(112)[1].replace(b"10.0", b"1" * 1500)), RUN),
    ("duplicate_key", (event(113)[0], event(113)[1][:-1] + b', "amount": 99.0}'), EVENT),
    ("duplicate_key", (event(122)[0], event(122)[1][:-1] + b', "amount" : 99.0}'), EVENT),
    ("duplicate_key", (event(124, customer_id="a,b")[0], event(124, customer_id="a,b")[1][:-1] + b', "amount": 9}'),
     EVENT),  # a comma inside a string
    ("not_json", (b"k-text", b"{not json at all"), RUN),
    ("not_json", (event(114)[0], event(114)[1].replace(b"10.0", b"NaN")), EVENT),  # bare NaN is not JSON
    ("not_json", (event(115)[0], event(115)[1].replace(b"10.0", b"-Infinity")), EVENT),
    ("not_json", (event(123)[0], event(123)[1][:-1] + b", 'loyalty_tier': 'gold'}"), RUN),  # single quotes
    ("not_json", (event(127)[0], event(127)[1] + b"xyz"), EVENT),  # content after the object, which Spark ignores
    ("not_json", (event(128)[0], event(128)[1] + b"\n" + event(129)[1]), EVENT),  # two records in one
    ("not_json", (event(130)[0], event(130)[1] + b"}"), EVENT),
    ("not_json", (event(131)[0], event(131)[1] + b"]"), EVENT),
    ("not_json", (event(135)[0], event(135)[1] + b",5]"), EVENT),  # the end of an array around it
    ("not_an_object", (b"k-array", b"[1, 2, 3]"), RUN),
    ("unknown_schema_version", event(103, schema_version=2, amount="moved to amount_minor"), EVENT),
    ("missing_field:event_time", event(104, event_time=...), RUN),
    ("null_field:customer_id", event(105, customer_id=None), EVENT),
    ("wrong_type:amount", event(106, amount="12.50"), EVENT),
    ("wrong_type:amount", event(116, amount="NaN"), EVENT),
    ("wrong_type:event_time", event(107, event_time="yesterday afternoon"), RUN),
    ("wrong_type:customer_id", event(125, customer_id={"nested": "c00001"}), EVENT),  # Spark would keep its text
    ("wrong_type:customer_id", event(126, customer_id=["c00001"]), EVENT),
    ("wrong_type:customer_tx_count_30d", event(108, customer_tx_count_30d=3.5), EVENT),
    ("wrong_type:customer_id", event(132, customer_id=12345), EVENT),  # Spark would keep "12345"
    ("wrong_type:country", event(133, country=True), EVENT),  # and "true"
    ("wrong_type:event_time", event(134, event_time=NOON_OF_DAY_IN_SECONDS), EVENT),  # and read seconds since 1970
    ("out_of_range:event_time", event(117, event_time="0000-06-01T00:00:00+00:00"), RUN),
    ("out_of_range:event_time", event(118, event_time="+10000-01-01T00:00:00+00:00"), RUN),
    ("not_finite:amount", (event(119)[0], event(119)[1].replace(b"10.0", b"1e309")), EVENT),
    ("not_finite:customer_avg_amount_30d", (event(120)[0], event(120)[1].replace(b"20.0", b"-1e400")), EVENT),
    ("nul_character:customer_id", event(121, customer_id="c\u0000001"), EVENT),
    ("key_mismatch", (b"tx-somebody-else", event(109)[1]), EVENT),
]


def _dead_letters(p: Pipeline, topic: str) -> dict[int, tuple[dict, bytes | None, bytes | None]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, **p.settings.kafka("reader").python(), auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    try:
        return {int(dict(m.headers)["loopline.source.offset"]): (dict(m.headers), m.key, m.value) for m in consumer}
    finally:
        consumer.close()


def test_every_kind_of_poison_is_quarantined_with_its_reason_and_none_wedges_ingestion(make_pipeline):
    assert len(CORPUS) >= 25
    p = Pipeline.load(make_pipeline(ingest={"max_record_bytes": MAX_RECORD_BYTES}))
    events = p.spec.sources["events"]
    good = [event(i) for i in range(1, 6)] + GOOD_AS_WELL
    # CreateTime 0: a producer's clock must not decide where a record is filed
    offsets = send(p.settings.kafka("producer"), events.topic, good + [m for _, m, _ in CORPUS], timestamp_ms=0)
    expected = {offset: (reason, *message) for offset, (reason, message, _) in zip(offsets[len(good):], CORPUS)}
    filed_under = {offset: str(day) for offset, (_, _, day) in zip(offsets[len(good):], CORPUS)}

    run = ingest_source(p.spark(), p, events, "corpus-run", RUN_DAY)

    assert (run.consumed, run.accepted, run.quarantined, run.skipped) == (len(good) + len(CORPUS), len(good),
                                                                          len(CORPUS), 0)
    quarantine = read_dataset(p.lake.location("quarantine", subdir=events.dataset)).to_pylist()
    # every record with its reason, byte for byte (bad encodings included), at its coordinates
    assert {q["source_offset"]: (q["reject_reason"], q["raw_key"], q["raw_value"]) for q in quarantine} == expected
    assert {(q["source"], q["source_partition"], q["run_id"]) for q in quarantine} == {(events.topic, 0, "corpus-run")}
    assert {q["source_offset"]: str(q["date"]) for q in quarantine} == filed_under
    bronze = read_dataset(p.lake.location(events.dataset, DAY))
    assert sorted(bronze.column("transaction_id").to_pylist()) == sorted(k.decode() for k, _ in good)

    dead_letters = _dead_letters(p, p.spec.dead_letter_topic(events))
    assert {o: h["loopline.reason"].decode() for o, (h, _, _) in dead_letters.items()} == {
        o: reason for o, (reason, _, _) in expected.items()}
    assert all(h["loopline.source.topic"].decode() == events.topic for h, _, _ in dead_letters.values())
    huge = next(o for o, (_, key, _) in expected.items() if key == b"k-huge")
    headers, key, value = dead_letters.pop(huge)  # too large to republish: a pointer to its copy
    assert (key, value, headers["loopline.value_bytes"]) == (None, None, str(NEAR_BROKER_LIMIT).encode())
    assert headers["loopline.quarantine.location"].decode() == (
        f"{p.lake.location('quarantine', subdir=events.dataset).spark_uri}/date={RUN_DAY}/ingest_batch=0")
    assert {o: (k, v) for o, (_, k, v) in dead_letters.items()} == {
        o: (k, v) for o, (_, k, v) in expected.items() if o != huge}
    with db.connect(p.settings.db_url) as conn:
        recorded = db.fetch_all(conn, "SELECT consumed, accepted, quarantined, reconciled FROM loopline.ingest_runs "
                                      "WHERE pipeline=%s AND run_id='corpus-run' AND dataset=%s",
                                (p.spec.name, events.dataset))
    assert recorded == [{"consumed": run.consumed, "accepted": run.accepted, "quarantined": run.quarantined,
                         "reconciled": True}]


def test_aborted_transactions_never_land_and_their_offsets_reconcile_as_skipped(make_pipeline):
    from kafka import KafkaProducer

    p = Pipeline.load(make_pipeline())
    events = p.spec.sources["events"]
    producer = KafkaProducer(**p.settings.kafka("producer").python(), transactional_id="loopline-producer-it",
                             acks="all")
    try:
        producer.init_transactions()
        for outcome, ids in (("commit", range(1, 4)), ("abort", range(4, 6))):
            producer.begin_transaction()
            for key, value in map(event, ids):
                producer.send(events.topic, key=key, value=value, partition=0)
            producer.flush()
            getattr(producer, f"{outcome}_transaction")()
    finally:
        producer.close()
    send(p.settings.kafka("producer"), events.topic, [event(6), event(7)])  # no transaction

    run = ingest_source(p.spark(), p, events, "transactions-run", DAY)

    # 3 committed + 2 aborted + 2 plain records, and a marker after each transaction: 9 offsets
    assert (run.consumed, run.accepted, run.quarantined, run.skipped) == (5, 5, 0, 4)
    bronze = read_dataset(p.lake.location(events.dataset, DAY))
    assert sorted(bronze.column("transaction_id").to_pylist()) == [f"tx-corpus-{i}" for i in (1, 2, 3, 6, 7)]
    with db.connect(p.settings.db_url) as conn:
        (row,) = db.fetch_all(conn, "SELECT offsets, skipped FROM loopline.ingest_batches WHERE pipeline=%s "
                                    "AND dataset=%s", (p.spec.name, events.dataset))
    assert row["skipped"] == 4 and sum(end - start for start, end in row["offsets"].values()) == 9


def test_a_run_rejecting_more_than_the_spec_tolerates_stops_the_line_and_so_does_its_retry(make_pipeline):
    p = Pipeline.load(make_pipeline(ingest={"max_rejected_share": 0.2}))
    events = p.spec.sources["events"]
    send(p.settings.kafka("producer"), events.topic,
         [event(i) for i in range(1, 5)] + [(b"k-text", b"{not json"), event(9, amount="12.50")])

    for attempt in range(2):  # Airflow's retry runs under the same run id: it meets the same count
        with pytest.raises(TooManyRejects, match=r"more than ingest.max_rejected_share \(20\.0%\) of what it "
                                                 r"read: bronze_events: 2 of 6 records \(33\.3%\)"):
            ingest_pipeline(p.spark(), p, "rejecting-run", DAY)
    with db.connect(p.settings.db_url) as conn:
        landed = db.fetch_all(conn, "SELECT sum(accepted) AS accepted, sum(quarantined) AS quarantined "
                                    "FROM loopline.ingest_batches WHERE pipeline=%s AND dataset=%s",
                              (p.spec.name, events.dataset))
    assert landed == [{"accepted": 4, "quarantined": 2}]  # landed once, kept: nothing lost or doubled

    runs = ingest_pipeline(p.spark(), p, "next-run", date(2026, 5, 5))  # a new run goes on with what is new
    assert runs["events"].consumed == 0
