"""What actually landed, read straight from the lake and Kafka (shared by the integration tests)."""
from __future__ import annotations

import pyarrow.dataset as ds

from loopline.core.kafka_auth import KafkaLogin
from loopline.core.pipeline import Pipeline
from loopline.core.spec import Source
from loopline.sources.kafka_offsets import log_range


def landed_offsets(p: Pipeline, source: Source) -> list[tuple[int, int]]:
    """(partition, offset) of every record in bronze and quarantine, duplicates kept."""
    found = []
    for location in (p.lake.location(source.dataset), p.lake.location("quarantine", subdir=source.dataset)):
        if not location.exists():
            continue
        dataset = ds.dataset(location.arrow_path, filesystem=location.filesystem(), format="parquet",
                             partitioning="hive")
        if dataset.schema.names:  # an empty batch leaves a directory without data files
            table = dataset.to_table(columns=["source_partition", "source_offset"])
            found += zip(table.column("source_partition").to_pylist(), table.column("source_offset").to_pylist())
    return found


def produced_offsets(p: Pipeline, source: Source) -> set[tuple[int, int]]:
    begin, end = log_range(p.settings.kafka("ingest"), source.topic)
    return {(int(part), offset) for part, stop in end.items() for offset in range(begin[part], stop)}


def assert_exactly_once(p: Pipeline, source: Source) -> int:
    """Every produced offset is in bronze ∪ quarantine exactly once; returns how many."""
    landed, produced = landed_offsets(p, source), produced_offsets(p, source)
    assert len(landed) == len(set(landed)), f"{len(landed) - len(set(landed))} records landed twice"
    assert set(landed) == produced, (f"missing {len(produced - set(landed))}, "
                                     f"unexpected {len(set(landed) - produced)}")
    return len(landed)


def topic_messages(kafka: KafkaLogin, topic: str, isolation_level: str = "read_uncommitted"
                   ) -> list[tuple[bytes, bytes]]:
    """Every (key, value) in the topic, read from the beginning to the current end (with
    read_committed: what committed transactions and plain producers wrote)."""
    return [(r.key, r.value) for r in topic_records(kafka, topic, isolation_level)]


def topic_records(kafka: KafkaLogin, topic: str, isolation_level: str = "read_uncommitted") -> list:
    """Every record (kafka-python's ConsumerRecord: key, value, headers, ...) in the topic."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka.python(), enable_auto_commit=False, isolation_level=isolation_level)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for polled in consumer.poll(timeout_ms=2000).values():
                records += polled
        return records
    finally:
        consumer.close()
