"""A run's date partitions of a dataset in the lake: read them together, or replace them.

Stages that work on an interval (contracts, scoring) read its dates' partitions as one
Spark DataFrame and replace them in one partitioned write, so a rerun of the interval
leaves exactly its own output and dates without rows keep no partition. A small batch,
which the stage handles in its own process (spec `engine`), is read and written the same
way with pyarrow (`local_dataset`, `replace_table`): same folders, same Parquet types.

A replacement is written to a staging folder first (`<dataset>/_staging/<id>`, which Spark and
pyarrow skip: names starting with `_` are hidden), checked, and only then moved into place,
date by date. A failed or killed write leaves the previous output where readers look, never
half of the new one. On a file system each date's folder moves in one rename; on S3 a move
is a copy per file, so there a reader may briefly see a date half moved.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING

from loopline.core.interval import Interval
from loopline.core.storage import DatasetLocation

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

    from loopline.core.pipeline import Pipeline


def existing(p: "Pipeline", dataset: str, interval: Interval, subdir: str = "") -> list[str]:
    """The Spark URIs of the interval's date partitions of `dataset` that exist."""
    return [location.spark_uri for location in (p.lake.location(dataset, d, subdir=subdir) for d in interval.dates)
            if location.exists()]


def read(p: "Pipeline", dataset: str, interval: Interval, subdir: str = ""):
    """The interval's rows of `dataset` with their `date` column (None when it has none)."""
    present = existing(p, dataset, interval, subdir)
    if not present:
        return None
    return p.spark().read.option("basePath", p.lake.location(dataset, subdir=subdir).spark_uri).parquet(*present)


def local_dataset(p: "Pipeline", dataset: str, interval: Interval, subdir: str = "",
                  keep: Callable[[str], bool] | None = None) -> "ds.Dataset | None":
    """The interval's files of `dataset` as a pyarrow dataset, folder keys (`date` as text)
    among its columns as in Spark's read; `keep(path below the dataset)` may pass over some
    (None when no file is left). Hidden files (`_SUCCESS`, checksums, staging) are skipped."""
    import pyarrow.dataset as ds
    from pyarrow import fs

    root = p.lake.location(dataset, subdir=subdir)
    files = []
    for day in interval.dates:
        location = p.lake.location(dataset, day, subdir=subdir)
        if not location.exists():
            continue
        for info in location.filesystem().get_file_info(fs.FileSelector(location.arrow_path, recursive=True)):
            below = info.path[len(root.arrow_path):].lstrip("/")
            if (info.type == fs.FileType.File and not any(part.startswith(("_", ".")) for part in below.split("/"))
                    and (keep is None or keep(below))):
                files.append(info.path)
    if not files:
        return None
    return ds.dataset(files, filesystem=root.filesystem(), format="parquet", partitioning="hive",
                      partition_base_dir=root.arrow_path)


def remove(p: "Pipeline", dataset: str, interval: Interval, subdir: str = "") -> None:
    """Delete the interval's date partitions of `dataset`."""
    for day in interval.dates:
        location = p.lake.location(dataset, day, subdir=subdir)
        if location.exists():
            location.filesystem().delete_dir(location.arrow_path)


def replace(p: "Pipeline", frame, dataset: str, interval: Interval, date_column, subdir: str = "",
            check: Callable | None = None):
    """Replace the interval's date partitions of `dataset` with `frame`'s rows, partitioned by
    `date_column` (a column or expression); return them read back, without `date` (None: no rows).

    `check(staged)` gets the staging folder (its `date=` folders hold the new rows) before
    anything moves; raising stops the replacement and the previous partitions stay."""
    _replace_staged(p, lambda staging: frame.withColumn("date", date_column).write.partitionBy("date")
                    .parquet(staging.spark_uri), dataset, interval, subdir, check)
    written = read(p, dataset, interval, subdir)
    return written.drop("date") if written is not None else None


def replace_table(p: "Pipeline", table: "pa.Table", dataset: str, interval: Interval, dates: "pa.Array",
                  subdir: str = "", check: Callable | None = None) -> None:
    """`replace` for a pyarrow table: its rows partitioned by `dates` (text, YYYY-MM-DD), in
    Parquet as Spark writes it (zstd, INT96 timestamps), so readers of either see no difference.
    The table's schema metadata is dropped: what it carries from files Spark wrote (Spark's own
    schema of them) would make Spark read the new files with the old files' columns."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    options = ds.ParquetFileFormat().make_write_options(compression="zstd", use_deprecated_int96_timestamps=True)
    by_date = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")
    _replace_staged(p, lambda staging: ds.write_dataset(
        table.replace_schema_metadata(None).append_column("date", dates), staging.arrow_path, filesystem=staging.filesystem(), format="parquet",
        partitioning=by_date, file_options=options, basename_template="part-{i}.parquet"),
        dataset, interval, subdir, check)


def _replace_staged(p: "Pipeline", write: Callable[[DatasetLocation], None], dataset: str, interval: Interval,
                    subdir: str, check: Callable | None) -> None:
    """Have `write` fill a staging folder with `date=` folders, check them, move them into place."""
    root = p.lake.location(dataset, subdir=subdir)
    staging = root.child(f"_staging/{uuid.uuid4().hex}")
    try:
        write(staging)
        staged_dates = _date_folders(staging)
        if check is not None and staged_dates:
            check(staging)
        remove(p, dataset, interval, subdir)
        for folder in staged_dates:
            _move(staging.child(folder), root.child(folder))
    finally:  # an object store may list a prefix it no longer holds: that must not hide the real error
        with suppress(FileNotFoundError):
            if staging.exists():
                staging.filesystem().delete_dir(staging.arrow_path)


def _date_folders(location: DatasetLocation) -> list[str]:
    from pyarrow import fs

    if not location.exists():  # pyarrow writes no folder for a table without rows
        return []
    return sorted(info.base_name for info in location.filesystem().get_file_info(fs.FileSelector(location.arrow_path))
                  if info.type == fs.FileType.Directory and info.base_name.startswith("date="))


def _move(source: DatasetLocation, target: DatasetLocation) -> None:
    """One rename on a file system; file by file where folders are only key prefixes (S3)."""
    from pyarrow import fs

    filesystem = source.filesystem()
    if source.tier.scheme != "s3":
        filesystem.create_dir(target.arrow_path.rsplit("/", 1)[0], recursive=True)
        filesystem.move(source.arrow_path, target.arrow_path)
        return
    for info in filesystem.get_file_info(fs.FileSelector(source.arrow_path, recursive=True)):
        if info.type == fs.FileType.File:
            filesystem.move(info.path, target.arrow_path + info.path[len(source.arrow_path):])
