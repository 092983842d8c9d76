"""The drift report of one monitored interval: a self-contained HTML page, in the spirit of
Evidently's data drift report, stored on the tier the spec places `drift_reports` on.

Per monitored feature: the training reference and the interval's distribution over the same
bins (bars drawn as inline SVG, so the page needs no script and no network), its PSI and the
threshold. Then prediction drift (the interval's predictions against the champion's holdout
predictions) and, once labels are back, label drift and calibration. The page states its
verdict first: which features drifted, or none.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from loopline.core.drift import Comparison
from loopline.core.spec import DRIFT_REPORTS

if TYPE_CHECKING:
    from loopline.core.pipeline import Pipeline
    from loopline.monitoring.monitor import DriftResult

REPORT_FILE = "drift_report.html"
TEMPLATES = Path(__file__).parent / "templates"
BAR_WIDTH, CHART_HEIGHT = 32, 120


def render(pipeline: str, result: "DriftResult") -> str:
    """The report page of `result`."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    return environment.get_template("drift_report.html").render(
        pipeline=pipeline, result=result, bars=bars, bar_width=BAR_WIDTH, chart_height=CHART_HEIGHT,
        features=sorted(result.features.items(), key=lambda item: -item[1].psi))


def bars(comparison: Comparison) -> list[dict]:
    """Bar heights (pixels) of each bin's reference and current share, on one scale."""
    top = max([*comparison.reference, *comparison.current, 1e-9])
    return [{"label": label, "reference": ref, "current": cur,
             "reference_height": CHART_HEIGHT * ref / top, "current_height": CHART_HEIGHT * cur / top}
            for label, ref, cur in zip(comparison.bins, comparison.reference, comparison.current)]


def publish_report(p: "Pipeline", result: "DriftResult") -> str:
    """Write the interval's report (replacing a rerun's), return where it is stored."""
    location = p.lake.location(DRIFT_REPORTS, result.interval.first)
    filesystem = location.filesystem()
    filesystem.create_dir(location.arrow_path, recursive=True)
    with filesystem.open_output_stream(f"{location.arrow_path}/{REPORT_FILE}") as out:
        out.write(render(p.spec.name, result).encode())
    return f"{location.tier.uri.rstrip('/')}/{location.relative}/{REPORT_FILE}"
