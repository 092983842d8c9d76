"""The predictions topic's message values: JSON built column-wise by Arrow must parse to the
row, whatever its text holds."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pyarrow as pa

from loopline.scoring.publish import MESSAGE_FIELDS, message_values

KEYS = ["plain", 'a "quoted" key', "back\\slash", "ünïcödé", "line\nbreak\ttab"]


def batch(keys: list[str | None]) -> pa.RecordBatch:
    rows = len(keys)
    return pa.record_batch({
        "prediction_id": [None if key is None else f"p:{key}" for key in keys],
        "pipeline": ["p"] * rows,
        "score_date": pa.array([date(2026, 1, 15)] * rows),
        "entity_key": keys,
        "event_time": pa.array([datetime(2026, 1, 15, 9, 30, 0, 123456)] * rows, pa.timestamp("ns")),  # Spark's INT96
        "task": ["binary"] * rows,
        "prediction": [0.1, 1e-7, 1 / 3, 0.0, 1.0][:rows],
        "model_version": pa.array([3] * rows, pa.int32()),
    })


def test_each_value_parses_to_its_row_with_dates_and_instants_as_rfc_3339_text():
    rows = batch(KEYS)
    sent = [json.loads(value) for value in message_values(rows).to_pylist()]

    assert [list(message) for message in sent] == [list(MESSAGE_FIELDS)] * len(KEYS)
    assert [m["entity_key"] for m in sent] == KEYS
    assert [m["prediction"] for m in sent] == rows.column("prediction").to_pylist()
    instant = datetime.fromisoformat(sent[0]["event_time"])
    assert instant == datetime(2026, 1, 15, 9, 30, 0, 123456, tzinfo=timezone.utc)
    assert {(m["score_date"], m["model_version"], m["pipeline"]) for m in sent} == {("2026-01-15", 3, "p")}


def test_text_without_control_characters_is_escaped_by_arrow_alike():
    keys = KEYS[:4] + [None]
    sent = [json.loads(value) for value in message_values(batch(keys)).to_pylist()]

    assert [m["entity_key"] for m in sent] == keys
    assert sent[-1]["prediction_id"] is None
