"""Demo tooling of the card_fraud pipeline: a seeded simulator of card payments, their
delayed fraud labels, and optional drift (not product code: it knows this pipeline's fields).

Three kinds of change can be switched on from a day:
  - drift: a new category mix and inflated amounts (the features move);
  - label shift: fraud becomes `fraud_odds` times likelier for every payment (the outcome rate
    moves, the features and so the predictions stay as they were);
  - concept shift: fraud no longer follows the features (the rate stays, a model decays).

Each day's transactions are a pure function of (seed, day, drift settings), so the same
seed always gives the same events, and the labels for day D (which arrive on later days,
like chargebacks) can be regenerated when those later days are simulated.

    python include/pipelines/card_fraud_simulator.py --from 2026-11-20 --to 2026-11-26 [--drift-from ...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np

from loopline.core.kafka_auth import KafkaLogin

CATEGORIES = ["grocery", "restaurants", "fuel", "fashion", "travel", "electronics", "gaming", "digital_goods"]
NORMAL_MIX = [0.30, 0.20, 0.12, 0.12, 0.08, 0.08, 0.05, 0.05]
DRIFTED_MIX = [0.12, 0.10, 0.05, 0.08, 0.05, 0.20, 0.18, 0.22]
CATEGORY_AMOUNT = {"grocery": 3.4, "restaurants": 3.3, "fuel": 3.8, "fashion": 4.1, "travel": 5.3,
                   "electronics": 5.0, "gaming": 3.6, "digital_goods": 3.2}  # log-mean EUR
CATEGORY_RISK = {"electronics": 1.1, "digital_goods": 1.2, "gaming": 0.8, "travel": 0.5}
COUNTRIES = ["DE", "FR", "NL", "ES", "IT", "GB", "US", "BR", "NG"]
COUNTRY_MIX = [0.70, 0.06, 0.05, 0.05, 0.04, 0.04, 0.03, 0.02, 0.01]
CHANNELS = ["pos", "ecom", "mobile_app"]
CHANNEL_MIX = [0.55, 0.30, 0.15]
LABEL_DELAY_DAYS = (1, 2, 3)  # chargebacks and settlements arrive 1-3 days after the payment
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SimulationConfig:
    seed: int = 42
    transactions_per_day: int = 3000
    customers: int = 4000
    drift_from: date | None = None  # from this day on: new category mix and inflated amounts
    amount_inflation: float = 1.8
    malformed_rate: float = 0.0  # share of extra, deliberately broken event messages
    invalid_rate: float = 0.0  # share of extra well-formed events that break row-level contract rules
    world_start: date | None = None  # no payments before this day, so no labels for them
    label_shift_from: date | None = None  # from this day on: fraud is `fraud_odds` times likelier
    fraud_odds: float = 2.5
    concept_shift_from: date | None = None  # from this day on: fraud is unrelated to the features

    def drifted(self, day: date) -> bool:
        return self.drift_from is not None and day >= self.drift_from


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes | None
    topic_kind: str  # "events" or "labels"
    timestamp_ms: int  # Kafka record time = when the producer saw it (event or label arrival)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _rng(config: SimulationConfig, day: date, stream: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, day.toordinal(), stream])


def transactions_for_day(config: SimulationConfig, day: date) -> list[dict]:
    """The day's transactions with their (hidden) fraud outcome and label delay."""
    rng = _rng(config, day, 0)
    n = config.transactions_per_day
    drifted = config.drifted(day)
    categories = rng.choice(CATEGORIES, size=n, p=DRIFTED_MIX if drifted else NORMAL_MIX)
    countries = rng.choice(COUNTRIES, size=n, p=COUNTRY_MIX)
    channels = rng.choice(CHANNELS, size=n, p=CHANNEL_MIX)
    hours = np.clip(rng.normal(14, 5, size=n), 0, 23.999)
    seconds = (hours * 3600).astype(int)
    customers = rng.integers(0, config.customers, size=n)
    new_device = rng.random(n) < 0.07
    tx_count = rng.poisson(18, size=n)
    avg_amount = np.exp(rng.normal(3.7, 0.5, size=n))
    log_mean = np.array([CATEGORY_AMOUNT[c] for c in categories])
    amount = np.exp(rng.normal(log_mean, 0.7)) * (config.amount_inflation if drifted else 1.0)
    risk = (
        -5.2
        + 0.9 * np.log1p(amount / avg_amount)
        + 1.3 * (countries != "DE")
        + 0.8 * (channels == "ecom")
        + 1.2 * new_device
        + 0.9 * ((hours < 5) | (hours > 22))
        - 0.03 * tx_count
        + np.array([CATEGORY_RISK.get(c, 0.0) for c in categories])
    )
    if config.label_shift_from is not None and day >= config.label_shift_from:
        risk = risk + np.log(config.fraud_odds)
    if config.concept_shift_from is not None and day >= config.concept_shift_from:
        risk = _rng(config, day, 9).permutation(risk)  # the same rates, dealt out at random
    is_fraud = rng.random(n) < 1 / (1 + np.exp(-risk))
    delays = rng.choice(LABEL_DELAY_DAYS, size=n)
    midnight = datetime.combine(day, time(0), tzinfo=timezone.utc)
    rows = []
    for i in range(n):
        rows.append({
            "transaction_id": f"tx-{day:%Y%m%d}-{i:06d}",
            "customer_id": f"c{customers[i]:05d}",
            "event_time": (midnight + timedelta(seconds=int(seconds[i]))).isoformat(),
            "amount": round(float(amount[i]), 2),
            "merchant_category": str(categories[i]),
            "country": str(countries[i]),
            "channel": str(channels[i]),
            "is_new_device": bool(new_device[i]),
            "customer_tx_count_30d": int(tx_count[i]),
            "customer_avg_amount_30d": round(float(avg_amount[i]), 2),
            "schema_version": SCHEMA_VERSION,
            "_is_fraud": int(is_fraud[i]),
            "_label_delay": int(delays[i]),
        })
    return rows


def _event_message(tx: dict) -> Message:
    public = {k: v for k, v in tx.items() if not k.startswith("_")}
    return Message(tx["transaction_id"].encode(), json.dumps(public).encode(), "events",
                   _millis(datetime.fromisoformat(tx["event_time"])))


def _label_message(tx: dict, arrival: date, rng: np.random.Generator) -> Message:
    label_time = datetime.combine(arrival, time(0), tzinfo=timezone.utc) + timedelta(seconds=int(rng.integers(0, 86400)))
    label = {
        "transaction_id": tx["transaction_id"],
        "is_fraud": tx["_is_fraud"],
        "label_time": label_time.isoformat(),
        "label_source": "chargeback" if tx["_is_fraud"] else "settlement",
        "schema_version": SCHEMA_VERSION,
    }
    return Message(tx["transaction_id"].encode(), json.dumps(label).encode(), "labels", _millis(label_time))


def _malformed_messages(config: SimulationConfig, day: date) -> list[Message]:
    """Broken events of the kinds producers really send: each must end up in quarantine."""
    rng = _rng(config, day, 2)
    count = int(round(config.transactions_per_day * config.malformed_rate))
    good = {"transaction_id": f"tx-{day:%Y%m%d}-bad", "customer_id": "c00001",
            "event_time": f"{day.isoformat()}T12:00:00+00:00", "amount": 10.0, "merchant_category": "grocery",
            "country": "DE", "channel": "pos", "is_new_device": False, "customer_tx_count_30d": 3,
            "customer_avg_amount_30d": 20.0, "schema_version": SCHEMA_VERSION}
    kinds = [
        lambda i: b"{not json at all",
        lambda i: json.dumps({**good, "transaction_id": f"{good['transaction_id']}-{i}", "amount": "twelve"}).encode(),
        lambda i: json.dumps({k: v for k, v in good.items() if k != "event_time"} | {"transaction_id": f"x{i}"}).encode(),
        lambda i: json.dumps({**good, "transaction_id": f"{good['transaction_id']}-{i}", "schema_version": 99}).encode(),
    ]
    noon = _millis(datetime.combine(day, time(12), tzinfo=timezone.utc))
    return [Message(f"bad-{day}-{i}".encode(), kinds[int(rng.integers(0, len(kinds)))](i), "events", noon + i)
            for i in range(count)]


def _invalid_messages(config: SimulationConfig, day: date) -> list[Message]:
    """Well-formed events with values the data contract refuses row by row (they pass ingest,
    then go to the contract's quarantine): negative amount, unknown category, lowercase
    country, unknown channel."""
    rng = _rng(config, day, 3)
    count = int(round(config.transactions_per_day * config.invalid_rate))
    breaks = [{"amount": -12.5}, {"merchant_category": "crypto"}, {"country": "de"}, {"channel": "fax"}]
    noon = datetime.combine(day, time(12), tzinfo=timezone.utc)
    messages = []
    for i in range(count):
        event = {"transaction_id": f"tx-{day:%Y%m%d}-invalid-{i}", "customer_id": "c00002",
                 "event_time": (noon + timedelta(seconds=i)).isoformat(), "amount": 25.0, "merchant_category": "fuel",
                 "country": "DE", "channel": "pos", "is_new_device": False, "customer_tx_count_30d": 5,
                 "customer_avg_amount_30d": 30.0, "schema_version": SCHEMA_VERSION,
                 **breaks[int(rng.integers(0, len(breaks)))]}
        messages.append(Message(event["transaction_id"].encode(), json.dumps(event).encode(), "events",
                                _millis(noon) + i))
    return messages


def messages_for_day(config: SimulationConfig, day: date) -> list[Message]:
    """Everything producers send during `day`, in time order: its payments, broken events,
    contract-breaking events, and the labels that arrive that day for earlier payments."""
    messages = [_event_message(tx) for tx in transactions_for_day(config, day)]
    messages += _malformed_messages(config, day) + _invalid_messages(config, day)
    label_rng = _rng(config, day, 1)
    for delay in LABEL_DELAY_DAYS:
        paid_on = day - timedelta(days=delay)
        if config.world_start is not None and paid_on < config.world_start:
            continue
        messages += [_label_message(tx, day, label_rng)
                     for tx in transactions_for_day(config, paid_on) if tx["_label_delay"] == delay]
    return sorted(messages, key=lambda m: (m.timestamp_ms, m.key or b""))


def topics_of(spec) -> dict[str, str]:
    """Topic per message kind for a card_fraud-shaped spec: entities carry events, labels the outcomes."""
    return {"events": spec.entity_source.topic, "labels": spec.label_source.topic}


def produce(config: SimulationConfig, days: list[date], kafka: KafkaLogin, topics: dict[str, str]) -> dict[str, int]:
    """Send the days' messages to Kafka (acks=all); a day already in the events topic is skipped,
    so simulating the same days twice sends nothing twice. Returns counts per topic kind."""
    from kafka import KafkaProducer

    from loopline.sources.kafka_offsets import kafka_day_window

    producer = KafkaProducer(**kafka.python(), acks="all", linger_ms=20, retries=5)
    sent = {"events": 0, "labels": 0, "days_skipped": 0}
    try:
        for day in days:
            if any(end > start for start, end in kafka_day_window(kafka, topics["events"], day).values()):
                sent["days_skipped"] += 1
                continue
            for message in messages_for_day(config, day):
                producer.send(topics[message.topic_kind], key=message.key, value=message.value,
                              timestamp_ms=message.timestamp_ms)
                sent[message.topic_kind] += 1
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    return sent


DEMO_DRIFT_DAYS = 2


def demo_days() -> int:
    """How many days the demo sends: 7, or LOOPLINE_DEMO_DAYS (`make compose-e2e` sends 5)."""
    return int(os.environ.get("LOOPLINE_DEMO_DAYS") or 7)


def send_demo_data() -> tuple[date, date]:
    """What `make demo` sends: the last demo_days() days (ending yesterday, UTC), drift on the
    last 2; returns the dates to backfill."""
    last = datetime.now(timezone.utc).date() - timedelta(days=1)
    first = last - timedelta(days=demo_days() - 1)
    drift_from = last - timedelta(days=DEMO_DRIFT_DAYS - 1)
    print(f"== simulate {first}..{last} (drift from {drift_from})")
    main(["--from", first.isoformat(), "--to", last.isoformat(), "--drift-from", drift_from.isoformat()])
    return first, last


def main(argv: list[str] | None = None) -> int:
    from loopline.core.config import Settings
    from loopline.core.spec import load_spec

    parser = argparse.ArgumentParser(description="send seeded card-payment events and delayed labels to Kafka")
    parser.add_argument("--pipeline", default="card_fraud", help="a card_fraud-shaped pipeline (default card_fraud)")
    parser.add_argument("--from", dest="from_date", type=date.fromisoformat, required=True, help="first day")
    parser.add_argument("--to", dest="to_date", type=date.fromisoformat, help="last day (default: --from)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--per-day", type=int, default=3000, help="transactions per day")
    parser.add_argument("--drift-from", type=date.fromisoformat, help="inject drift from this day on")
    parser.add_argument("--malformed-rate", type=float, default=0.002, help="share of broken event messages")
    parser.add_argument("--invalid-rate", type=float, default=0.002,
                        help="share of well-formed events breaking row-level contract rules")
    parser.add_argument("--label-shift-from", type=date.fromisoformat,
                        help="from this day on, fraud is --fraud-odds times likelier (features unchanged)")
    parser.add_argument("--fraud-odds", type=float, default=2.5)
    parser.add_argument("--concept-shift-from", type=date.fromisoformat,
                        help="from this day on, fraud no longer follows the features")
    parser.add_argument("--world-start", type=date.fromisoformat, help="first day with payments (default: --from); "
                        "labels are only sent for payments on or after it")
    args = parser.parse_args(argv)
    end = args.to_date or args.from_date
    days = [args.from_date + timedelta(days=i) for i in range((end - args.from_date).days + 1)]
    config = SimulationConfig(seed=args.seed, transactions_per_day=args.per_day, drift_from=args.drift_from,
                              malformed_rate=args.malformed_rate, invalid_rate=args.invalid_rate,
                              world_start=args.world_start or args.from_date, label_shift_from=args.label_shift_from,
                              fraud_odds=args.fraud_odds, concept_shift_from=args.concept_shift_from)
    topics = topics_of(load_spec(args.pipeline))
    sent = produce(config, days, Settings.from_env().kafka("producer"), topics)
    print(f"simulated {days[0]}..{days[-1]}: {sent['events']} events -> {topics['events']}, "
          f"{sent['labels']} labels -> {topics['labels']}"
          + (f" ({sent['days_skipped']} days already in Kafka, skipped)" if sent["days_skipped"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
