"""`loopline replay`: stream a historical file into a pipeline's Kafka topics, as if it happened.

Real files are rarely in time order and rarely have one timestamp column. The spec's
`replay` block says how a row's event time is built (file columns joined with a space and
parsed with a format) and its entity key (a column, or the event time formatted). Rows are
sent in event-time order, keyed by the entity key, with the Kafka timestamp set to the event
time. The entities source gets the entity schema's fields; when the labels come from another
source, they are sent as a later stream: each row's outcome `labels_after` its event time
(when it is one source, the outcome follows on the same stream as a second record).

A rerun sends nothing twice: progress is recorded per pipeline and file (loopline.replays)
after every flushed chunk, with the topics' end offsets; a rerun first reads what landed
after the last record (a chunk cut short by a crash) and skips those keys.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.core import db

if TYPE_CHECKING:
    import pandas as pd

    from loopline.core.kafka_auth import KafkaLogin
    from loopline.core.pipeline import Pipeline
    from loopline.core.spec import Schema

CHUNK = 5000
DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
KIND_HEADER = "loopline.replay_kind"


class ReplayError(ValueError):
    """The file cannot be replayed into this pipeline as its spec describes."""


def parse_duration(text: str) -> timedelta:
    """`90m`, `2h`, `3d` ... as a timedelta."""
    match = DURATION.match(text.strip())
    if not match:
        raise ReplayError(f"{text!r} is not a duration like 30s, 90m, 2h or 3d")
    return timedelta(seconds=int(match.group(1)) * SECONDS[match.group(2)])


KINDS = ("entity", "label")  # sent in a header, so a rerun can tell the two records of one key apart


@dataclass(frozen=True)
class Record:
    topic: str
    key: str
    value: bytes
    timestamp_ms: int
    order: tuple[str, str, int]  # (moment, key, kind): the total order records are sent in

    @property
    def kind(self) -> str:
        return KINDS[self.order[2]]


def read_file(path: Path) -> "pd.DataFrame":
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".txt"):
        return pd.read_csv(path)
    raise ReplayError(f"{path.name}: replay reads .csv or .parquet files")


def _json_value(value: Any, field_type: str) -> Any:
    """A file cell as the JSON value the schema's type expects (missing: null)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if field_type == "timestamp":
        return value.isoformat() if isinstance(value, datetime) else str(value)
    if field_type == "int":
        return int(value)
    if field_type == "double":
        return float(value)
    if field_type == "boolean":
        return bool(value)
    return str(value)


def prepared(p: "Pipeline", frame: "pd.DataFrame", first: date | None, last: date | None) -> "pd.DataFrame":
    """The file's rows with the entity key and event time the spec's replay block builds,
    in event-time order, limited to [first, last] event dates."""
    import pandas as pd

    settings, source = p.spec.replay, p.spec.entity_source
    if settings is None:
        raise ReplayError(f"pipeline {p.spec.name} has no `replay` block in its spec: say how a row's event time "
                          "and entity key are built (docs/authoring.md)")
    wanted = {*settings.event_time.columns, *([settings.key.column] if settings.key.column else [])}
    missing = sorted(wanted - set(frame.columns))
    if missing:
        raise ReplayError(f"the file has no column {missing}; it has {sorted(frame.columns)}")
    text = frame[settings.event_time.columns].astype(str).agg(" ".join, axis=1)
    moments = pd.to_datetime(text, format=settings.event_time.format, utc=True, errors="coerce")
    if moments.isna().any():
        bad = text[moments.isna()].iloc[0]
        raise ReplayError(f"{int(moments.isna().sum())} rows have an event time that does not parse with "
                          f"{settings.event_time.format!r} (first: {bad!r})")
    rows = frame.assign(**{source.time_field: moments})
    keys = rows[settings.key.column].astype(str) if settings.key.column else \
        moments.dt.strftime(settings.key.event_time_format)
    rows[source.key] = keys
    if rows[source.key].duplicated().any():
        raise ReplayError(f"the entity key is not unique: {rows[source.key][rows[source.key].duplicated()].iloc[0]!r} "
                          "repeats; change replay.key")
    days = moments.dt.date
    keep = (days >= (first or date.min)) & (days <= (last or date.max))
    return rows[keep].sort_values([source.time_field, source.key], kind="stable").reset_index(drop=True)


def _payload(row: dict, schema: "Schema", overrides: dict) -> bytes:
    values = {**row, **overrides}
    missing = sorted(f for f in schema.fields if f not in values and schema.required(f))
    if missing:
        raise ReplayError(f"schema {schema.name} needs {missing}, which the file does not have")
    if schema.version:
        values[schema.version.field] = schema.version.value
    return json.dumps({f: _json_value(values.get(f), t) for f, t in schema.fields.items()}).encode()


def records(p: "Pipeline", rows: "pd.DataFrame", labels_after: timedelta) -> Iterator[Record]:
    """Every record to send, in the order to send them: entities at their event time, labels
    `labels_after` later."""
    spec = p.spec
    entities, labels = spec.entity_source, spec.label_source
    same_source = entities.name == labels.name
    planned = []
    for row in rows.to_dict("records"):
        moment: datetime = row[entities.time_field].to_pydatetime()
        key = row[entities.key]
        overrides = {entities.time_field: moment}
        if same_source:  # the outcome is not known yet when the entity first arrives
            overrides[spec.target] = None
        planned.append((moment, key, 0, entities.topic, _payload(row, entities.versions[0], overrides)))
        labelled_at = moment + labels_after
        label_row = {**row, labels.key: key, labels.time_field: labelled_at}
        planned.append((labelled_at, key, 1, labels.topic, _payload(label_row, labels.versions[0], {})))
    planned.sort(key=lambda r: r[:3])
    for moment, key, kind, topic, value in planned:
        yield Record(topic, key, value, int(moment.timestamp() * 1000), (moment.isoformat(), key, kind))


@dataclass(frozen=True)
class ReplayResult:
    entities: int
    labels: int
    skipped: int  # already sent by an earlier run


def _progress(conn, pipeline: str, file_id: str) -> dict | None:
    rows = db.fetch_all(conn, "SELECT * FROM loopline.replays WHERE pipeline = %s AND file_sha256 = %s",
                        (pipeline, file_id))
    return rows[0] if rows else None


def _landed_after(kafka: "KafkaLogin", end_offsets: dict[str, dict[str, int]]) -> set[tuple[str, str, str]]:
    """(topic, key, kind) of every record written after the recorded end offsets (a cut-short chunk)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka.python(), enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        partitions = {TopicPartition(t, int(p)): o for t, offsets in end_offsets.items() for p, o in offsets.items()}
        partitions |= {TopicPartition(t, p): 0 for t in end_offsets for p in consumer.partitions_for_topic(t) or ()
                       if TopicPartition(t, p) not in partitions}
        consumer.assign(list(partitions))
        ends = consumer.end_offsets(list(partitions))
        for partition, offset in partitions.items():
            consumer.seek(partition, offset)
        landed, remaining = set(), {tp for tp in partitions if ends[tp] > partitions[tp]}
        while remaining:
            batch = consumer.poll(timeout_ms=2000)
            if not batch:
                break
            for tp, messages in batch.items():
                landed |= {(tp.topic, m.key.decode(), dict(m.headers).get(KIND_HEADER, b"").decode())
                           for m in messages if m.key is not None}
                if messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return landed
    finally:
        consumer.close()


def _end_offsets(kafka: "KafkaLogin", topics: list[str]) -> dict[str, dict[str, int]]:
    from loopline.sources.kafka_offsets import log_range

    return {topic: {str(p): o for p, o in log_range(kafka, topic)[1].items()} for topic in topics}


def replay(p: "Pipeline", path: Path, labels_after: timedelta | None = None, first: date | None = None,
           last: date | None = None, progress: bool = True) -> ReplayResult:
    """Send the file's rows (within [first, last]) to the pipeline's topics; idempotent."""
    from kafka import KafkaProducer

    rows = prepared(p, read_file(path), first, last)
    labels_after = labels_after if labels_after is not None else parse_duration(p.spec.replay.labels_after)
    file_id = hashlib.sha256(path.read_bytes()).hexdigest()
    topics = sorted({p.spec.entity_source.topic, p.spec.label_source.topic})
    planned = list(records(p, rows, labels_after))
    with db.connect(p.settings.db_url) as conn:
        done = _progress(conn, p.spec.name, file_id)
    sent_through = tuple(done["sent_through"]) if done else None
    kafka = p.settings.kafka("producer")
    landed = _landed_after(kafka, done["end_offsets"]) if done else set()
    todo = [r for r in planned
            if (sent_through is None or r.order > sent_through) and (r.topic, r.key, r.kind) not in landed]
    skipped = len(planned) - len(todo)
    producer = KafkaProducer(**kafka.python(), acks="all", linger_ms=20, retries=5)
    try:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            for record in chunk:
                producer.send(record.topic, key=record.key.encode(), value=record.value,
                              timestamp_ms=record.timestamp_ms, headers=[(KIND_HEADER, record.kind.encode())])
            producer.flush(timeout=120)
            with db.connect(p.settings.db_url) as conn:
                db.upsert(conn, "loopline.replays", {
                    "pipeline": p.spec.name, "file_sha256": file_id, "file_name": path.name,
                    "sent_through": list(chunk[-1].order), "records_sent": start + len(chunk) + skipped,
                    "end_offsets": _end_offsets(kafka, topics)},
                    key=["pipeline", "file_sha256"])
            if progress:
                done_count = start + len(chunk)
                print(f"\rreplay {path.name}: {done_count}/{len(todo)} records "
                      f"({done_count * 100 // max(len(todo), 1)}%)", end="", file=sys.stderr, flush=True)
        if progress and todo:
            print(file=sys.stderr)
    finally:
        producer.close(timeout=10)
    entities = sum(r.kind == "entity" for r in todo)
    return ReplayResult(entities, len(todo) - entities, skipped)
