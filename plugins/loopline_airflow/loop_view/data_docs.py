"""GX Data Docs as the loop view serves them: offline, and in Loopline's terms.

GX writes its pages against public CDNs (Bootstrap, jQuery, Font Awesome, bootstrap-table,
Vega ...) and its logo on its own web-assets bucket, so an offline or firewalled site sees
them unstyled. The view rewrites each such address to the same file from npm (installed
beside the charting library by `make setup`, pinned by integrity hash), served by the plugin.
GX also says "Failed" of a batch whose row failures were routed to quarantine while the line
went on; a banner at the top of the page states the outcome as Loopline decided it.
"""
from __future__ import annotations

import mimetypes
import re
from pathlib import Path

NODE_MODULES = Path(__file__).parent / "static" / "node_modules"
GX_SITE_STATIC = "render/view/static"  # in the great_expectations package: what a site's static/ holds
VENDOR_ROUTE = "static/vendor/"  # below the view's root

# Each address GX's templates use -> the npm package file with the same content.
CDN_FILES = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/dist/js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/dist/umd/popper.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "@fortawesome/fontawesome-free/css/all.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "@forevolve/bootstrap-dark/dist/css/bootstrap-prefers-dark.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/build/vega-embed.min.js",
}
# The packages a request may read files of (a stylesheet loads its fonts relative to itself).
SERVED_PACKAGES = {"/".join(Path(f).parts[:2]) if f.startswith("@") else Path(f).parts[0] for f in CDN_FILES.values()}
GX_WEB_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"  # the logo; the site has a copy
# A page's checks of a CDN copy (Subresource Integrity) do not apply to the local copy,
# which npm verified against its lock file when it was installed.
CDN_ATTRIBUTES = re.compile(r'\s+(integrity="[^"]*"|crossorigin="[^"]*")')
BODY = re.compile(r"<body[^>]*>")
# The site's own files, addressed relative to the page; GX gets the favicon's depth wrong
# (one folder short on a validation page), so every such address is made relative to the root.
SITE_STATIC = re.compile(r'(src|href)="(?:\.\./)+static/')

# What a served report page may do: load and run what this server serves (GX's pages carry
# inline scripts and styles), fetch nothing from anywhere else.
POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
          "img-src 'self' data:; font-src 'self' data:")


def offline_page(html: str, page: str, view_root: str, banner: str) -> str:
    """The stored page `page` (its path in the site) with every CDN address pointed at the
    view's local copy (`view_root`: the view's root, relative to the page), the site's own
    files (and the logo, at the site's copy) relative to the site's root, and `banner` first
    in the body."""
    site_root = "../" * page.count("/")
    html = SITE_STATIC.sub(lambda address: f'{address.group(1)}="{site_root}static/', html)  # before the view's
    for cdn, local in CDN_FILES.items():
        html = html.replace(f'"{cdn}"', f'"{view_root}{VENDOR_ROUTE}{local}"')
    html = html.replace(GX_WEB_ASSETS, f"{site_root}static/images/")
    html = CDN_ATTRIBUTES.sub("", html)
    return BODY.sub(lambda body: body.group(0) + banner, html, count=1)


def vendor_file(path: str) -> Path | None:
    """The npm file `path` names, if it is in a served package (None: it is not)."""
    target = (NODE_MODULES / path).resolve()
    root = NODE_MODULES.resolve()
    if root not in target.parents or not target.is_file():
        return None
    package = target.relative_to(root).parts
    name = "/".join(package[:2]) if package[0].startswith("@") else package[0]
    return target if name in SERVED_PACKAGES else None


def site_static_file(path: str) -> Path | None:
    """The file of GX's own site assets that `path` (below the site's `static/`) names, from the
    installed GX, which built the site (reports store only their pages); None if there is none."""
    from importlib.util import find_spec

    root = (Path(find_spec("great_expectations").submodule_search_locations[0]) / GX_SITE_STATIC).resolve()
    target = (root / path).resolve()
    return target if root in target.parents and target.is_file() else None


def media_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"
