"""Training data: labelled valid rows as known on a date, their time split, hash and lineage.

Only data that passed its contract is read (the spec's valid datasets). A row is an entity
(from the spec's entities source) joined on its key with its latest label known on the date
(from the labels source, which may be the same source); it keeps the source coordinates of
both, so a model's lineage can name the exact partitions and offset ranges it learned from.
A label whose target is null is not a label: such entities are left out and counted.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from loopline.core import db
from loopline.core.spec import PipelineSpec
from loopline.core.storage import Lake

SPLITS = ("train", "validation", "holdout")
COORDINATES = ["source", "source_partition", "source_offset"]  # where a row was read (topic, partition, offset)
LABEL_PREFIX = "label_"


class NotEnoughLabels(RuntimeError):
    """Too few labelled rows, or event dates, to train (normal at cold start: labels arrive days later)."""


def read_partitions(lake: Lake, dataset: str, until: date, dates: list[str] | None = None) -> pd.DataFrame:
    """The partitions of a dataset up to and including `until` (only `dates`, if given), with
    their `date` column; partitions outside the filter are not read."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    location = lake.location(dataset)
    if not location.exists():
        return pd.DataFrame()
    partitioning = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")
    partitions = ds.dataset(location.arrow_path, filesystem=location.filesystem(), format="parquet",
                            partitioning=partitioning)
    wanted = ds.field("date") <= until.isoformat()
    if dates is not None:
        wanted &= ds.field("date").isin(dates)
    return partitions.to_table(filter=wanted).to_pandas()


def latest_labels(lake: Lake, spec: PipelineSpec, until: date) -> pd.DataFrame:
    """Each entity's latest label as known on `until` (a later label corrects an earlier one),
    keyed by the entity key's name; labels with a null target are kept (they are counted)."""
    source = spec.label_source
    labels = read_partitions(lake, spec.label_dataset, until)
    if labels.empty:
        return labels
    latest = labels.sort_values([source.time_field, *COORDINATES]).drop_duplicates(source.key, keep="last")
    return latest.rename(columns={source.key: spec.entity_source.key}) if source.key != spec.entity_source.key \
        else latest


@dataclass(frozen=True)
class LabelledRows:
    rows: pd.DataFrame  # entities with a non-null target, oldest first
    null_targets: int  # entities whose latest label has a null target (left out)


def labelled_rows(lake: Lake, spec: PipelineSpec, until: date) -> LabelledRows:
    """Entities joined with their latest label, both as known on `until`, oldest first.

    Label columns other than the target keep a `label_` prefix (`label_date`,
    `label_source_offset`, ...): the lineage needs them, the features never read them."""
    key, time_field = spec.entity_source.key, spec.entity_source.time_field
    events = read_partitions(lake, spec.entity_dataset, until)
    labels = latest_labels(lake, spec, until)
    if events.empty or labels.empty:
        return LabelledRows(pd.DataFrame(), 0)
    events = events.drop(columns=[spec.target], errors="ignore").drop_duplicates(key, keep="last")
    labels = labels[[key, spec.target, "date", *COORDINATES]].rename(
        columns={c: LABEL_PREFIX + c for c in ["date", *COORDINATES]})
    joined = events.merge(labels, on=key, how="inner")
    unlabelled = joined[spec.target].isna()
    joined = joined[~unlabelled]
    return LabelledRows(joined.sort_values([time_field, key]).reset_index(drop=True), int(unlabelled.sum()))


def event_days(rows: pd.DataFrame, time_field: str) -> pd.Series:
    """The UTC event date of each row."""
    return pd.to_datetime(rows[time_field], utc=True).dt.date


def recent(rows: pd.DataFrame, time_field: str, until: date, window_days: int | None) -> pd.DataFrame:
    """Only rows whose event day falls in the last `window_days` days up to `until` (all if None)."""
    if window_days is None or rows.empty:
        return rows
    first_day = until - timedelta(days=window_days - 1)
    return rows[event_days(rows, time_field) >= first_day].reset_index(drop=True)


def split_by_event_date(rows: pd.DataFrame, time_field: str, validation_days: int,
                        holdout_days: int) -> dict[str, pd.DataFrame]:
    """Whole event dates, oldest first: train | the next `validation_days` | the last `holdout_days`.

    No date is in two splits, so nothing the model is judged on happened before something it
    learned from (no look-ahead), and the holdout is the most recent behaviour."""
    days = event_days(rows, time_field)
    dates = sorted(days.unique())
    needed = validation_days + holdout_days + 1
    if len(dates) < needed:
        raise NotEnoughLabels(f"labelled rows span {len(dates)} event dates; the split needs at least {needed} "
                              f"(>= 1 train, {validation_days} validation, {holdout_days} holdout)")
    holdout_from = dates[-holdout_days]
    validation_from = dates[-(holdout_days + validation_days)]
    return {"train": rows[days < validation_from].reset_index(drop=True),
            "validation": rows[(days >= validation_from) & (days < holdout_from)].reset_index(drop=True),
            "holdout": rows[days >= holdout_from].reset_index(drop=True)}


def stored_columns(spec: PipelineSpec) -> list[str]:
    """The columns a model is trained and judged on: key, feature sources, critical-slice
    columns, target. This is what Loopline stores next to a model (holdout, row ids): never
    other personal columns."""
    return list(dict.fromkeys([spec.entity_source.key, *spec.features.source_columns(), *spec.gate.critical_slices,
                               spec.target]))


def model_rows(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return rows[columns]


def data_hash(rows: pd.DataFrame) -> str:
    """SHA-256 over the rows' values in order: equal hashes mean the same training data."""
    hashed = pd.util.hash_pandas_object(rows, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


@dataclass(frozen=True)
class OffsetRange:
    dataset: str
    source: str  # the topic (or table / landing prefix) the rows were read from
    partition: int
    first: int
    last: int
    rows: int


def offset_ranges(rows: pd.DataFrame, dataset: str, prefix: str = "") -> list[OffsetRange]:
    """Per source partition, the first and last offset of the rows and how many there are."""
    source, partition, offset = (prefix + c for c in COORDINATES)
    grouped = rows.groupby([source, partition])[offset].agg(["min", "max", "count"]).reset_index()
    return [OffsetRange(dataset, str(r[source]), int(r[partition]), int(r["min"]), int(r["max"]), int(r["count"]))
            for _, r in grouped.iterrows()]


def partitions(rows: pd.DataFrame, spec: PipelineSpec, lake: Lake) -> list[dict]:
    """Every dataset partition the rows came from: dataset, date, URI, rows."""
    counted = [(spec.entity_dataset, rows["date"]), (spec.label_dataset, rows[LABEL_PREFIX + "date"])]
    return [{"dataset": dataset, "date": day, "uri": lake.location(dataset, date.fromisoformat(day)).spark_uri,
             "rows": int(n)}
            for dataset, days in counted for day, n in sorted(days.value_counts().items())]


def contract_evidence(db_url: str, spec: PipelineSpec, parts: list[dict]) -> list[dict]:
    """The latest contract validation behind each valid partition read (a validation covers
    the dates of its run's interval)."""
    bronze_of = {c.valid_dataset: c.dataset for c in spec.contracts.values()}
    wanted = {(bronze_of[p["dataset"]], p["date"]) for p in parts}
    with db.connect(db_url) as conn:
        rows = db.fetch_all(conn, """SELECT dataset, logical_date::text AS date, last_date::text AS last_date, run_id,
                                            suite, success, rows_in, rows_valid, rows_quarantined, report_uri
                                       FROM loopline.contract_latest WHERE pipeline = %s""", (spec.name,))
    return [r for r in rows if any(d == r["dataset"] and r["date"] <= day <= r["last_date"] for d, day in wanted)]
