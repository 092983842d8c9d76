"""Retention on the real lake, registry and broker: `loopline gc` deletes what is past its
dataset's days, keeps what a registered model's lineage names, and sets the topics' retention."""
from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta

import pandas as pd

from contract_data import payments, write_bronze
from lifecycle_data import booster, gate, labelled, lightgbm_model, write_labelled_days
from loopline.core.pipeline import Pipeline
from loopline.core.run_artifacts import INPUTS_ARTIFACT

AS_OF = date(2026, 3, 31)
OLD = [date(2026, 1, d) for d in (5, 6, 7)]  # past 30 days
RECENT = [date(2026, 3, 20)]
TRAINED_ON = OLD[1]  # a registered model's lineage names it


def write_quarantine(p: Pipeline, day: date) -> None:
    location = p.lake.location("quarantine", day, subdir="valid_events")
    p.spark().createDataFrame(pd.DataFrame({"reason": ["amount:values_to_be_between"]})).write.mode(
        "overwrite").parquet(location.child("run=0").spark_uri)


def loopline_gc(p: Pipeline, *options: str) -> str:
    done = subprocess.run([sys.executable, "-m", "loopline.ops.cli", "gc", "--pipeline", p.spec.name, "--as-of",
                           AS_OF.isoformat(), *options], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_gc_deletes_what_is_past_retention_and_keeps_what_a_model_was_trained_on(make_pipeline):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType
    from mlflow import MlflowClient

    p = Pipeline.load(make_pipeline(retention={
        "datasets": {"valid_events": 30, "bronze_events": 30, "quarantine": 30},
        "topics": {"dead_letters": {"days": 7}, "sources": {"bytes": 50_000_000}}}))
    for day in OLD + RECENT:
        write_labelled_days(p, labelled([day], per_day=300))  # valid events of day, valid labels of day + 1
        write_bronze(p, "bronze_events", day, payments(day, 50))
        write_quarantine(p, day)
    run_id, _ = gate(p, labelled([RECENT[0]]), lightgbm_model(p.spec, booster(p.spec, labelled(OLD))), AS_OF)
    MlflowClient().log_dict(run_id, {"partitions": [{"dataset": "valid_events", "date": TRAINED_ON.isoformat()}]},
                            INPUTS_ARTIFACT)
    kept = [p.lake.location(d, TRAINED_ON) for d in ("valid_events", "bronze_events")]
    kept.append(p.lake.location("quarantine", TRAINED_ON, subdir="valid_events"))
    expired = [p.lake.location(d, day) for day in OLD if day != TRAINED_ON for d in ("valid_events", "bronze_events")]
    expired += [p.lake.location("quarantine", day, subdir="valid_events") for day in OLD if day != TRAINED_ON]
    untouched = [p.lake.location("valid_events", RECENT[0]), p.lake.location("valid_labels", OLD[0] + timedelta(1))]

    dry_run = loopline_gc(p)
    assert "would delete 6 partitions" in dry_run and "dry run: nothing changed" in dry_run
    assert all(location.exists() for location in kept + expired + untouched)

    applied = loopline_gc(p, "--apply")
    assert "deleted 6 partitions" in applied
    assert all(location.spark_uri in applied for location in expired)
    assert not any(location.exists() for location in expired)
    assert all(location.exists() for location in kept + untouched)
    assert all(f"kept (past retention, named by the lineage of model versions [1]): {location.spark_uri}" in applied
               for location in kept)

    admin = KafkaAdminClient(**p.settings.kafka("admin").python())
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic) for topic in
                                            (p.spec.dead_letter_topic(p.spec.entity_source), p.spec.entity_source.topic)])
    finally:
        admin.close()
    configs = next(iter(described.values()))
    print(configs)
    assert configs[p.spec.dead_letter_topic(p.spec.entity_source)]["retention.ms"]["value"] == str(7 * 86_400_000)
    assert configs[p.spec.entity_source.topic]["retention.bytes"]["value"] == "50000000"
