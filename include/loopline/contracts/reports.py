"""Publish a contract's GX Data Docs to its storage tier.

The site for one validation goes to `<pipeline>/contract_reports/<dataset>/date=<D>/` on the
tier the spec places `contract_reports` on, replacing the date's previous report (every
validation's numbers stay in PostgreSQL, with the stored page's URI). A person opens it
through the loop view, behind Airflow's login, with its assets served locally and its
outcome stated in Loopline's terms: a link there never expires, unlike a pre-signed URL.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs

from loopline.core.storage import DatasetLocation

VALIDATIONS_FOLDER = "validations"  # where a site keeps its validation pages


def _validation_page(site: Path) -> str:
    pages = sorted(site.glob(f"{VALIDATIONS_FOLDER}/**/*.html"))
    if len(pages) != 1:
        raise RuntimeError(f"expected one validation page in the Data Docs built at {site}, found {len(pages)}")
    return pages[0].relative_to(site).as_posix()


def publish(site: Path, location: DatasetLocation) -> str:
    """Replace the report at `location` with the site built at `site`; return the stored
    validation page's URI."""
    page = _validation_page(site)
    filesystem = location.filesystem()
    filesystem.delete_dir_contents(location.arrow_path, missing_dir_ok=True)
    filesystem.create_dir(location.arrow_path, recursive=True)
    pafs.copy_files(str(site), location.arrow_path, source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=filesystem)
    return f"{location.tier.uri.rstrip('/')}/{location.relative}/{page}"


def site_root(page_uri: str) -> str:
    """The stored site's root, from its validation page's URI."""
    root, found, _ = page_uri.rpartition(f"/{VALIDATIONS_FOLDER}/")
    if not found:
        raise ValueError(f"{page_uri} is not a Data Docs validation page")
    return root
