"""A contract suite as Loopline reads it: GX expectations with a name and a severity each.

Suites are GX 1.x suite files (expectations/<suite>.json). Every expectation's `meta` says

    severity: row    the rule judges each row: rows breaking it go to quarantine, the rest flow on
    severity: batch  the rule judges the whole batch (volume, freshness, null rates,
                     distributions, schema): if it fails, the line stops for the date
    severity: warn   the rule is evaluated and its result recorded, but it stops nothing and
                     routes no row (a drift worth knowing about, not a broken batch)

and may give it a `name` (default `<column>:<rule>`, e.g. `amount:values_to_be_between`),
which is what a quarantined row's `reason` column lists. GX evaluates every rule on Spark;
for row rules Loopline also needs the rule as a per-row Spark predicate (to route rows), so
row severity is limited to the expectation types in ROW_RULE_TYPES, and the quarantine
written per rule is checked against GX's own unexpected count.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.core.config import REPOSITORY

EXPECTATIONS_DIR = REPOSITORY / "expectations"


def expectations_dir() -> Path:
    """Where suites live: expectations/, or LOOPLINE_EXPECTATIONS_DIR (deployments, tests)."""
    return Path(os.environ.get("LOOPLINE_EXPECTATIONS_DIR", EXPECTATIONS_DIR))


SEVERITIES = ("row", "batch", "warn")
UNIQUE_RULE_TYPE = "expect_column_values_to_be_unique"
ROW_RULE_TYPES = (
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_match_regex",
    "expect_column_value_lengths_between",
    UNIQUE_RULE_TYPE,
)
# Values Loopline supplies to `{"$PARAMETER": name}` in a suite, per validated date.
SUITE_PARAMETERS = ("partition_start", "partition_end", "freshness_cutoff")


class SuiteError(ValueError):
    """A suite file is missing, malformed, or uses a rule in a way Loopline cannot enforce."""


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    type: str
    kwargs: dict[str, Any]

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")


@dataclass(frozen=True)
class Suite:
    name: str
    rules: list[Rule]
    raw: dict = field(repr=False)  # the file as GX reads it, names and severities filled in

    @property
    def row_rules(self) -> list[Rule]:
        return [r for r in self.rules if r.severity == "row"]

    def rule(self, name: str) -> Rule:
        return next(r for r in self.rules if r.name == name)


def default_name(expectation_type: str, kwargs: dict) -> str:
    short = expectation_type.removeprefix("expect_").removeprefix("column_").removeprefix("table_")
    return f"{kwargs['column']}:{short}" if "column" in kwargs else f"table:{short}"


def parse_suite(raw: dict, source: str = "suite") -> Suite:
    """Check a suite's names and severities; fill in default names (pure, no GX import)."""
    rules, expectations = [], []
    for position, expectation in enumerate(raw.get("expectations", [])):
        kind, kwargs, meta = expectation["type"], expectation.get("kwargs", {}), dict(expectation.get("meta", {}))
        where = f"{source}: expectation {position} ({kind})"
        severity = meta.get("severity")
        if severity not in SEVERITIES:
            raise SuiteError(f"{where}: meta.severity must be one of {SEVERITIES}, got {severity!r}")
        if severity == "row" and kind not in ROW_RULE_TYPES:
            raise SuiteError(f"{where}: cannot be row-level (rows are routed by {', '.join(ROW_RULE_TYPES)}); "
                             "make it severity batch")
        if severity == "row" and kwargs.get("mostly", 1) != 1:
            raise SuiteError(f"{where}: a row-level rule judges each row, so `mostly` has no meaning; make it "
                             "batch-level, or bound the bad rows with the spec's max_quarantined_share")
        if severity == "row" and "$PARAMETER" in json.dumps(kwargs):
            raise SuiteError(f"{where}: row-level rules take literal values, not suite parameters")
        meta["name"] = meta.get("name") or default_name(kind, kwargs)
        rules.append(Rule(meta["name"], severity, kind, kwargs))
        expectations.append({**expectation, "meta": meta})
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SuiteError(f"{source}: rule names {duplicates} are used twice; give one of each a meta.name")
    if not rules:
        raise SuiteError(f"{source}: no expectations")
    return Suite(raw["name"], rules, {**raw, "expectations": expectations})


def load_suite(name: str, directory: Path | None = None) -> Suite:
    path = (directory or expectations_dir()) / f"{name}.json"
    if not path.exists():
        raise SuiteError(f"no contract suite {path.name} in {path.parent}; the pipeline spec names it "
                         "(`loopline contract draft` writes a first version)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SuiteError(f"{path.name}: not valid JSON: {error}") from error
    return parse_suite(raw, path.name)


def row_passes(rule: Rule):
    """Spark Column: true where the row satisfies `rule` (GX's semantics: nulls pass every
    rule except not_be_null, and every occurrence of a duplicated value breaks uniqueness)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    column, kw = F.col(rule.column), rule.kwargs
    if rule.type == "expect_column_values_to_not_be_null":
        return column.isNotNull()
    if rule.type == UNIQUE_RULE_TYPE:
        return column.isNull() | (F.count(F.lit(1)).over(Window.partitionBy(rule.column)) == 1)
    if rule.type == "expect_column_values_to_be_between":
        check = within_bounds(column, kw, F.lit(True))
    elif rule.type == "expect_column_value_lengths_between":
        check = within_bounds(F.length(column), kw, F.lit(True))
    elif rule.type == "expect_column_values_to_be_in_set":
        check = column.isin(list(kw["value_set"]))
    elif rule.type == "expect_column_values_to_not_be_in_set":
        check = ~column.isin(list(kw["value_set"]))
    else:  # expect_column_values_to_match_regex
        check = column.rlike(kw["regex"])
    return column.isNull() | check


def within_bounds(value, kw: dict, everything):
    """`everything` (all true, of `value`'s kind) narrowed by the rule's min and max: the same
    comparisons whether `value` is a Spark column or a pandas series."""
    check = everything
    if kw.get("min_value") is not None:
        check = check & ((value > kw["min_value"]) if kw.get("strict_min") else (value >= kw["min_value"]))
    if kw.get("max_value") is not None:
        check = check & ((value < kw["max_value"]) if kw.get("strict_max") else (value <= kw["max_value"]))
    return check


def failed_rules(rules: list[Rule]):
    """Spark Column: array of the names of the row `rules` a row breaks (empty = valid row)."""
    from pyspark.sql import functions as F

    names = [F.when(~row_passes(rule), F.lit(rule.name)) for rule in rules]
    if not names:
        return F.array().cast("array<string>")
    return F.filter(F.array(*names), lambda name: name.isNotNull())
