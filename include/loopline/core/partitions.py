"""A run's date partitions of a dataset in the lake: read them together, or replace them.

Stages that work on an interval (contracts, scoring) read its dates' partitions as one
Spark DataFrame and replace them in one partitioned write, so a rerun of the interval
leaves exactly its own output and dates without rows keep no partition.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from loopline.core.interval import Interval

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


def replace(p: "Pipeline", frame, dataset: str, interval: Interval, date_column, subdir: str = ""):
    """Replace the interval's date partitions of `dataset` with `frame`'s rows, partitioned by
    `date_column` (a column or expression); return them read back, without `date` (None: no rows)."""
    remove(p, dataset, interval, subdir)
    (frame.withColumn("date", date_column).write.mode("append").partitionBy("date")
     .parquet(p.lake.location(dataset, subdir=subdir).spark_uri))
    written = read(p, dataset, interval, subdir)
    return written.drop("date") if written is not None else None
