"""Hybrid storage: named tiers from one configuration file, and a placement policy per dataset.

Tiers (`include/storage.yaml`, or the file named by LOOPLINE_STORAGE_CONFIG) are root URIs:
`file://` (on-prem disk or mount), `s3://` (any S3-compatible store), or anything else
Spark and pyarrow both understand (e.g. `hdfs://`). Adding a tier is a config change,
not a code change. A pipeline's spec places each dataset on a tier; a dataset marked
`onprem_only` (personal data, raw payloads) can never get a location on a tier whose
residency is not `onprem`: asking for one raises PlacementError, whatever the caller.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

from typing import TYPE_CHECKING

import yaml

from loopline.core.config import REPOSITORY

if TYPE_CHECKING:  # pyarrow is imported on use: specs (and so DAG files) load without it
    import pyarrow.fs as pafs

STORAGE_CONFIG = REPOSITORY / "include" / "storage.yaml"
ONPREM = "onprem"


class StorageError(ValueError):
    """Unknown tier or dataset placement, or a malformed storage configuration."""


class PlacementError(StorageError):
    """A dataset would be written to a tier its placement policy forbids."""


@dataclass(frozen=True)
class Tier:
    """A storage tier: a root URI plus how to reach it from Spark and from Python."""

    name: str
    uri: str  # file:///abs/path, s3://bucket/prefix, hdfs://host/path ...
    residency: str  # "onprem" or anything else (e.g. "cloud"); onprem-only data needs "onprem"
    s3_endpoint: str | None = None

    @property
    def scheme(self) -> str:
        return urlparse(self.uri).scheme

    @property
    def root(self) -> str:
        """The root as pyarrow paths it: /abs/path for files, bucket/prefix for S3."""
        parsed = urlparse(self.uri)
        return parsed.path if self.scheme == "file" else f"{parsed.netloc}{parsed.path}".rstrip("/")

    def spark_uri(self, relative: str) -> str:
        if self.scheme == "s3":  # Hadoop's S3 connector is s3a://
            return f"s3a://{self.root}/{relative}"
        return f"{self.uri.rstrip('/')}/{relative}"

    def arrow_path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def arrow_filesystem(self) -> pafs.FileSystem:
        import pyarrow.fs as pafs

        if self.scheme == "file":
            return pafs.LocalFileSystem()
        if self.scheme == "s3":
            return pafs.S3FileSystem(
                endpoint_override=self.s3_endpoint,
                access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
                secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                scheme="http" if (self.s3_endpoint or "").startswith("http://") else "https",
            )
        return pafs.FileSystem.from_uri(self.uri)[0]


@dataclass(frozen=True)
class Placement:
    tier: str
    onprem_only: bool = False


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
        from pyarrow.fs import FileType

        return self.filesystem().get_file_info(self.arrow_path).type != FileType.NotFound

    def child(self, name: str) -> "DatasetLocation":
        return DatasetLocation(self.tier, f"{self.relative}/{name}")


def _expand(value: str) -> str:
    """${VAR} from the environment; a missing variable is a configuration error, not ''."""
    def lookup(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise StorageError(f"storage configuration needs environment variable {name} "
                               "(locally: `source .loopline/env`)")
        return os.environ[name]

    return re.sub(r"\$\{(\w+)\}", lookup, value)


def load_tiers(path: Path | None = None) -> dict[str, Tier]:
    """The tiers of the storage configuration, with file roots made absolute."""
    path = path or Path(os.environ.get("LOOPLINE_STORAGE_CONFIG", STORAGE_CONFIG))
    raw = yaml.safe_load(path.read_text())
    tiers = {}
    for name, tier in raw["tiers"].items():
        uri = _expand(tier["uri"])
        if uri.startswith("file://"):
            uri = "file://" + str(Path(uri.removeprefix("file://")).resolve())
        endpoint = _expand(tier["endpoint"]) if tier.get("endpoint") else None
        if "residency" not in tier:
            raise StorageError(f"{path.name}: tier {name} needs a residency (onprem, cloud, ...)")
        tiers[name] = Tier(name, uri, tier["residency"], endpoint)
    return tiers


def read_stored(uri: str, tiers: dict[str, Tier] | None = None) -> bytes:
    """The bytes of a file a stage stored and recorded by URI (a report), from the tier whose
    root holds it."""
    for tier in (tiers or load_tiers()).values():
        root = tier.uri.rstrip("/") + "/"
        if uri.startswith(root):
            with tier.arrow_filesystem().open_input_stream(tier.arrow_path(uri.removeprefix(root))) as stream:
                return stream.read()
    raise StorageError(f"{uri} is on no configured storage tier")


class Lake:
    """Resolves (pipeline, dataset, partition) to a location, enforcing placement policy."""

    def __init__(self, pipeline: str, placement: dict[str, Placement], tiers: dict[str, Tier]) -> None:
        unknown = {d: p.tier for d, p in placement.items() if p.tier not in tiers}
        if unknown:
            raise StorageError(f"pipeline {pipeline}: unknown storage tiers {unknown}; known: {sorted(tiers)}")
        self.pipeline = pipeline
        self.placement = placement
        self.tiers = tiers
        for dataset, place in placement.items():
            self.check_allowed(dataset, place.tier)

    def check_allowed(self, dataset: str, tier: str) -> None:
        """Raise PlacementError if `dataset` may not live on `tier`."""
        if self.placement[dataset].onprem_only and self.tiers[tier].residency != ONPREM:
            raise PlacementError(
                f"pipeline {self.pipeline}: dataset {dataset!r} is onprem_only, so it cannot be stored on tier "
                f"{tier!r} (residency {self.tiers[tier].residency}). Keep it on an onprem tier, or change its "
                "placement in the spec after a data-protection review."
            )

    def location(self, dataset: str, partition: date | None = None, *, key: str = "date",
                 subdir: str = "", tier: str | None = None) -> DatasetLocation:
        """`<pipeline>/<dataset>[/<subdir>][/<key>=<partition>]` on the dataset's tier (or `tier`)."""
        if dataset not in self.placement:
            raise StorageError(f"pipeline {self.pipeline}: dataset {dataset!r} has no storage placement in its spec")
        tier = tier or self.placement[dataset].tier
        if tier not in self.tiers:
            raise StorageError(f"unknown storage tier {tier!r}; known: {sorted(self.tiers)}")
        self.check_allowed(dataset, tier)
        relative = f"{self.pipeline}/{dataset}" + (f"/{subdir}" if subdir else "")
        if partition is not None:
            relative += f"/{key}={partition.isoformat()}"
        return DatasetLocation(self.tiers[tier], relative)
