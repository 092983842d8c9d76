"""Publish a contract's GX Data Docs to its storage tier.

The site for one validation goes to `<pipeline>/contract_reports/<dataset>/date=<D>/` on the
tier the spec places `contract_reports` on, replacing the date's previous report (every
validation's numbers stay in PostgreSQL, with the stored page's URI). A person opens it
through the loop view, behind Airflow's login, with its assets served locally and its
outcome stated in Loopline's terms: a link there never expires, unlike a pre-signed URL.
Only the site's pages are stored: its `static/` folder (GX's own stylesheets, scripts and
images, 4 MB in 20 files, the same for every report of a GX version) is served by the view
from the installed GX, so a validation stores two small files, not twenty-two.
"""
from __future__ import annotations

from pathlib import Path

from loopline.core.storage import DatasetLocation

VALIDATIONS_FOLDER = "validations"  # where a site keeps its validation pages
STATIC_FOLDER = "static"  # GX's assets in a site: not stored, served from the installed GX


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
    for file in site.rglob("*"):
        relative = file.relative_to(site).as_posix()
        if file.is_file() and not relative.startswith(f"{STATIC_FOLDER}/"):
            with filesystem.open_output_stream(f"{location.arrow_path}/{relative}") as stored:
                stored.write(file.read_bytes())
    return f"{location.tier.uri.rstrip('/')}/{location.relative}/{page}"


def site_root(page_uri: str) -> str:
    """The stored site's root, from its validation page's URI."""
    root, found, _ = page_uri.rpartition(f"/{VALIDATIONS_FOLDER}/")
    if not found:
        raise ValueError(f"{page_uri} is not a Data Docs validation page")
    return root
