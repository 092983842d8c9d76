from datetime import date

from card_fraud_simulator import SimulationConfig, messages_for_day, transactions_for_day

DAY = date(2026, 11, 3)


def test_same_seed_same_messages_other_seed_other_messages():
    config = SimulationConfig(seed=1, transactions_per_day=200)
    assert messages_for_day(config, DAY) == messages_for_day(config, DAY)
    assert messages_for_day(config, DAY) != messages_for_day(SimulationConfig(seed=2, transactions_per_day=200), DAY)


def test_messages_are_in_time_order_and_labels_arrive_after_payment():
    messages = messages_for_day(SimulationConfig(transactions_per_day=300), DAY)
    stamps = [m.timestamp_ms for m in messages]
    assert stamps == sorted(stamps)
    assert {m.topic_kind for m in messages} == {"events", "labels"}


def test_no_labels_for_payments_before_world_start():
    config = SimulationConfig(transactions_per_day=300, world_start=DAY)
    assert {m.topic_kind for m in messages_for_day(config, DAY)} == {"events"}


def test_drift_changes_category_mix_and_inflates_amounts():
    calm = transactions_for_day(SimulationConfig(transactions_per_day=2000), DAY)
    drifted = transactions_for_day(SimulationConfig(transactions_per_day=2000, drift_from=DAY), DAY)
    share = lambda rows, c: sum(r["merchant_category"] == c for r in rows) / len(rows)  # noqa: E731
    mean = lambda rows: sum(r["amount"] for r in rows) / len(rows)  # noqa: E731
    assert share(drifted, "digital_goods") > 2 * share(calm, "digital_goods")
    assert mean(drifted) > 1.5 * mean(calm)


def test_malformed_rate_adds_that_many_broken_events():
    config = SimulationConfig(transactions_per_day=1000, malformed_rate=0.01, world_start=DAY)
    events = [m for m in messages_for_day(config, DAY) if m.topic_kind == "events"]
    assert len(events) == 1010
