"""Publish predictions to the spec's topic exactly once, however a publish is interrupted.

The rows of a publish go in one Kafka transaction under the pipeline's own transactional id,
so a consumer reading `read_committed` sees all of them or none. A publish killed half-way
leaves an open transaction; the next attempt's producer fences it (Kafka aborts it), so its
messages never become visible. In the scoring run's PostgreSQL transaction, committed before
the Kafka one, the intent is recorded (a batch id, the topic's end offsets before the
transaction, the rows per date); after the Kafka commit, the dates are marked published. A
process killed between the two commits leaves the intent: the next attempt reads the topic
from the recorded offsets for the batch's messages, and if the commit got through it only
marks the dates, so nothing is published twice.

A message is keyed by prediction id; its value is the prediction as a JSON object (dates as
`YYYY-MM-DD`, event times as RFC 3339 in UTC), its headers name the model version and the
publish batch.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loopline.core import db
from loopline.core.interval import Interval

if TYPE_CHECKING:
    import pyarrow as pa

    from loopline.core.pipeline import Pipeline

BATCH_HEADER = "loopline.publish_batch"
VERSION_HEADER = "loopline.model_version"
TRANSACTION_TIMEOUT_MS = 900_000  # the broker's default transaction.max.timeout.ms: a publish may take minutes
COMMIT_SECONDS = 600  # a commit waits for every queued message: millions, at most
CALL_SECONDS = 60  # any other call to the brokers
SCAN_SECONDS = 300  # reading back what an interrupted publish left, at most
MESSAGE_FIELDS = ("prediction_id", "pipeline", "score_date", "entity_key", "event_time", "task", "prediction",
                  "model_version")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Intent:
    """One publish: its batch id, the topic's committed end offsets before its transaction, and the rows per date."""

    batch: str
    start: dict[str, int]
    rows_by_date: dict[str, int]


class Publisher:
    """One attempt's transactional producer (librdkafka's: a publish may be millions of
    messages); creating it fences any earlier attempt."""

    def __init__(self, p: "Pipeline") -> None:
        from confluent_kafka import Producer

        self.p, self.topic = p, p.spec.predictions_topic
        self.login = p.settings.kafka("scoring")
        self.producer = Producer({**self.login.librdkafka(), "transactional.id": f"loopline-scoring.{p.spec.name}",
                                  "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS, "linger.ms": 20})
        self.producer.init_transactions(CALL_SECONDS)

    def settle(self, conn, interval: Interval) -> None:
        """Resolve the interval's recorded intents (on `conn`, for the caller to commit): dates
        whose batch is on the topic are marked published; the others' intents are dropped, to be
        published again."""
        pending = db.fetch_all(conn, """SELECT logical_date::text AS day, publish_batch, publish_from, publish_rows
                                          FROM loopline.score_runs
                                         WHERE pipeline = %s AND logical_date BETWEEN %s AND %s
                                           AND publish_batch IS NOT NULL""",
                               (self.p.spec.name, interval.first, interval.last))
        landed = {row["publish_batch"] for row in pending
                  if self._on_topic(row["publish_batch"], row["publish_from"])}
        with conn.cursor() as cur:
            for row in pending:
                cur.execute("UPDATE loopline.score_runs SET published_rows = CASE WHEN %s THEN publish_rows ELSE "
                            "published_rows END, publish_batch = NULL, publish_from = NULL, publish_rows = NULL "
                            "WHERE pipeline = %s AND logical_date = %s",
                            (row["publish_batch"] in landed, self.p.spec.name, row["day"]))

    @contextmanager
    def transaction(self, conn, rows_by_date: dict[str, int]) -> Iterator[Intent | None]:
        """One Kafka transaction for the dates' rows (none, and None yielded, when there are no
        dates). The block sends with `send`, records the intent with `record_intent` and commits
        `conn` before it ends; leaving it commits the Kafka transaction and marks the dates
        published on `conn`, for the caller to commit. An error in the block aborts the Kafka
        transaction."""
        if not rows_by_date:
            yield None
            return
        intent = Intent(uuid.uuid4().hex, {str(n): offset for n, offset in self._end_offsets().items()}, rows_by_date)
        self.producer.begin_transaction()
        try:
            yield intent
            self.producer.commit_transaction(COMMIT_SECONDS)  # waits for every message's delivery
        except BaseException as failure:
            self._abort(failure)
            raise
        self._mark_published(conn, rows_by_date)

    def send(self, intent: Intent, rows: "pa.RecordBatch") -> int:
        """Queue `rows`' predictions of the intent's dates in the open transaction (waiting for
        room when librdkafka's queue is full); return how many."""
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = rows.filter(pc.is_in(pc.cast(rows.column("score_date"), pa.string()),
                                    value_set=pa.array(list(intent.rows_by_date), pa.string())))
        if not rows.num_rows:
            return 0
        headers = [(VERSION_HEADER, str(rows.column("model_version")[0].as_py()).encode()),
                   (BATCH_HEADER, intent.batch.encode())]
        for key, value in zip(rows.column("prediction_id").to_pylist(), message_values(rows).to_pylist()):
            while True:
                try:
                    self.producer.produce(self.topic, key=key, value=value, headers=headers)
                    break
                except BufferError:
                    self.producer.poll(0.1)
            self.producer.poll(0)
        return rows.num_rows

    def record_intent(self, conn, intent: Intent) -> None:
        """Record the intent on each of its dates' scoring records, in `conn`'s transaction."""
        with conn.cursor() as cur:
            for day, count in intent.rows_by_date.items():
                cur.execute("UPDATE loopline.score_runs SET publish_batch = %s, publish_from = %s, publish_rows = %s "
                            "WHERE pipeline = %s AND logical_date = %s",
                            (intent.batch, json.dumps(intent.start), count, self.p.spec.name, day))

    def _abort(self, failure: BaseException) -> None:
        """Abort the open transaction, keeping `failure` as the error the task reports: a fenced
        producer (a newer attempt took over) cannot abort, and that would hide why it stopped."""
        from confluent_kafka import KafkaException

        try:
            self.producer.abort_transaction(CALL_SECONDS)
        except KafkaException as abort_failure:
            logger.warning("%s: could not abort the publish's transaction (%s) after: %s; the broker aborts it "
                           "when it times out or the next attempt fences it", self.topic, abort_failure, failure)

    def _mark_published(self, conn, rows_by_date: dict[str, int]) -> None:
        with conn.cursor() as cur:
            for day, count in rows_by_date.items():
                cur.execute("UPDATE loopline.score_runs SET published_rows = %s, publish_batch = NULL, "
                            "publish_from = NULL, publish_rows = NULL WHERE pipeline = %s AND logical_date = %s",
                            (count, self.p.spec.name, day))

    def _end_offsets(self) -> dict[int, int]:
        """The topic's committed end offset per partition (an admin query: no consumer group)."""
        from confluent_kafka import IsolationLevel
        from confluent_kafka.admin import AdminClient, OffsetSpec

        admin = AdminClient(self.login.librdkafka())
        partitions = admin.list_topics(self.topic, timeout=CALL_SECONDS).topics[self.topic].partitions
        ends = admin.list_offsets({_partition(self.topic, n): OffsetSpec.latest() for n in partitions},
                                  isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=CALL_SECONDS)
        return {tp.partition: future.result().offset for tp, future in ends.items()}

    def _on_topic(self, batch: str, start: dict[str, int]) -> bool:
        """Whether a committed message of `batch` sits after the recorded offsets (the fenced
        transactions are resolved by now, so read_committed reads up to the end)."""
        from confluent_kafka import Consumer, KafkaError, KafkaException

        consumer = Consumer({**self.login.librdkafka(), "enable.auto.commit": False, "enable.partition.eof": True,
                             "isolation.level": "read_committed",  # librdkafka wants a group; nothing is committed
                             "group.id": f"loopline-scoring.{self.p.spec.name}.check"})
        try:
            consumer.assign([_partition(self.topic, int(n), offset) for n, offset in start.items()])
            unread, deadline = {int(n) for n in start}, time.monotonic() + SCAN_SECONDS
            while unread:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.topic}: could not read partitions {sorted(unread)} to their end within "
                                       f"{SCAN_SECONDS} s to check publish batch {batch}; check the broker, then "
                                       "retry the task")
                for record in consumer.consume(10_000, timeout=2):
                    error = record.error()
                    if error is None and (BATCH_HEADER, batch.encode()) in (record.headers() or []):
                        return True
                    if error is not None and error.code() == KafkaError._PARTITION_EOF:
                        unread.discard(record.partition())
                    elif error is not None:
                        raise KafkaException(error)
            return False
        finally:
            consumer.close()


def message_values(rows: "pa.RecordBatch") -> "pa.Array":
    """Each row as its message's JSON object, built column-wise by Arrow (a Python object per
    value would cost more than the send): text JSON-escaped, dates `YYYY-MM-DD`, event times
    RFC 3339 in UTC, numbers in their shortest exact form."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = []
    for name in MESSAGE_FIELDS:
        column = rows.column(name)
        if pa.types.is_timestamp(column.type):
            text = _quoted(pc.strftime(column.cast(pa.timestamp("us", tz="UTC")), "%Y-%m-%dT%H:%M:%SZ"))
        elif pa.types.is_date(column.type):
            text = _quoted(pc.cast(column, pa.string()))
        elif pa.types.is_string(column.type):
            text = _json_strings(column)
        else:
            text = pc.cast(column, pa.string())
        parts += [("{" if not parts else ",") + json.dumps(name) + ":", pc.fill_null(text, "null")]
    return pc.binary_join_element_wise(*parts, "}", "")


def _quoted(text: "pa.Array") -> "pa.Array":
    import pyarrow.compute as pc

    return pc.binary_join_element_wise('"', text, '"', "")


def _json_strings(column: "pa.Array") -> "pa.Array":
    """Text as JSON string literals: backslashes and quotes escaped by Arrow; a column holding
    control characters (rare) is encoded value by value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pc.any(pc.match_substring_regex(column, "[\\x00-\\x1f]")).as_py():
        return pa.array([None if value is None else json.dumps(value, ensure_ascii=False)
                         for value in column.to_pylist()], pa.string())
    escaped = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
    return _quoted(escaped)


def _partition(topic: str, number: int, offset: int | None = None):
    from confluent_kafka import TopicPartition

    return TopicPartition(topic, number) if offset is None else TopicPartition(topic, number, offset)
