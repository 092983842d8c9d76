"""The ingest sensor's trigger against the real broker and PostgreSQL: it waits for records
that have not been ingested yet, fires when they arrive, and gives up after its timeout."""
from __future__ import annotations

import asyncio
import threading
import time
from datetime import date

from loopline.core.kafka_auth import KafkaLogin
from loopline.core.pipeline import Pipeline
from loopline.ingest.streaming import ingest_source
from loopline_airflow.triggers import NewDataTrigger, check_new_data

DAY = date(2026, 8, 1)
RECORD = (b"tx-1", b'{"transaction_id": "tx-1", "customer_id": "c1", "event_time": "2026-08-01T09:00:00+00:00", '
                   b'"amount": 1.0, "merchant_category": "fuel", "country": "DE", "channel": "pos", '
                   b'"is_new_device": false, "customer_tx_count_30d": 1, "customer_avg_amount_30d": 1.0, '
                   b'"schema_version": 1}')


def _first_event(trigger: NewDataTrigger) -> dict:
    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first())


def _send_later(kafka: KafkaLogin, topic: str, delay_s: float, sent_at: list[float]) -> threading.Thread:
    def send():
        from kafka import KafkaProducer

        time.sleep(delay_s)
        producer = KafkaProducer(**kafka.python(), acks="all")
        producer.send(topic, key=RECORD[0], value=RECORD[1]).get(timeout=30)
        sent_at.append(time.monotonic())
        producer.close()

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_trigger_waits_for_unread_records_then_fires_and_ingested_dates_pass_at_once(make_pipeline):
    p = Pipeline.load(make_pipeline())
    events = p.spec.sources["events"]
    assert check_new_data(p.spec.name, DAY.isoformat(), DAY.isoformat())["ready"] is False

    timed_out = _first_event(NewDataTrigger(p.spec.name, DAY.isoformat(), DAY.isoformat(), poll_interval_s=0.5, timeout_s=2))
    assert timed_out["ready"] is False and "need 1" in timed_out["description"]

    sent_at: list[float] = []
    sender = _send_later(p.settings.kafka("producer"), events.topic, delay_s=3, sent_at=sent_at)
    fired = _first_event(NewDataTrigger(p.spec.name, DAY.isoformat(), DAY.isoformat(), poll_interval_s=0.5, timeout_s=120))
    fired_at = time.monotonic()
    sender.join()
    assert fired["ready"] is True and fired["unread"]["events"] == 1
    assert sent_at and fired_at >= sent_at[0]  # it fired because of the record, not before it

    ingest_source(p.spark(), p, events, "trigger-test", DAY)
    after = check_new_data(p.spec.name, DAY.isoformat(), DAY.isoformat())
    assert after["unread"]["events"] == 0 and after["rows_already_ingested"] == 1 and after["ready"] is True
    assert check_new_data(p.spec.name, "2026-08-02", "2026-08-02")["ready"] is False  # nothing new, nothing for that date
