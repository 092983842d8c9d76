"""A test-only pipeline shaped like card_fraud in which every source, schema, field, dataset,
topic and suite has another name, and whose features are declared (built-in transforms and
learned vocabularies) instead of coded. If product code still named one of card_fraud's
strings, this pipeline would break; the nightly-loop tests run it like card_fraud.

Its data is card_fraud's simulator output with the fields renamed.
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from card_fraud_simulator import Message, SimulationConfig, messages_for_day
from loopline.core.kafka_auth import KafkaLogin

FIELDS = {  # card_fraud field -> this pipeline's name
    "transaction_id": "payment_ref", "customer_id": "payer", "event_time": "paid_at", "amount": "value_eur",
    "merchant_category": "shop_type", "country": "issuer_country", "channel": "medium",
    "is_new_device": "fresh_device", "customer_tx_count_30d": "recent_payments",
    "customer_avg_amount_30d": "recent_avg_value", "is_fraud": "disputed", "label_time": "resolved_at",
    "label_source": "resolution", "schema_version": "shape",
}
SOURCES = {"events": "payments", "labels": "outcomes"}
SUITES = {"card_payments_bronze": "renamed_payments_contract", "card_labels_bronze": "renamed_outcomes_contract"}


def spec(name: str) -> dict:
    """The renamed spec document."""
    payments, outcomes = (f"bronze_{s}" for s in SOURCES.values())
    return {
        "name": name, "description": "card_fraud with every name changed (tests only)", "schedule": "daily",
        "sources": {
            "payments": {"topic": f"{name}.pay", "schema": "pay_v1", "time_field": "paid_at"},
            "outcomes": {"topic": f"{name}.out", "schema": "out_v1", "time_field": "resolved_at"},
        },
        "sinks": {"predictions_topic": f"{name}.scores", "dead_letter_suffix": ".dead"},
        "schemas": {
            "pay_v1": {"key": "payment_ref", "fields": {
                "payment_ref": "string", "payer": "string", "paid_at": "timestamp", "value_eur": "double",
                "shop_type": "string", "issuer_country": "string", "medium": "string", "fresh_device": "boolean",
                "recent_payments": "int", "recent_avg_value": "double", "shape": "int"},
                "version": {"field": "shape", "value": 1}},
            "out_v1": {"key": "payment_ref", "fields": {
                "payment_ref": "string", "disputed": "int", "resolved_at": "timestamp", "resolution": "string",
                "shape": "int"}, "version": {"field": "shape", "value": 1}},
        },
        "task": {"type": "binary", "entities": "payments", "labels": "outcomes", "target": "disputed"},
        "storage": {payments: {"tier": "onprem", "onprem_only": True}, outcomes: {"tier": "onprem"},
                    "accepted_payments": {"tier": "onprem", "onprem_only": True}, "accepted_outcomes": {"tier": "onprem"},
                    "quarantine": {"tier": "onprem", "onprem_only": True}, "checkpoints": {"tier": "onprem"},
                    "reference": {"tier": "cloud"}, "predictions": {"tier": "cloud"},
                    "contract_reports": {"tier": "cloud"}},
        "contracts": {
            payments: {"suite": SUITES["card_payments_bronze"], "valid_dataset": "accepted_payments",
                       "freshness_hours": 2},
            outcomes: {"suite": SUITES["card_labels_bronze"], "valid_dataset": "accepted_outcomes"},
        },
        "alerts": [{"channel": "log"}, {"channel": "webhook", "url_env": "LOOPLINE_ALERT_WEBHOOK_URL"}],
        "features": {
            "numeric": ["value_eur", "paid_hour", "recent_payments", "recent_avg_value", "value_ratio"],
            "boolean": ["fresh_device", "domestic"],
            "categorical": {"shop_type": "learn", "issuer_country": "learn", "medium": ["pos", "ecom", "mobile_app"]},
            "derived": {"paid_hour": {"hour_of_day": "paid_at"}, "value_ratio": {"ratio": ["value_eur", "recent_avg_value"]},
                        "domestic": {"equals": ["issuer_country", "DE"]}},
        },
        "training": {"model": "lightgbm", "seed": 3, "min_labelled_rows": 1000,
                     "split": {"validation_days": 1, "holdout_days": 1}, "retrain_window_days": 6,
                     "params": {"lightgbm": {"learning_rate": 0.08, "num_leaves": 15, "min_data_in_leaf": 40,
                                             "num_boost_round": 120, "early_stopping_rounds": 20, "verbose": -1}}},
        "gate": {"primary_metric": "pr_auc", "min_improvement": 0.002,
                 "critical_slices": {"shop_type": 0.1, "issuer_country": 0.1}, "slice_min_rows": 500},
        "monitoring": {"drift_features": ["value_eur", "shop_type", "medium", "paid_hour"], "psi_threshold": 0.2,
                       "feedback": {"min_labelled_rows": 1000, "tolerance": 0.03}},
    }


def _renamed(value):
    if isinstance(value, str):
        column, _, rest = value.partition(":")
        return FIELDS.get(column, column) + (f":{rest}" if rest else "")
    if isinstance(value, list):
        return [_renamed(v) for v in value]
    return value


def write_suites(expectations: Path, source: Path) -> None:
    """card_fraud's suites with every column (and rule name) renamed, under this pipeline's suite names."""
    for original, renamed in SUITES.items():
        suite = json.loads((source / f"{original}.json").read_text())
        suite["name"] = renamed
        for rule in suite["expectations"]:
            for key in ("column", "column_set"):
                if key in rule["kwargs"]:
                    rule["kwargs"][key] = _renamed(rule["kwargs"][key])
            if "name" in rule["meta"]:
                rule["meta"]["name"] = _renamed(rule["meta"]["name"])
        (expectations / f"{renamed}.json").write_text(json.dumps(suite))


def renamed_message(message: Message, fields: dict[str, str]) -> Message:
    """A simulator message with the payload's fields renamed (broken payloads stay broken)."""
    try:
        payload = json.loads(message.value)
    except (TypeError, ValueError):
        return message
    if not isinstance(payload, dict):
        return message
    value = json.dumps({fields.get(k, k): v for k, v in payload.items()}).encode()
    return Message(message.key, value, message.topic_kind, message.timestamp_ms)


def produce(config: SimulationConfig, days: list[date], kafka: KafkaLogin, topics: dict[str, str],
            fields: dict[str, str]) -> None:
    """The simulator's days, with `fields` renamed, to the pipeline's topics (by message kind)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka.python(), acks="all", linger_ms=20, retries=5)
    try:
        for day in days:
            for message in (renamed_message(m, fields) for m in messages_for_day(config, day)):
                producer.send(topics[message.topic_kind], key=message.key, value=message.value,
                              timestamp_ms=message.timestamp_ms)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
