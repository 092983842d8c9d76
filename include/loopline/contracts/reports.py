"""Publish a contract's GX Data Docs to its storage tier and say where a person can open them.

The site for one validation goes to `<pipeline>/contract_reports/<dataset>/date=<D>/` on the
tier the spec places `contract_reports` on, replacing the date's previous report (every
validation's numbers stay in PostgreSQL). The link is a file:// URL on a file tier, and a
pre-signed HTTP(S) URL on an S3 tier (valid for LINK_DAYS; the s3:// URI does not expire).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from loopline.core.storage import DatasetLocation

LINK_DAYS = 7  # the longest an S3 signature may live


@dataclass(frozen=True)
class ReportLink:
    uri: str  # where the report page is stored (file://, s3://, ...)
    url: str  # what to open in a browser


def _validation_page(site: Path) -> str:
    pages = sorted(site.glob("validations/**/*.html"))
    if len(pages) != 1:
        raise RuntimeError(f"expected one validation page in the Data Docs built at {site}, found {len(pages)}")
    return pages[0].relative_to(site).as_posix()


def _browser_url(location: DatasetLocation, page: str) -> str:
    tier = location.tier
    if tier.scheme == "file":
        return f"file://{location.arrow_path}/{page}"
    if tier.scheme == "s3":
        import boto3

        bucket, _, prefix = location.arrow_path.partition("/")
        client = boto3.client("s3", endpoint_url=tier.s3_endpoint,
                              region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": f"{prefix}/{page}"},
                                             ExpiresIn=LINK_DAYS * 86400)
    return f"{location.tier.spark_uri(location.relative)}/{page}"


def publish(site: Path, location: DatasetLocation) -> ReportLink:
    """Replace the report at `location` with the site built at `site`; return its links."""
    page = _validation_page(site)
    filesystem = location.filesystem()
    filesystem.delete_dir_contents(location.arrow_path, missing_dir_ok=True)
    filesystem.create_dir(location.arrow_path, recursive=True)
    pafs.copy_files(str(site), location.arrow_path, source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=filesystem)
    stored = f"{location.tier.uri.rstrip('/')}/{location.relative}/{page}"
    return ReportLink(uri=stored, url=_browser_url(location, page))
