"""Schema evolution on the real broker, Spark, PostgreSQL and lake: a producer's new field is
reported or quarantined as the spec declares, never dropped silently."""
from __future__ import annotations

import uuid

from kafka_records import DAY, event, read_dataset, send
from loopline.core import db
from loopline.core.pipeline import Pipeline
from loopline.core.spec import derived_spec
from loopline.ingest.streaming import ingest_source

NEW_FIELDS = [event(1, loyalty_tier="gold"), event(2, loyalty_tier="silver"),
              event(3, loyalty_tier="gold", device={"os": "ios", "version": 17}),
              (event(4)[0], event(4)[1][:-1] + b', "loyalty_tier" : "gold"}')]  # a blank before the colon
AS_DECLARED = [event(10), event(11)]


def pipeline_with(make_pipeline, unknown_fields: str) -> Pipeline:
    raw = derived_spec("card_fraud", f"it_{uuid.uuid4().hex[:8]}")
    raw["schemas"][raw["sources"]["events"]["schema"]]["unknown_fields"] = unknown_fields
    return Pipeline.load(make_pipeline.from_document(raw))


def test_a_new_field_is_reported_per_field_and_its_records_land(make_pipeline):
    p = pipeline_with(make_pipeline, "report")
    events = p.spec.sources["events"]
    send(p.settings.kafka("producer"), events.topic, AS_DECLARED + NEW_FIELDS)

    run = ingest_source(p.spark(), p, events, "report-run", DAY)

    assert (run.consumed, run.accepted, run.quarantined) == (6, 6, 0)
    assert run.unknown_fields == {"device": 1, "loyalty_tier": 4}
    assert "Declare the fields in the spec's schema" in run.unknown_fields_warning()
    bronze = read_dataset(p.lake.location(events.dataset, DAY))
    assert "loyalty_tier" not in bronze.column_names and bronze.num_rows == 6
    with db.connect(p.settings.db_url) as conn:
        [recorded] = db.fetch_all(conn, "SELECT unknown_fields FROM loopline.ingest_runs WHERE pipeline = %s "
                                        "AND run_id = 'report-run'", (p.spec.name,))
    assert recorded["unknown_fields"] == {"device": 1, "loyalty_tier": 4}


def test_a_new_field_is_quarantined_with_its_name_when_the_schema_says_so(make_pipeline):
    p = pipeline_with(make_pipeline, "quarantine")
    events = p.spec.sources["events"]
    offsets = send(p.settings.kafka("producer"), events.topic, AS_DECLARED + NEW_FIELDS)

    run = ingest_source(p.spark(), p, events, "quarantine-run", DAY)

    assert (run.consumed, run.accepted, run.quarantined, run.unknown_fields) == (6, 2, 4, {})
    quarantine = read_dataset(p.lake.location("quarantine", subdir=events.dataset)).to_pylist()
    assert {q["source_offset"]: q["reject_reason"] for q in quarantine} == {
        offsets[2]: "unknown_field:loyalty_tier", offsets[3]: "unknown_field:loyalty_tier",
        offsets[4]: "unknown_field:loyalty_tier,device", offsets[5]: "unknown_field:loyalty_tier"}
    assert {q["raw_value"] for q in quarantine} == {value for _, value in NEW_FIELDS}  # kept byte for byte


def test_a_changed_type_is_quarantined_with_its_reason(make_pipeline):
    p = pipeline_with(make_pipeline, "report")
    events = p.spec.sources["events"]
    changed = [{"amount": "12.50"}, {"is_new_device": "yes"}, {"customer_tx_count_30d": 2.5}]
    offsets = send(p.settings.kafka("producer"), events.topic, [event(20 + i, **c) for i, c in enumerate(changed)])

    run = ingest_source(p.spark(), p, events, "type-run", DAY)

    quarantine = read_dataset(p.lake.location("quarantine", subdir=events.dataset)).to_pylist()
    assert run.quarantined == 3 and {q["source_offset"]: q["reject_reason"] for q in quarantine} == {
        offset: f"wrong_type:{next(iter(c))}" for offset, c in zip(offsets, changed)}


def test_two_schema_versions_of_one_source_land_side_by_side(make_pipeline):
    """v2 adds a required `wallet` and drops `is_new_device`; producers of both run at once."""
    raw = derived_spec("card_fraud", f"it_{uuid.uuid4().hex[:8]}")
    v1 = raw["schemas"]["transaction_v1"]
    fields = {**{f: t for f, t in v1["fields"].items() if f != "is_new_device"}, "wallet": "string"}
    raw["schemas"]["transaction_v2"] = {**v1, "fields": fields, "version": {"field": "schema_version", "value": 2}}
    raw["sources"]["events"].update(schema="transaction_v2", older_schemas=["transaction_v1"])
    p = Pipeline.load(make_pipeline.from_document(raw))
    events = p.spec.sources["events"]
    v2 = {"schema_version": 2, "is_new_device": ...}
    good = [event(30), event(31, **v2, wallet="apple_pay")]
    bad = {"missing_field:wallet": event(32, **v2), "missing_field:is_new_device": event(33, is_new_device=...),
           "wrong_type:wallet": event(34, **v2, wallet=True), "unknown_schema_version": event(35, schema_version=3),
           "missing_field:schema_version": event(36, schema_version=...)}
    offsets = send(p.settings.kafka("producer"), events.topic, good + list(bad.values()))

    run = ingest_source(p.spark(), p, events, "versions-run", DAY)

    assert (run.accepted, run.quarantined) == (2, len(bad))
    bronze = {row["transaction_id"]: row for row in read_dataset(p.lake.location(events.dataset, DAY)).to_pylist()}
    assert (bronze["tx-corpus-30"]["wallet"], bronze["tx-corpus-30"]["is_new_device"]) == (None, False)
    assert (bronze["tx-corpus-31"]["wallet"], bronze["tx-corpus-31"]["is_new_device"]) == ("apple_pay", None)
    quarantine = read_dataset(p.lake.location("quarantine", subdir=events.dataset)).to_pylist()
    assert {q["source_offset"]: q["reject_reason"] for q in quarantine} == dict(zip(offsets[len(good):], bad))
