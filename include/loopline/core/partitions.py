"""A run's date partitions of a dataset in the lake: read them together, or replace them.

Stages that work on an interval (contracts, scoring) read its dates' partitions as one
Spark DataFrame and replace them in one partitioned write, so a rerun of the interval
leaves exactly its own output and dates without rows keep no partition.

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
    root = p.lake.location(dataset, subdir=subdir)
    staging = root.child(f"_staging/{uuid.uuid4().hex}")
    try:
        frame.withColumn("date", date_column).write.partitionBy("date").parquet(staging.spark_uri)
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
    written = read(p, dataset, interval, subdir)
    return written.drop("date") if written is not None else None


def _date_folders(location: DatasetLocation) -> list[str]:
    from pyarrow import fs

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
