"""`loopline contract draft`: profile a reference partition, write a first suite to review.

One Spark aggregation profiles every column (nulls, range, mean, spread, distinct count);
`draft_suite` turns the profile into rules a person then reviews and commits:

    batch  volume (half to twice the reference rows), schema (exact column set), each
           column's type, null rates of nullable columns (`mostly`), mean bounds of numeric
           columns (reference mean ± one standard deviation), freshness of the time field
    row    not null (columns without nulls), ranges with a 10 % margin, value sets of
           categorical strings (at most MAX_CATEGORIES values), uniqueness of the key

Drafts are never written over a reviewed suite: the default output is <suite>.draft.json.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from loopline.contract_rules import EXPECTATIONS_DIR, parse_suite

MAX_CATEGORIES = 20
RANGE_MARGIN = 0.10
NUMERIC = {"double", "float", "int", "bigint", "smallint", "tinyint"}
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


@dataclass(frozen=True)
class Profile:
    rows: int
    columns: list[ColumnProfile]


def profile_frame(frame) -> Profile:
    """Profile a Spark DataFrame in one aggregation (plus one small query per categorical column)."""
    from pyspark.sql import functions as F

    types = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    aggregates = [F.count(F.lit(1)).alias("_rows")]
    for name, kind in types.items():
        column = F.col(f"`{name}`")
        aggregates += [F.count(column).alias(f"{name}__present"), F.approx_count_distinct(column).alias(f"{name}__distinct")]
        if kind in NUMERIC or kind == "timestamp":
            aggregates += [F.min(column).alias(f"{name}__min"), F.max(column).alias(f"{name}__max")]
        if kind in NUMERIC:
            aggregates += [F.avg(column).alias(f"{name}__mean"), F.stddev(column).alias(f"{name}__stddev")]
    row = frame.agg(*aggregates).first().asDict()
    columns = []
    for name, kind in types.items():
        values = None
        if kind == "string" and 0 < row[f"{name}__distinct"] <= MAX_CATEGORIES:
            found = [r[0] for r in frame.select(f"`{name}`").where(F.col(f"`{name}`").isNotNull()).distinct()
                     .limit(MAX_CATEGORIES + 1).collect()]
            values = sorted(found) if len(found) <= MAX_CATEGORIES else None
        columns.append(ColumnProfile(name, kind, row["_rows"] - row[f"{name}__present"], row.get(f"{name}__min"),
                                     row.get(f"{name}__max"), row.get(f"{name}__mean"), row.get(f"{name}__stddev"),
                                     row[f"{name}__distinct"], values))
    return Profile(row["_rows"], columns)


def _rounded(value: float, up: bool) -> float:
    """Round outward to 4 significant digits, so a bound never cuts into the observed range."""
    if value == 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(abs(value))) - 3)
    return (math.ceil if up else math.floor)(value / step) * step


def _expectation(kind: str, severity: str, note: str = "", name: str = "", **kwargs) -> dict:
    meta = {"severity": severity, **({"name": name} if name else {}), **({"notes": note} if note else {})}
    return {"type": kind, "kwargs": kwargs, "meta": meta}


def _column_rules(column: ColumnProfile, rows: int, key: str | None, time_field: str | None) -> list[dict]:
    rules = [_expectation("expect_column_values_to_be_of_type", "batch", column=column.name,
                          type_=GX_SPARK_TYPES.get(column.type, column.type))]
    if column.nulls == 0:
        rules.append(_expectation("expect_column_values_to_not_be_null", "row", column=column.name))
    else:
        share = column.nulls / rows
        rules.append(_expectation("expect_column_values_to_not_be_null", "batch", f"reference null rate {share:.4f}",
                                  name=f"{column.name}:null_rate", column=column.name,
                                  mostly=round(max(0.0, 1 - 2 * share - 0.01), 3)))
    if column.name == key:
        rules.append(_expectation("expect_column_values_to_be_unique", "row", column=column.name))
    if column.type in NUMERIC and column.minimum is not None:
        margin = (column.maximum - column.minimum) * RANGE_MARGIN
        low = column.minimum - margin
        low = max(0, low) if column.minimum >= 0 else low
        rules.append(_expectation("expect_column_values_to_be_between", "row",
                                  f"reference range {column.minimum} .. {column.maximum}, plus {RANGE_MARGIN:.0%}",
                                  column=column.name, min_value=_rounded(low, up=False),
                                  max_value=_rounded(column.maximum + margin, up=True)))
        spread = column.stddev or 0.0
        rules.append(_expectation("expect_column_mean_to_be_between", "batch",
                                  f"reference mean {column.mean:.4g} ± one standard deviation", column=column.name,
                                  min_value=_rounded(column.mean - spread, up=False),
                                  max_value=_rounded(column.mean + spread, up=True)))
    if column.values is not None and column.name != key:
        rules.append(_expectation("expect_column_values_to_be_in_set", "row", column=column.name,
                                  value_set=column.values))
    if column.name == time_field:
        rules.append(_expectation("expect_column_max_to_be_between", "batch",
                                  "the date's data reaches its last hours (spec: contracts.<dataset>.freshness_hours)",
                                  name="freshness", column=column.name, min_value={"$PARAMETER": "freshness_cutoff"}))
    return rules


def draft_suite(name: str, dataset: str, day: date, profile: Profile, key: str | None = None,
                time_field: str | None = None, managed: tuple[str, ...] = ()) -> dict:
    """A GX suite (as a dict) drawn from `profile`; `managed` columns (ingest lineage) only
    get their type checked."""
    expectations = [
        _expectation("expect_table_row_count_to_be_between", "batch", f"reference partition: {profile.rows} rows",
                     name="volume", min_value=profile.rows // 2, max_value=profile.rows * 2),
        _expectation("expect_table_columns_to_match_set", "batch", name="schema",
                     column_set=[c.name for c in profile.columns], exact_match=True),
    ]
    for column in profile.columns:
        if column.name in managed:
            expectations.append(_expectation("expect_column_values_to_be_of_type", "batch", column=column.name,
                                             type_=GX_SPARK_TYPES.get(column.type, column.type)))
        else:
            expectations += _column_rules(column, profile.rows, key, time_field)
    suite = {"name": name, "meta": {
        "dataset": dataset, "drafted_from": f"{dataset} date={day.isoformat()} ({profile.rows} rows)",
        "notes": "DRAFT by `loopline contract draft`: review every rule (severity, bounds, value sets), then "
                 f"save it as {name}.json and name it in the pipeline spec's contracts."},
        "expectations": expectations}
    parse_suite(suite, f"draft {name}")  # a draft Loopline could not enforce is a bug here, not the reviewer's
    return suite


def draft(p, dataset: str, day: date, output: Path | None = None) -> Path:
    """Profile `dataset`'s partition for `day` and write a draft suite; return its path."""
    from loopline.landing import BATCH_KEY, LINEAGE_COLUMNS

    location = p.lake.location(dataset, day)
    if not location.exists():
        raise FileNotFoundError(f"{p.spec.name}: no {dataset} partition for {day} at {location.spark_uri}; "
                                "pick a date that has been ingested")
    source = next((s for s in p.spec.sources.values() if s.dataset == dataset), None)
    contract = p.spec.contracts.get(dataset)
    name = contract.suite if contract else f"{p.spec.name}_{dataset}"
    profile = profile_frame(p.spark().read.parquet(location.spark_uri))
    suite = draft_suite(name, dataset, day, profile, key=source.schema.key if source else None,
                        time_field=source.time_field if source else None,
                        managed=(*LINEAGE_COLUMNS, BATCH_KEY))
    output = output or EXPECTATIONS_DIR / f"{name}.draft.json"
    output.write_text(json.dumps(suite, indent=2, default=str) + "\n")
    return output
