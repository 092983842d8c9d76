"""Publish predictions to the spec's topic exactly once, however a publish is interrupted.

The rows of a publish go in one Kafka transaction under the pipeline's own transactional id,
so a consumer reading `read_committed` sees all of them or none. A publish killed half-way
leaves an open transaction; the next attempt's producer fences it (Kafka aborts it), so its
messages never become visible. Before the transaction, PostgreSQL records the intent (a
batch id, the topic's end offsets, the rows per date); after the commit, the dates are
marked published. A process killed between the commit and that mark leaves the intent: the
next attempt reads the topic from the recorded offsets for the batch's messages, and if the
commit got through it only marks the dates, so nothing is published twice.
"""
from __future__ import annotations

import json
import logging
import math
import time
import uuid
from typing import TYPE_CHECKING

from loopline.core import db
from loopline.core.interval import Interval

if TYPE_CHECKING:
    from loopline.core.pipeline import Pipeline

BATCH_HEADER = "loopline.publish_batch"
VERSION_HEADER = "loopline.model_version"
TRANSACTION_TIMEOUT_MS = 900_000  # the broker's default transaction.max.timeout.ms: a publish may take minutes
COMMIT_SECONDS = 600  # a commit waits for every queued message: millions, at most
CALL_SECONDS = 60  # any other call to the brokers
SCAN_SECONDS = 300  # reading back what an interrupted publish left, at most
SLICE_ROWS = 1_000_000  # the rows one query brings through the Spark driver (about 250 MB of messages)

logger = logging.getLogger(__name__)


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

    def settle(self, interval: Interval) -> None:
        """Resolve the interval's recorded intents: dates whose batch is on the topic are marked
        published; the others' intents are dropped, to be published again."""
        with db.connect(self.p.settings.db_url) as conn:
            pending = db.fetch_all(conn, """SELECT logical_date::text AS day, publish_batch, publish_from, publish_rows
                                              FROM loopline.score_runs
                                             WHERE pipeline = %s AND logical_date BETWEEN %s AND %s
                                               AND publish_batch IS NOT NULL""",
                                   (self.p.spec.name, interval.first, interval.last))
        landed = {row["publish_batch"] for row in pending
                  if self._on_topic(row["publish_batch"], row["publish_from"])}
        with db.connect(self.p.settings.db_url) as conn, conn.cursor() as cur:
            for row in pending:
                cur.execute("UPDATE loopline.score_runs SET published_rows = CASE WHEN %s THEN publish_rows ELSE "
                            "published_rows END, publish_batch = NULL, publish_from = NULL, publish_rows = NULL "
                            "WHERE pipeline = %s AND logical_date = %s",
                            (row["publish_batch"] in landed, self.p.spec.name, row["day"]))

    def publish(self, rows, rows_by_date: dict[str, int]) -> int:
        """Send `rows` (prediction_id, value, model_version) in one transaction and mark their
        dates published; return the messages sent."""
        batch = uuid.uuid4().hex
        self._record_intent(batch, rows_by_date)
        self.producer.begin_transaction()
        try:
            sent = sum(self._send(part, batch) for part in _slices(rows, sum(rows_by_date.values())))
            self.producer.commit_transaction(COMMIT_SECONDS)  # waits for every message's delivery
        except BaseException as failure:
            self._abort(failure)
            raise
        self._mark_published(rows_by_date)
        return sent

    def _abort(self, failure: BaseException) -> None:
        """Abort the open transaction, keeping `failure` as the error the task reports: a fenced
        producer (a newer attempt took over) cannot abort, and that would hide why it stopped."""
        from confluent_kafka import KafkaException

        try:
            self.producer.abort_transaction(CALL_SECONDS)
        except KafkaException as abort_failure:
            logger.warning("%s: could not abort the publish's transaction (%s) after: %s; the broker aborts it "
                           "when it times out or the next attempt fences it", self.topic, abort_failure, failure)

    def _send(self, rows, batch: str) -> int:
        """Queue every row in the open transaction, waiting for room when librdkafka's queue is full."""
        sent = 0
        for row in rows.toLocalIterator():
            message = {"key": row["prediction_id"].encode(), "value": row["value"].encode(),
                       "headers": [(VERSION_HEADER, str(row["model_version"]).encode()),
                                   (BATCH_HEADER, batch.encode())]}
            while True:
                try:
                    self.producer.produce(self.topic, **message)
                    break
                except BufferError:
                    self.producer.poll(0.1)
            self.producer.poll(0)
            sent += 1
        return sent

    def _mark_published(self, rows_by_date: dict[str, int]) -> None:
        with db.connect(self.p.settings.db_url) as conn, conn.cursor() as cur:
            for day, count in rows_by_date.items():
                cur.execute("UPDATE loopline.score_runs SET published_rows = %s, publish_batch = NULL, "
                            "publish_from = NULL, publish_rows = NULL WHERE pipeline = %s AND logical_date = %s",
                            (count, self.p.spec.name, day))

    def _record_intent(self, batch: str, rows_by_date: dict[str, int]) -> None:
        ends = {str(partition): offset for partition, offset in self._end_offsets().items()}
        with db.connect(self.p.settings.db_url) as conn, conn.cursor() as cur:
            for day, count in rows_by_date.items():
                cur.execute("UPDATE loopline.score_runs SET publish_batch = %s, publish_from = %s, publish_rows = %s "
                            "WHERE pipeline = %s AND logical_date = %s",
                            (batch, json.dumps(ends), count, self.p.spec.name, day))

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


def _slices(rows, count: int) -> list:
    """`rows` as queries of about SLICE_ROWS rows each. Spark Connect's driver keeps a query's
    results until the client has read them, and the client reads slower than Spark computes:
    one query of 10M predictions ran a 3 GiB driver out of memory. Each slice rescans the rows,
    a small cost against the publish."""
    from pyspark.sql import functions as F

    parts = math.ceil(count / SLICE_ROWS)
    if parts <= 1:
        return [rows]
    return [rows.where(F.pmod(F.xxhash64("prediction_id"), F.lit(parts)) == part) for part in range(parts)]


def _partition(topic: str, number: int, offset: int | None = None):
    from confluent_kafka import TopicPartition

    return TopicPartition(topic, number) if offset is None else TopicPartition(topic, number, offset)
