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
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from loopline.core import db
from loopline.core.interval import Interval

if TYPE_CHECKING:
    from loopline.core.pipeline import Pipeline

BATCH_HEADER = "loopline.publish_batch"
VERSION_HEADER = "loopline.model_version"
TRANSACTION_TIMEOUT_MS = 900_000  # the broker's default transaction.max.timeout.ms: a publish may take minutes
SCAN_SECONDS = 300  # reading back what an interrupted publish left, at most


class Publisher:
    """One attempt's transactional producer; creating it fences any earlier attempt."""

    def __init__(self, p: "Pipeline") -> None:
        from kafka import KafkaProducer

        self.p, self.topic = p, p.spec.predictions_topic
        self.producer = KafkaProducer(**p.settings.kafka("scoring").python(), acks="all",
                                      transactional_id=f"loopline-scoring.{p.spec.name}",
                                      transaction_timeout_ms=TRANSACTION_TIMEOUT_MS, linger_ms=20)
        self.producer.init_transactions()

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
        sent = 0
        try:
            for row in rows.toLocalIterator():
                self.producer.send(self.topic, key=row["prediction_id"].encode(), value=row["value"].encode(),
                                   headers=[(VERSION_HEADER, str(row["model_version"]).encode()),
                                            (BATCH_HEADER, batch.encode())])
                sent += 1
            self.producer.commit_transaction()
        except BaseException:
            self.producer.abort_transaction()
            raise
        self._mark_published(rows_by_date)
        return sent

    def _mark_published(self, rows_by_date: dict[str, int]) -> None:
        with db.connect(self.p.settings.db_url) as conn, conn.cursor() as cur:
            for day, count in rows_by_date.items():
                cur.execute("UPDATE loopline.score_runs SET published_rows = %s, publish_batch = NULL, "
                            "publish_from = NULL, publish_rows = NULL WHERE pipeline = %s AND logical_date = %s",
                            (count, self.p.spec.name, day))

    def close(self) -> None:
        self.producer.close(timeout=10)

    def _record_intent(self, batch: str, rows_by_date: dict[str, int]) -> None:
        ends = {str(partition): offset for partition, offset in self._end_offsets().items()}
        with db.connect(self.p.settings.db_url) as conn, conn.cursor() as cur:
            for day, count in rows_by_date.items():
                cur.execute("UPDATE loopline.score_runs SET publish_batch = %s, publish_from = %s, publish_rows = %s "
                            "WHERE pipeline = %s AND logical_date = %s",
                            (batch, json.dumps(ends), count, self.p.spec.name, day))

    def _consumer(self):
        from kafka import KafkaConsumer

        return KafkaConsumer(**self.p.settings.kafka("scoring").python(), enable_auto_commit=False,
                             isolation_level="read_committed")

    def _end_offsets(self) -> dict[int, int]:
        from kafka import TopicPartition

        consumer = self._consumer()
        try:
            partitions = [TopicPartition(self.topic, n) for n in sorted(consumer.partitions_for_topic(self.topic))]
            return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
        finally:
            consumer.close()

    def _on_topic(self, batch: str, start: dict[str, int]) -> bool:
        """Whether a committed message of `batch` sits after the recorded offsets (the fenced
        transactions are resolved by now, so read_committed reads up to the end)."""
        from kafka import TopicPartition

        consumer = self._consumer()
        try:
            partitions = [TopicPartition(self.topic, int(n)) for n in start]
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, start[str(tp.partition)])
            end, deadline = consumer.end_offsets(partitions), time.monotonic() + SCAN_SECONDS
            while any(consumer.position(tp) < end[tp] for tp in partitions):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.topic}: could not read up to {end} within {SCAN_SECONDS} s to check "
                                       f"publish batch {batch}; check the broker, then retry the task")
                for records in consumer.poll(timeout_ms=2000).values():
                    if any(dict(r.headers).get(BATCH_HEADER) == batch.encode() for r in records):
                        return True
            return False
        finally:
            consumer.close()


@contextmanager
def publisher(p: "Pipeline") -> Iterator[Publisher]:
    opened = Publisher(p)
    try:
        yield opened
    finally:
        opened.close()
