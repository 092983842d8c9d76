"""Smoke test before promotion: load a version from the registry in a fresh process and score.

A fresh interpreter proves the version loads with nothing cached in the caller (pickles of
lost classes, missing artifacts, wrong flavour). It scores a sample of holdout rows through
the same feature code as production and reports NaN, outputs outside [0, 1], and latency
per 1,000 rows (after a small warm-up).

    python -m loopline.smoke --pipeline card_fraud --model models:/card_fraud/7 --rows sample.parquet
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.gate import SmokeResult
from loopline.spec import PipelineSpec

TIMEOUT_S = 300


def smoke_test(spec: PipelineSpec, model_uri: str, rows: pd.DataFrame, max_ms_per_1000_rows: float) -> SmokeResult:
    """Run the check in a fresh Python process; any failure to load or score fails the test."""
    with tempfile.TemporaryDirectory(prefix="loopline-smoke-") as tmp:
        sample = Path(tmp) / "sample.parquet"
        rows.to_parquet(sample, index=False)
        done = subprocess.run([sys.executable, "-m", "loopline.smoke", "--pipeline", spec.name, "--model", model_uri,
                               "--rows", str(sample)], capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return SmokeResult(False, f"{model_uri} did not load and score in a fresh process: {last}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    problems = []
    if report["nan"]:
        problems.append(f"{report['nan']} of {report['rows']} predictions are NaN")
    if report["out_of_range"]:
        problems.append(f"{report['out_of_range']} predictions outside [0, 1]")
    if report["ms_per_1000_rows"] > max_ms_per_1000_rows:
        problems.append(f"{report['ms_per_1000_rows']:.1f} ms per 1,000 rows > {max_ms_per_1000_rows}")
    detail = "; ".join(problems) or f"{report['rows']} rows scored, {report['ms_per_1000_rows']:.1f} ms per 1,000"
    return SmokeResult(not problems, detail, report["ms_per_1000_rows"], report["nan"], report["out_of_range"])


def main(argv: list[str] | None = None) -> int:
    from loopline.features import build_features
    from loopline.registry import load_model
    from loopline.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--model", required=True, help="models:/<name>/<version>")
    parser.add_argument("--rows", required=True, help="Parquet file of rows to score")
    args = parser.parse_args(argv)
    spec = load_spec(args.pipeline)
    features = build_features(pd.read_parquet(args.rows), spec.features)
    model = load_model(args.model)
    model.predict(features.head(10))  # warm-up: first-call costs are not per-row latency
    started = time.perf_counter()
    predictions = np.asarray(model.predict(features), dtype=float)
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(json.dumps({"rows": len(features), "nan": int(np.isnan(predictions).sum()),
                      "out_of_range": int(((predictions < 0) | (predictions > 1)).sum()),
                      "ms_per_1000_rows": elapsed_ms * 1000 / max(len(features), 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
