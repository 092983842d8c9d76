"""Hybrid storage: every dataset path comes from one configuration with named tiers.

`onprem` is a local (or mounted) filesystem, `cloud` an S3-compatible bucket. A pipeline's
spec places each dataset on a tier; code asks for a dataset's location and never builds a
path itself, so moving a dataset between tiers is a one-line spec change.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow.fs as pafs

from loopline.config import Settings


class StorageError(ValueError):
    """Unknown tier or dataset placement."""


@dataclass(frozen=True)
class Tier:
    """A storage tier: a root URI plus how to reach it from Spark and from Python."""

    name: str
    scheme: str  # "file" or "s3"
    root: str  # absolute directory for "file", "<bucket>/<prefix>" for "s3"
    s3_endpoint: str | None = None

    def spark_uri(self, relative: str) -> str:
        if self.scheme == "file":
            return f"file://{self.root}/{relative}"
        return f"s3a://{self.root}/{relative}"

    def arrow_path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def arrow_filesystem(self) -> pafs.FileSystem:
        if self.scheme == "file":
            return pafs.LocalFileSystem()
        return pafs.S3FileSystem(
            endpoint_override=self.s3_endpoint,
            access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            scheme="http" if (self.s3_endpoint or "").startswith("http://") else "https",
        )


@dataclass(frozen=True)
class DatasetLocation:
    """Where one partition of one dataset lives, in the forms Spark and pyarrow need."""

    tier: Tier
    relative: str

    @property
    def spark_uri(self) -> str:
        return self.tier.spark_uri(self.relative)

    @property
    def arrow_path(self) -> str:
        return self.tier.arrow_path(self.relative)

    def filesystem(self) -> pafs.FileSystem:
        return self.tier.arrow_filesystem()

    def exists(self) -> bool:
        return self.filesystem().get_file_info(self.arrow_path).type != pafs.FileType.NotFound


def tiers_from_settings(settings: Settings) -> dict[str, Tier]:
    return {
        "onprem": Tier("onprem", "file", str(Path(settings.onprem_root).resolve())),
        "cloud": Tier("cloud", "s3", f"{settings.s3_bucket}/lake", s3_endpoint=settings.s3_endpoint),
    }


class Lake:
    """Resolves (pipeline, dataset, partition) to a location on the dataset's tier."""

    def __init__(self, pipeline: str, placement: dict[str, str], tiers: dict[str, Tier]) -> None:
        unknown = {d: t for d, t in placement.items() if t not in tiers}
        if unknown:
            raise StorageError(f"pipeline {pipeline}: unknown storage tiers {unknown}; known: {sorted(tiers)}")
        self.pipeline = pipeline
        self.placement = placement
        self.tiers = tiers

    def location(self, dataset: str, partition: date | None = None, *, key: str = "date",
                 subdir: str = "") -> DatasetLocation:
        """`<pipeline>/<dataset>[/<subdir>][/<key>=<partition>]` on the dataset's tier."""
        if dataset not in self.placement:
            raise StorageError(f"pipeline {self.pipeline}: dataset {dataset!r} has no storage placement in its spec")
        relative = f"{self.pipeline}/{dataset}" + (f"/{subdir}" if subdir else "")
        if partition is not None:
            relative += f"/{key}={partition.isoformat()}"
        return DatasetLocation(self.tiers[self.placement[dataset]], relative)
