"""Hand-made card_fraud event records, and the plain Kafka producer the ingest tests send them with."""
from __future__ import annotations

import json
from datetime import date

import pyarrow.dataset as ds

from loopline.core.kafka_auth import KafkaLogin

DAY = date(2026, 5, 4)
GOOD = {"transaction_id": "tx-corpus-0", "customer_id": "c00001", "event_time": "2026-05-04T12:00:00+00:00",
        "amount": 10.0, "merchant_category": "grocery", "country": "DE", "channel": "pos", "is_new_device": False,
        "customer_tx_count_30d": 3, "customer_avg_amount_30d": 20.0, "schema_version": 1}
Message = tuple[bytes | None, bytes | None]


def event(i: int, **changes) -> Message:
    """A valid event of DAY (key, JSON value) with `changes`; `...` as a value drops the field."""
    record = {**GOOD, "transaction_id": f"tx-corpus-{i}", **changes}
    return record["transaction_id"].encode(), json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


def send(kafka: KafkaLogin, topic: str, messages: list[Message], timestamp_ms: int | None = None) -> list[int]:
    """Produce in order; return each message's offset (all to partition 0)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka.python(), acks="all")
    try:
        futures = [producer.send(topic, key=k, value=v, partition=0, timestamp_ms=timestamp_ms) for k, v in messages]
        producer.flush()
        return [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close()


def read_dataset(location, columns=None):
    return ds.dataset(location.arrow_path, filesystem=location.filesystem(), format="parquet",
                      partitioning="hive").to_table(columns=columns)
