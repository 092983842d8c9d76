"""Bronze as later stages see it: only the rows of ingest batches that were recorded.

Ingest writes a batch's folders (`date=D/ingest_batch=n`) before it records the batch in
`loopline.ingest_batches`, so a crash in between leaves folders that no record names until
the rerun of the batch overwrites them. Readers (the contract, `loopline contract draft`)
skip such folders, so they never see rows that ingest has not reconciled."""
from __future__ import annotations

from typing import TYPE_CHECKING

from loopline.core import db, partitions
from loopline.core.interval import Interval
from loopline.ingest.landing import BATCH_KEY

if TYPE_CHECKING:
    import pyarrow.dataset as ds

    from loopline.core.pipeline import Pipeline


def read(p: "Pipeline", dataset: str, interval: Interval, batches: list[int] | None = None):
    """The interval's rows of `dataset` with `date` and `ingest_batch` (None when it has none),
    limited to recorded batches (`batches`, looked up when not given) when `dataset` is a source's bronze."""
    frame = partitions.read(p, dataset, interval)
    if frame is None or not _is_bronze(p, dataset):
        return frame
    batches = recorded_batches(p.settings.db_url, p.spec.name, dataset, interval) if batches is None else batches
    return frame.where(frame[BATCH_KEY].isin(batches)) if batches else None


def local_dataset(p: "Pipeline", dataset: str, interval: Interval, batches: list[int]) -> "ds.Dataset | None":
    """`read`'s rows as a pyarrow dataset of the recorded `batches`' files (for the in-process
    engine; its footers count the rows without reading them)."""
    folders = {f"{BATCH_KEY}={batch}" for batch in batches}
    return partitions.local_dataset(p, dataset, interval, keep=lambda below: below.split("/")[1] in folders) \
        if batches else None


def _is_bronze(p: "Pipeline", dataset: str) -> bool:
    return p.spec.source_of(dataset) is not None


def recorded_batches(db_url: str, pipeline: str, dataset: str, interval: Interval) -> list[int]:
    """The recorded ingest batches of `dataset` that accepted rows of the interval's dates."""
    with db.connect(db_url) as conn:
        rows = db.fetch_all(conn, "SELECT batch_id FROM loopline.ingest_batches WHERE pipeline = %s AND dataset = %s "
                                  "AND accepted_by_date ?| %s ORDER BY batch_id",
                            (pipeline, dataset, [day.isoformat() for day in interval.dates]))
    return [row["batch_id"] for row in rows]
