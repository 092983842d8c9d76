"""A contract's batch in the task's own process: the engine for small batches (spec `engine`).

A nightly batch of a few thousand rows spends most of its time on Spark's fixed costs (a
session, a dozen round trips, job scheduling), not on the rows. Below the spec's threshold the
batch is read with pyarrow, GX evaluates the suite with its pandas engine, and the quarantine
and valid rows are written with pyarrow in the layout and Parquet types Spark writes. The
verdicts, routed rows and samples are those of the Spark engine (tests/integration/
test_contract_engines.py runs both on the same data).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from loopline.contracts.rules import Rule, within_bounds
from loopline.contracts.routing import DUPLICATE_RULE, REASON_SEPARATOR, SAMPLE_SIZE, Routed
from loopline.core import partitions
from loopline.core.interval import Interval
from loopline.core.spec import Contract, Source

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

    from loopline.core.pipeline import Pipeline

SOURCE_ORDER = [("source_partition", "ascending"), ("source_offset", "ascending")]


class LocalBatch:
    """The interval's bronze rows (the files of recorded batches) as a pyarrow table, and the
    pandas frame GX validates."""

    engine = "in_process"

    def __init__(self, p: "Pipeline", contract: Contract, source: Source, interval: Interval,
                 files: "ds.Dataset") -> None:
        self.p, self.contract, self.source, self.interval = p, contract, source, interval
        rows = files.to_table().drop_columns(["date"])
        self.rows_in = rows.num_rows
        later = _later_copies(rows, list(source.schema.fields), contract)
        self._kept, self._repeats = (rows.filter(~later), rows.filter(later)) if later is not None else (rows, None)
        self.repeats = self._repeats.num_rows if self._repeats is not None else None
        self.frame = pandas_frame(self._kept)
        self._rejected: "np.ndarray | None" = None

    def close(self) -> None:
        """Nothing to release: the rows live in this process (the Spark engine's batch releases its cache)."""

    def route(self, row_rules: list[Rule], suite: str, run_id: str, sample_columns: dict[str, str]) -> Routed:
        """Write the interval's quarantine: rows breaking `row_rules`, and the later copies of
        exact duplicates; count the rows per rule and take the samples from what was written."""
        import numpy as np
        import pyarrow as pa

        broken = {rule.name: breaks(rule, self.frame) for rule in row_rules}
        self._rejected = np.zeros(self._kept.num_rows, dtype=bool)
        reasons = np.full(self._kept.num_rows, "", dtype=object)
        for name, mask in broken.items():
            reasons[mask] = [f"{reason}{REASON_SEPARATOR}{name}" if reason else name for reason in reasons[mask]]
            self._rejected |= mask
        rejected = self._kept.filter(self._rejected)
        rejected = rejected.append_column("reason", pa.array(reasons[self._rejected], pa.string()))
        per_rule = {name: int(mask.sum()) for name, mask in broken.items() if mask.any()}
        if self._repeats is not None and self._repeats.num_rows:
            rejected = pa.concat_tables([rejected, self._repeats.append_column(
                "reason", pa.array([DUPLICATE_RULE] * self._repeats.num_rows, pa.string()))])
            per_rule[DUPLICATE_RULE] = self._repeats.num_rows
        rejected = (rejected.append_column("suite", pa.array([suite] * rejected.num_rows, pa.string()))
                    .append_column("run_id", pa.array([run_id] * rejected.num_rows, pa.string())))
        partitions.replace_table(self.p, rejected, "quarantine", self.interval, self._dates(rejected),
                                 self.contract.valid_dataset)
        samples = {name: self._kept.filter(broken[name]).sort_by(SOURCE_ORDER).column(column)
                   .slice(0, SAMPLE_SIZE).to_pylist() for name, column in sample_columns.items() if name in broken}
        return Routed(per_rule, rejected.num_rows, samples)

    def publish_valid(self) -> int:
        """Replace the interval's valid partitions with the rows no rule rejected; their count."""
        valid = self._kept.filter(~self._rejected)
        partitions.replace_table(self.p, valid, self.contract.valid_dataset, self.interval, self._dates(valid))
        return valid.num_rows

    def _dates(self, table: "pa.Table") -> "pa.Array":
        """Each row's event date, as Spark's to_date gives it (the UTC date of the instant)."""
        import pyarrow.compute as pc

        return pc.strftime(table.column(self.source.time_field), "%Y-%m-%d")


def _later_copies(rows: "pa.Table", fields: list[str], contract: Contract) -> "np.ndarray | None":
    """True for each later copy of a row equal in every field (the first by the contract's
    tie-break stays); None when the contract keeps every copy."""
    rule = contract.exact_duplicates
    if rule.keep == "none":
        return None
    frame = rows.select([name for name in dict.fromkeys([*fields, *rule.first_by]) if name in rows.column_names])
    frame = frame.to_pandas().sort_values(rule.first_by, kind="stable", na_position="first")
    later = frame.duplicated(subset=[name for name in fields if name in frame.columns], keep="first")
    return later.sort_index().to_numpy()


def pandas_frame(table: "pa.Table") -> "pd.DataFrame":
    """The table as GX's pandas engine sees it: integers and booleans keep their width and
    their nulls (pandas' nullable types), timestamps are naive UTC as Spark's session gives them."""
    import pandas as pd
    import pyarrow as pa

    nullable = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
                pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    frame = table.to_pandas(types_mapper=nullable.get)
    for field in table.schema:
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            frame[field.name] = frame[field.name].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


def breaks(rule: Rule, frame: "pd.DataFrame") -> "np.ndarray":
    """True where the row breaks the row `rule`, with GX's semantics (as rules.row_passes):
    nulls pass every rule except not_be_null; every occurrence of a duplicated value breaks uniqueness."""
    import pandas as pd

    column, kw = frame[rule.column], rule.kwargs
    everything = pd.Series(True, index=column.index)
    if rule.type == "expect_column_values_to_not_be_null":
        return column.isna().to_numpy()
    if rule.type == "expect_column_values_to_be_unique":
        check = ~column.duplicated(keep=False)
    elif rule.type == "expect_column_values_to_be_between":
        check = within_bounds(column, kw, everything)
    elif rule.type == "expect_column_value_lengths_between":
        check = within_bounds(column.str.len(), kw, everything)
    elif rule.type == "expect_column_values_to_be_in_set":
        check = column.isin(list(kw["value_set"]))
    elif rule.type == "expect_column_values_to_not_be_in_set":
        check = ~column.isin(list(kw["value_set"]))
    else:  # expect_column_values_to_match_regex
        check = column.astype("string").str.contains(kw["regex"], regex=True)
    return (column.notna() & ~check.fillna(False).astype(bool)).to_numpy()
