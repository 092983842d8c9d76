"""Late events through the real nightly DAG (Airflow, Kafka, Spark, PostgreSQL, MLflow): events
that arrive after their date was validated are validated and scored once, by a rerun of their
date that the run landing them triggers (spec `ingest.late_events: rerun`)."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

from card_fraud_simulator import Message, SimulationConfig, messages_for_day
from lake_audit import topic_messages
from lifecycle_data import booster, builder, gate, labelled, lightgbm_model
from loopline.core import db
from loopline.core.drift import profile
from loopline.core.pipeline import Pipeline
from loopline.core.run_artifacts import PROFILE_ARTIFACT

DAY, NEXT = date(2026, 7, 1), date(2026, 7, 2)
SIM = SimulationConfig(seed=23, transactions_per_day=800, world_start=DAY)
HELD_BACK = 25


def produce(p: Pipeline, messages: list[Message]) -> None:
    from kafka import KafkaProducer

    topics = {"events": p.spec.entity_source.topic, "labels": p.spec.label_source.topic}
    producer = KafkaProducer(**p.settings.kafka("producer").python(), acks="all", linger_ms=20)
    try:
        for m in messages:
            producer.send(topics[m.topic_kind], key=m.key, value=m.value, timestamp_ms=m.timestamp_ms)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)


def payment_id(m: Message) -> str | None:
    """The transaction id of a well-formed payment the contract accepts, else None."""
    if m.topic_kind != "events" or not m.key or b"invalid" in m.key:
        return None
    try:
        return json.loads(m.value)["transaction_id"]
    except (ValueError, KeyError, TypeError):
        return None


def predicted(p: Pipeline, ids: list[str]) -> list[dict]:
    with db.connect(p.settings.db_url) as conn:
        return db.fetch_all(conn, "SELECT entity_key, score_date, model_version FROM loopline.predictions "
                                  "WHERE pipeline = %s AND entity_key = ANY(%s)", (p.spec.name, ids))


def run_day(dag, day: date):
    return dag.test(logical_date=datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc))


def states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def triggered_run(dag_id: str, run_id: str):
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one_or_none()
        return None if run is None else dict(run.conf)


def test_late_events_are_validated_and_scored_once_by_a_rerun_of_their_date(make_pipeline, dag_for):
    from mlflow import MlflowClient

    p = Pipeline.load(make_pipeline())
    history = labelled([date(2026, 6, d) for d in range(20, 27)])
    run_id, champion = gate(p, labelled([date(2026, 6, 28)]), lightgbm_model(p.spec, booster(p.spec, history)),
                            date(2026, 6, 30))
    reference = profile(builder(p.spec).build(history), p.spec.monitoring.drift_features)  # as training logs it
    MlflowClient().log_dict(run_id, reference, PROFILE_ARTIFACT)
    today = messages_for_day(SIM, DAY)
    late = [m for m in today if payment_id(m)][-HELD_BACK:]
    late_ids = [payment_id(m) for m in late]
    produce(p, [m for m in today if m not in late])
    dag = dag_for(p.spec.name)

    first = run_day(dag, DAY)
    assert first.state == "success" and states(first)["score"] == "success", states(first)
    assert states(first)["late_reruns"] == "skipped" and not predicted(p, late_ids)

    produce(p, late + messages_for_day(SIM, NEXT))  # the held-back payments of DAY come with the next day
    second = run_day(dag, NEXT)
    assert second.state == "success", states(second)
    assert states(second)["rerun_late_intervals"] == "success" and not predicted(p, late_ids)  # landed, not yet used
    conf = triggered_run(dag.dag_id, f"late__{DAY}__{second.run_id}")
    assert conf == {"first_date": DAY.isoformat(), "last_date": DAY.isoformat(), "retrain": False}

    rerun = dag.test(run_conf=conf)  # what the scheduler runs once the second run has finished
    assert rerun.state == "success" and states(rerun)["train"] == "skipped", states(rerun)
    scored = predicted(p, late_ids)
    assert sorted(row["entity_key"] for row in scored) == sorted(late_ids)
    assert {(row["score_date"], row["model_version"]) for row in scored} == {(DAY, champion.model_version)}
    published = [key.decode().split(":", 1)[1] for key, _ in topic_messages(p.settings.kafka("reader"),
                                                                             p.spec.predictions_topic)]
    assert all(published.count(transaction) == 1 for transaction in late_ids)
    assert states(rerun)["late_reruns"] == "skipped"  # it landed nothing late itself: no further reruns
