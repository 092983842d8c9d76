"""GX Data Docs made to work offline by the loop view (loopline_airflow.loop_view.data_docs)."""
import re
from pathlib import Path

import great_expectations

from loopline_airflow.loop_view.data_docs import CDN_FILES, GX_WEB_ASSETS, offline_page, vendor_file

GX_TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
ASSET = re.compile(r'<(?:script[^>]+src|link[^>]+href)="(https?://[^"]+)"')


def test_every_asset_gx_pages_load_from_a_cdn_is_served_from_a_local_npm_copy():
    used = {url for template in GX_TEMPLATES.glob("*.j2") for url in ASSET.findall(template.read_text())}
    assert len(used) >= 10
    assert used <= set(CDN_FILES), f"GX loads assets Loopline does not serve: {sorted(used - set(CDN_FILES))}"
    assert all(vendor_file(CDN_FILES[url]) for url in used)  # installed by `make setup` (npm ci)


def test_the_vendor_route_serves_only_files_of_the_listed_packages():
    assert vendor_file("@fortawesome/fontawesome-free/webfonts/fa-solid-900.woff2")  # loaded by its stylesheet
    assert vendor_file("../package.json") is None
    assert vendor_file("bootstrap/../../pipeline.js") is None
    assert vendor_file("d3-array/package.json") is None  # installed (a dependency), but not served


def test_a_page_gets_local_assets_its_logo_from_the_site_and_the_banner_first():
    cdn = "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js"
    page = (f'<html><head><script src="{cdn}" integrity="sha384-abc" crossorigin="anonymous"></script></head>'
            '<link rel="icon" href="../../../static/images/favicon.ico">'  # GX's: one folder short
            f'<body class="x"><img src="{GX_WEB_ASSETS}logo-long.png?d=1"><p>Failed</p></body></html>')
    served = offline_page(page, "validations/suite/run/time/batch.html", "../../", "<div id=banner></div>")
    assert '<script src="../../static/vendor/bootstrap/dist/js/bootstrap.min.js"></script>' in served
    assert '<img src="../../../../static/images/logo-long.png?d=1">' in served
    assert '<link rel="icon" href="../../../../static/images/favicon.ico">' in served
    assert '<body class="x"><div id=banner></div><img' in served
    assert "https://" not in served
