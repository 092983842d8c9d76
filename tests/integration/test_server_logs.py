"""The Spark Connect server's log keeps Spark's own INFO lines and drops the Kafka client's.

Spark's Kafka reader asks the broker for a partition's offset range on every poll, and the
client logs three INFO lines each time: they were over 90% of the server's log, which grew
by hundreds of megabytes a day (infra/spark/log4j2.properties).
"""
from __future__ import annotations

from kafka_records import DAY, event, send
from loopline.core.pipeline import Pipeline
from loopline.ingest.streaming import ingest_source
from stack_access import stack


def test_an_ingest_logs_spark_s_work_but_not_the_kafka_client_s_polls(make_pipeline):
    p = Pipeline.load(make_pipeline())
    events = p.spec.sources["events"]
    log = stack.LOGS / "spark-connect.log"
    seen = log.stat().st_size
    send(p.settings.kafka("producer"), events.topic, [event(i) for i in range(1, 200)])

    run = ingest_source(p.spark(), p, events, "logged-run", DAY)

    with log.open("rb") as file:
        file.seek(seen)
        written = file.read().decode(errors="replace")
    assert run.accepted == 199
    assert "INFO DAGScheduler" in written, "the server's log no longer shows Spark's jobs"
    chatter = [line for line in written.splitlines() if " INFO " in line and "Consumer clientId=" in line]
    assert not chatter, f"{len(chatter)} Kafka client INFO lines, e.g. {chatter[0][:200]}"
