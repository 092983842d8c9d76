"""A full on-prem tier during a write, on the real Spark, PostgreSQL and lake: the contract
stage's write fails, the date's previous valid partition stays whole, and once there is room
again the rerun completes. The tier is a size-limited folder (tmpfs, mounted as root: CI runs
as root; the stack's Spark account may write in it)."""
from __future__ import annotations

import os
import subprocess
import tempfile
from datetime import date
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from contract_data import payments, write_bronze
from loopline.contracts.validate import validate_dataset
from loopline.core.interval import Interval
from loopline.core.pipeline import Pipeline

DAY = date(2026, 10, 5)
BEFORE, AFTER = 2_000, 30_000


@pytest.fixture
def small_tier(monkeypatch):
    """The on-prem tier on a 64 MiB tmpfs of its own."""
    if os.geteuid() != 0:
        pytest.fail("mounting a size-limited folder needs root (CI runs as root); run this test as root")
    mount = Path(tempfile.mkdtemp(prefix="loopline-small-tier-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0777", "tmpfs", str(mount)], check=True)
    monkeypatch.setenv("LOOPLINE_ONPREM_ROOT", str(mount))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)
        mount.rmdir()


def rows_in(location) -> int:
    return ds.dataset(location.arrow_path, filesystem=location.filesystem(), format="parquet",
                      partitioning="hive").count_rows()


def fill(mount: Path, leave: int) -> Path:
    """A file that takes all the free space of `mount` but `leave` bytes."""
    free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
    filler = mount / "filler"
    with open(filler, "wb") as out:
        out.truncate(0)
        os.posix_fallocate(out.fileno(), 0, max(free - leave, 0))
    return filler


def test_a_full_tier_fails_the_write_and_leaves_the_previous_partition_whole(make_pipeline, small_tier):
    p = Pipeline.load(make_pipeline())
    valid = p.lake.location("valid_events", DAY)
    assert valid.arrow_path.startswith(str(small_tier))
    write_bronze(p, "bronze_events", DAY, payments(DAY, BEFORE))
    validate_dataset(p, "bronze_events", Interval.of_day(DAY), "run-before")
    assert rows_in(valid) == BEFORE

    write_bronze(p, "bronze_events", DAY, payments(DAY, AFTER, seed=6))  # a late, larger delivery of the day
    bronze_bytes = sum(f.stat().st_size for f in Path(p.lake.location("bronze_events", DAY).arrow_path).rglob("*"))
    filler = fill(small_tier, leave=bronze_bytes // 3)  # the valid copy of it cannot fit

    with pytest.raises(Exception, match="No space left on device") as failed:
        validate_dataset(p, "bronze_events", Interval.of_day(DAY), "run-after")
    assert rows_in(valid) == BEFORE, f"the previous valid partition changed: {failed.value}"

    filler.unlink()
    outcome = validate_dataset(p, "bronze_events", Interval.of_day(DAY), "run-after")  # the retry, with room
    assert outcome.passed and rows_in(valid) == AFTER
