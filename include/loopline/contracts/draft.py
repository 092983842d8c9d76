"""`loopline contract draft`: profile reference days of a dataset, write a first suite to review.

A draft must survive the next day, so it profiles every date of a range (a month is a good
reference) and stops the line only on what a healthy day cannot break:

    batch  volume (half the smallest to twice the largest run's batch: a day, or a week or a
           month for pipelines scheduled so; 0 when the source can be empty on a date, as
           labels are on a pipeline's first days), schema (exact column
           set), each column's type, freshness of the time field (not for sources that can
           be empty)
    row    not null (the schema's required fields), uniqueness of the key, non-negative
           numbers (when no reference value was negative), value sets of categorical
           strings
    warn   recorded, never stopping: each number's reference range (with a margin; integer
           bounds for integer columns) and mean (± one standard deviation), null rates of
           nullable fields

Value sets leave out the key, identifier-like and high-cardinality columns, and temporal
ones: a column with one value within each date (a weekday, a season, a month) describes the
date, not a vocabulary, and the next days would break it. Drafts are never written over a
reviewed suite: the default output is <suite>.draft.json.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from loopline.contracts.rules import expectations_dir, parse_suite
from loopline.ingest import bronze
from loopline.core.interval import Interval, schedule_intervals

MAX_CATEGORIES = 20
IDENTIFIER_SHARE = 0.5  # more distinct values than this share of the rows: an identifier, not a category
RANGE_MARGIN = 0.10
INTEGER = {"int", "bigint", "smallint", "tinyint"}
NUMERIC = {"double", "float"} | INTEGER
GX_SPARK_TYPES = {"string": "StringType", "double": "DoubleType", "float": "FloatType", "int": "IntegerType",
                  "bigint": "LongType", "smallint": "ShortType", "tinyint": "ByteType", "boolean": "BooleanType",
                  "timestamp": "TimestampType", "date": "DateType", "binary": "BinaryType"}


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    type: str  # Spark simpleString: string, double, bigint, timestamp ...
    nulls: int
    minimum: Any = None
    maximum: Any = None
    mean: float | None = None
    stddev: float | None = None
    distinct: int = 0
    values: list | None = None  # the distinct values, when there are at most MAX_CATEGORIES
    constant_within_dates: bool = False  # one value (at most) within every date: describes the date


@dataclass(frozen=True)
class Profile:
    rows: int
    columns: list[ColumnProfile]
    rows_per_date: dict[str, int] = field(default_factory=dict)  # every date of the range, 0 included

    @property
    def empty_dates(self) -> int:
        return sum(1 for n in self.rows_per_date.values() if n == 0)

    def rows_per_batch(self, batches: list[Interval] | None) -> list[int]:
        """Rows of each run's batch (each date, when `batches` is None)."""
        if batches is None:
            return list(self.rows_per_date.values()) or [self.rows]
        return [sum(self.rows_per_date.get(d.isoformat(), 0) for d in b.dates) for b in batches]


def profile_frame(frame, dates: list[date]) -> Profile:
    """Profile a Spark DataFrame with a `date` column over `dates` in two aggregations (plus one
    small query per categorical column)."""
    from pyspark.sql import functions as F

    types = {f.name: f.dataType.simpleString() for f in frame.schema.fields if f.name != "date"}
    aggregates = [F.count(F.lit(1)).alias("_rows")]
    for name, kind in types.items():
        column = F.col(f"`{name}`")
        aggregates += [F.count(column).alias(f"{name}__present"), F.approx_count_distinct(column).alias(f"{name}__distinct")]
        if kind in NUMERIC or kind == "timestamp":
            aggregates += [F.min(column).alias(f"{name}__min"), F.max(column).alias(f"{name}__max")]
        if kind in NUMERIC:
            aggregates += [F.avg(column).alias(f"{name}__mean"), F.stddev(column).alias(f"{name}__stddev")]
    row = frame.agg(*aggregates).first().asDict()
    strings = [name for name, kind in types.items() if kind == "string"]
    per_date = frame.groupBy("date").agg(F.count(F.lit(1)).alias("_rows"),
                                         *[F.countDistinct(F.col(f"`{n}`")).alias(n) for n in strings]).collect()
    counts = {d.isoformat(): 0 for d in dates} | {str(r["date"]): r["_rows"] for r in per_date}
    columns = []
    for name, kind in types.items():
        values = None
        if kind == "string" and 0 < row[f"{name}__distinct"] <= MAX_CATEGORIES:
            found = [r[0] for r in frame.select(f"`{name}`").where(F.col(f"`{name}`").isNotNull()).distinct()
                     .limit(MAX_CATEGORIES + 1).collect()]
            values = sorted(found) if len(found) <= MAX_CATEGORIES else None
        constant = kind == "string" and all(r[name] <= 1 for r in per_date)
        columns.append(ColumnProfile(name, kind, row["_rows"] - row[f"{name}__present"], row.get(f"{name}__min"),
                                     row.get(f"{name}__max"), row.get(f"{name}__mean"), row.get(f"{name}__stddev"),
                                     row[f"{name}__distinct"], values, constant))
    return Profile(row["_rows"], columns, dict(sorted(counts.items())))


def _rounded(value: float, up: bool, integer: bool = False) -> float | int:
    """Round outward (to 4 significant digits, or to a whole number for integer columns), so a
    bound never cuts into the observed range."""
    if integer:
        return int(math.ceil(value) if up else math.floor(value))
    if value == 0:
        return 0.0
    exponent = math.floor(math.log10(abs(value))) - 3
    return round((math.ceil if up else math.floor)(value / 10 ** exponent) * 10 ** exponent, max(0, -exponent))


def _expectation(kind: str, severity: str, note: str = "", name: str = "", **kwargs) -> dict:
    meta = {"severity": severity, **({"name": name} if name else {}), **({"notes": note} if note else {})}
    return {"type": kind, "kwargs": kwargs, "meta": meta}


@dataclass(frozen=True)
class DraftContext:
    """What the drafter knows about the dataset besides its profile."""

    key: str | None = None
    time_field: str | None = None
    required: frozenset[str] | None = None  # the schema's required fields (None: judge by observed nulls)
    may_be_empty: bool = False  # a date may have no rows (labels on a pipeline's first days)
    managed: tuple[str, ...] = ()  # lineage columns ingest adds: only their type is checked
    batches: list[Interval] | None = None  # the schedule's intervals over the reference dates (None: days)


def _numeric_rules(column: ColumnProfile, context: DraftContext) -> list[dict]:
    integer = column.type in INTEGER
    rules = []
    if column.minimum >= 0:
        rules.append(_expectation("expect_column_values_to_be_between", "row", "no reference value was negative",
                                  name=f"{column.name}:non_negative", column=column.name, min_value=0))
    margin = (column.maximum - column.minimum) * RANGE_MARGIN
    low = column.minimum - margin
    low = max(0, low) if column.minimum >= 0 else low
    rules.append(_expectation("expect_column_values_to_be_between", "warn",
                              f"reference range {column.minimum} .. {column.maximum}, plus {RANGE_MARGIN:.0%}",
                              name=f"{column.name}:reference_range", column=column.name,
                              min_value=_rounded(low, False, integer),
                              max_value=_rounded(column.maximum + margin, True, integer)))
    if not context.may_be_empty:  # the mean of an empty day is null, which fails any bound
        spread = column.stddev or 0.0
        rules.append(_expectation("expect_column_mean_to_be_between", "warn",
                                  f"reference mean {column.mean:.4g} ± one standard deviation", column=column.name,
                                  min_value=_rounded(column.mean - spread, False),
                                  max_value=_rounded(column.mean + spread, True)))
    return rules


def _is_category(column: ColumnProfile, rows: int, context: DraftContext) -> bool:
    present = rows - column.nulls
    return (column.values is not None and column.name != context.key and not column.constant_within_dates
            and column.distinct <= max(IDENTIFIER_SHARE * present, 1))


def _column_rules(column: ColumnProfile, profile: Profile, context: DraftContext) -> list[dict]:
    rules = [_expectation("expect_column_values_to_be_of_type", "batch", column=column.name,
                          type_=GX_SPARK_TYPES.get(column.type, column.type))]
    required = column.name in context.required if context.required is not None else column.nulls == 0
    if required:
        rules.append(_expectation("expect_column_values_to_not_be_null", "row", column=column.name))
    else:
        share = column.nulls / profile.rows if profile.rows else 0.0
        rules.append(_expectation("expect_column_values_to_not_be_null", "warn", f"reference null rate {share:.4f}",
                                  name=f"{column.name}:null_rate", column=column.name,
                                  mostly=round(max(0.0, 1 - 2 * share - 0.01), 3)))
    if column.name == context.key:
        rules.append(_expectation("expect_column_values_to_be_unique", "row", column=column.name))
    if column.type in NUMERIC and column.minimum is not None:
        rules += _numeric_rules(column, context)
    if _is_category(column, profile.rows, context):
        rules.append(_expectation("expect_column_values_to_be_in_set", "row", column=column.name,
                                  value_set=column.values))
    if column.name == context.time_field and not context.may_be_empty:
        rules.append(_expectation("expect_column_max_to_be_between", "batch",
                                  "the date's data reaches its last hours (spec: contracts.<dataset>.freshness_hours)",
                                  name="freshness", column=column.name, min_value={"$PARAMETER": "freshness_cutoff"}))
    return rules


def draft_suite(name: str, dataset: str, first: date, last: date, profile: Profile, context: DraftContext) -> dict:
    """A GX suite (as a dict) drawn from `profile`."""
    batches = profile.rows_per_batch(context.batches)
    empty = context.may_be_empty or profile.empty_dates > 0
    low = 0 if empty else min(batches) // 2
    volume_note = (f"reference: {min(batches)} .. {max(batches)} rows per run over {len(batches)} runs"
                   + ("; a date may have no rows" if empty else ""))
    expectations = [
        _expectation("expect_table_row_count_to_be_between", "batch", volume_note, name="volume", min_value=low,
                     max_value=max(max(batches) * 2, 1)),
        _expectation("expect_table_columns_to_match_set", "batch", name="schema",
                     column_set=[c.name for c in profile.columns], exact_match=True),
    ]
    context = replace(context, may_be_empty=empty)
    for column in profile.columns:
        if column.name in context.managed:
            expectations.append(_expectation("expect_column_values_to_be_of_type", "batch", column=column.name,
                                             type_=GX_SPARK_TYPES.get(column.type, column.type)))
        else:
            expectations += _column_rules(column, profile, context)
    span = first.isoformat() if first == last else f"{first}..{last}"
    suite = {"name": name, "meta": {
        "dataset": dataset, "drafted_from": f"{dataset} dates {span} ({profile.rows} rows)",
        "notes": "DRAFT by `loopline contract draft`: review every rule (severity, bounds, value sets), then "
                 f"save it as {name}.json and name it in the pipeline spec's contracts."},
        "expectations": expectations}
    parse_suite(suite, f"draft {name}")  # a draft Loopline could not enforce is a bug here, not the reviewer's
    return suite


def draft(p, dataset: str, first: date, last: date | None = None, output: Path | None = None) -> Path:
    """Profile `dataset`'s partitions from `first` to `last` and write a draft suite; return its path."""
    from loopline.ingest.landing import BATCH_KEY, LINEAGE_COLUMNS

    reference = Interval(first, last or first)
    dates = reference.dates
    frame = bronze.read(p, dataset, reference)
    if frame is None:
        raise FileNotFoundError(f"{p.spec.name}: no {dataset} partition from {first} to {last} under "
                                f"{p.lake.location(dataset).spark_uri}; ingest those dates first (`loopline ingest "
                                f"--pipeline {p.spec.name}`)")
    source = p.spec.source_of(dataset)
    contract = p.spec.contracts.get(dataset)
    name = contract.suite if contract else f"{p.spec.name}_{dataset}"
    separate_labels = p.spec.task.labels != p.spec.task.entities
    context = DraftContext(
        key=source.key if source else None, time_field=source.time_field if source else None,
        required=frozenset(f for f in source.schema.fields if source.schema.required(f)) if source else None,
        may_be_empty=bool(source) and separate_labels and source.name == p.spec.task.labels,
        managed=(*LINEAGE_COLUMNS, BATCH_KEY), batches=schedule_intervals(p.spec.cron, dates[0], dates[-1]))
    suite = draft_suite(name, dataset, dates[0], dates[-1], profile_frame(frame, dates), context)
    output = output or expectations_dir() / f"{name}.draft.json"
    output.write_text(json.dumps(suite, indent=2, default=str) + "\n")
    return output
