"""Kafka offset look-ups: which offsets hold a day's records, and how much is still unread.

Used by the simulator (never send a day twice) and by the ingest sensor (wait for data).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopline.core.kafka_auth import KafkaLogin

OffsetRange = dict[int, tuple[int, int]]  # partition -> [start, end)


def day_window(first_at_or_after: dict[date, dict[int, int | None]], logical_date: date,
               latest: dict[int, int]) -> OffsetRange:
    """The offsets of records timestamped within `logical_date` (UTC), per partition.

    `first_at_or_after[d][p]` is the first offset of partition p whose timestamp is at or
    after midnight of day d (None when there is none yet, i.e. up to the latest offset).
    """
    day_after = logical_date + timedelta(days=1)
    window: OffsetRange = {}
    for partition, end_of_log in sorted(latest.items()):
        start = first_at_or_after[logical_date].get(partition)
        end = first_at_or_after[day_after].get(partition)
        start = end_of_log if start is None else start
        end = end_of_log if end is None else end
        window[partition] = (start, max(start, end))
    return window


def kafka_day_window(kafka: "KafkaLogin", topic: str, logical_date: date) -> OffsetRange:
    """Ask the broker which offsets hold the records timestamped within `logical_date`."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka.python(), enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RuntimeError(f"Kafka topic {topic!r} does not exist on {kafka.bootstrap} (or {kafka.user} may not "
                               "describe it); run `loopline bootstrap`")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        latest = {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
        lookups = {}
        for day in (logical_date, logical_date + timedelta(days=1)):
            millis = int(datetime.combine(day, time(0), tzinfo=timezone.utc).timestamp() * 1000)
            found = consumer.offsets_for_times({tp: millis for tp in tps})
            lookups[day] = {tp.partition: (hit.offset if hit else None) for tp, hit in found.items()}
        return day_window(lookups, logical_date, latest)
    finally:
        consumer.close()


def log_range(kafka: "KafkaLogin", topic: str) -> tuple[dict[str, int], dict[str, int]]:
    """(first offset still in the log, next offset to be written) per partition, from one
    consumer; keys are partition numbers as text."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka.python(), enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RuntimeError(f"Kafka topic {topic!r} does not exist on {kafka.bootstrap} (or {kafka.user} may not "
                               "describe it); run `loopline bootstrap`")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        as_text = lambda found: {str(tp.partition): offset for tp, offset in found.items()}  # noqa: E731
        return as_text(consumer.beginning_offsets(tps)), as_text(consumer.end_offsets(tps))
    finally:
        consumer.close()


def unread(end: dict[str, int], consumed_until: dict[str, int], beginning: dict[str, int]) -> int:
    """Records not ingested yet: per partition, the log end minus where ingestion stopped
    (or the log start, for a partition never ingested)."""
    return sum(max(0, offset - consumed_until.get(p, beginning.get(p, 0))) for p, offset in end.items())
