"""Tiering on the real lake: onprem disk -> S3 object store, checksum-verified and idempotent,
and the placement policy that keeps onprem_only data off the cloud."""
from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from loopline.core.pipeline import Pipeline
from loopline.core.storage import PlacementError
from loopline.ops.tiering import copy_partition

DAY = date(2026, 9, 1)


def _write_partition(p: Pipeline, dataset: str) -> None:
    location = p.lake.location(dataset, DAY)
    for batch in (0, 1):
        path = location.child(f"ingest_batch={batch}/part-0.parquet").arrow_path
        location.filesystem().create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(pa.table({"transaction_id": [f"t{batch}-{i}" for i in range(1000)]}), path,
                       filesystem=location.filesystem())


def test_copy_to_the_object_store_is_verified_idempotent_and_repairs_damage(make_pipeline):
    p = Pipeline.load(make_pipeline())
    _write_partition(p, "bronze_labels")

    first = copy_partition(p.lake, "bronze_labels", DAY, "cloud")
    assert (first.files, first.copied, first.skipped) == (2, 2, 0) and first.target.startswith("s3a://")
    target = p.lake.location("bronze_labels", DAY, tier="cloud")
    copied = pq.read_table(target.arrow_path, filesystem=target.filesystem())
    original = pq.read_table(p.lake.location("bronze_labels", DAY).arrow_path)
    assert sorted(copied.column("transaction_id").to_pylist()) == sorted(original.column("transaction_id").to_pylist())

    again = copy_partition(p.lake, "bronze_labels", DAY, "cloud")
    assert (again.copied, again.skipped, again.removed) == (0, 2, 0)

    damaged = target.child("ingest_batch=1/part-0.parquet").arrow_path
    with target.filesystem().open_output_stream(damaged) as broken:
        broken.write(b"not parquet")
    with target.filesystem().open_output_stream(target.child("ingest_batch=9/stale.parquet").arrow_path) as stale:
        stale.write(b"left over")
    repaired = copy_partition(p.lake, "bronze_labels", DAY, "cloud")
    assert (repaired.copied, repaired.skipped, repaired.removed) == (1, 1, 1)
    assert pq.read_table(target.arrow_path, filesystem=target.filesystem()).num_rows == 2000


def test_onprem_only_data_is_refused_and_nothing_reaches_the_cloud(make_pipeline):
    p = Pipeline.load(make_pipeline())
    _write_partition(p, "bronze_events")  # the spec marks raw payments onprem_only
    with pytest.raises(PlacementError, match="onprem_only"):
        copy_partition(p.lake, "bronze_events", DAY, "cloud")
    cloud = p.lake.tiers["cloud"]
    listing = cloud.arrow_filesystem().get_file_info(
        pafs.FileSelector(cloud.arrow_path(f"{p.spec.name}/bronze_events"), recursive=True, allow_not_found=True))
    assert listing == []
