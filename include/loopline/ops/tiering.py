"""Copy one dataset partition to another storage tier, verified by checksum, idempotently.

The copy goes file by file through pyarrow filesystems, so it works between any two tiers
(disk, S3, HDFS). Each file's SHA-256 is computed on the source and again on what the
target holds after writing; a mismatch raises TieringError. Files already on the target
with the right checksum are skipped, files the source no longer has are removed, so
running the copy again changes nothing, and it repairs a damaged copy. The placement policy
applies: an onprem_only dataset cannot be copied to a cloud tier (PlacementError).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date

import pyarrow.fs as pafs

from loopline.core.storage import DatasetLocation, Lake

CHUNK = 8 * 1024 * 1024
MANIFEST = "_loopline_manifest.json"


class TieringError(RuntimeError):
    """A copied file does not match its source."""


@dataclass(frozen=True)
class CopyResult:
    source: str
    target: str
    files: int
    bytes: int
    copied: int
    skipped: int
    removed: int


def _sha256(filesystem: pafs.FileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with filesystem.open_input_stream(path) as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(location: DatasetLocation) -> dict[str, int]:
    """Relative path -> size of every data file under the location (no hidden/marker files)."""
    selector = pafs.FileSelector(location.arrow_path, recursive=True, allow_not_found=True)
    found = {}
    for info in location.filesystem().get_file_info(selector):
        relative = info.path[len(location.arrow_path.rstrip("/")) + 1:]
        if info.type == pafs.FileType.File and not any(part[:1] in "._" for part in relative.split("/")):
            found[relative] = info.size
    return found


def _copy_file(source: DatasetLocation, target: DatasetLocation, relative: str) -> None:
    source_fs, target_fs = source.filesystem(), target.filesystem()
    target_path = target.child(relative).arrow_path
    target_fs.create_dir(target_path.rsplit("/", 1)[0], recursive=True)
    with source_fs.open_input_stream(source.child(relative).arrow_path) as reader, \
            target_fs.open_output_stream(target_path) as writer:
        while chunk := reader.read(CHUNK):
            writer.write(chunk)


def copy_partition(lake: Lake, dataset: str, day: date, to_tier: str) -> CopyResult:
    """Make `to_tier`'s copy of the dataset's `day` partition identical to the source's."""
    target = lake.location(dataset, day, tier=to_tier)  # placement policy is checked here
    source = lake.location(dataset, day)
    if source.tier.name == to_tier:
        raise ValueError(f"{dataset} {day} already lives on tier {to_tier}; nothing to copy")
    wanted = _files(source)
    if not wanted:
        raise FileNotFoundError(f"nothing to copy: {source.spark_uri} has no data files")
    present = _files(target)
    target_fs = target.filesystem()
    checksums, copied, skipped = {}, 0, 0
    for relative, size in sorted(wanted.items()):
        checksums[relative] = _sha256(source.filesystem(), source.child(relative).arrow_path)
        target_path = target.child(relative).arrow_path
        if present.get(relative) == size and _sha256(target_fs, target_path) == checksums[relative]:
            skipped += 1
            continue
        _copy_file(source, target, relative)
        if _sha256(target_fs, target_path) != checksums[relative]:
            raise TieringError(f"checksum mismatch after copying {source.child(relative).spark_uri} to "
                               f"{target.child(relative).spark_uri}; the target file is wrong, rerun the copy")
        copied += 1
    stale = sorted(set(present) - set(wanted))
    for relative in stale:
        target_fs.delete_file(target.child(relative).arrow_path)
    with target_fs.open_output_stream(target.child(MANIFEST).arrow_path) as manifest:
        manifest.write(json.dumps({"source": source.spark_uri, "sha256": checksums}, indent=1).encode())
    return CopyResult(source.spark_uri, target.spark_uri, len(wanted), sum(wanted.values()), copied, skipped,
                      len(stale))
