"""Smoke test before promotion: load a version from the registry in a fresh process and score.

A fresh interpreter proves the version loads with nothing cached in the caller (pickles of
lost classes, missing artifacts, wrong flavour). The caller downloads the version and checks
its files against the recorded digests, before anything loads them; the fresh process gets only that folder and an
environment without the stack's settings and secrets, so a model that misbehaves on load
reaches no service. It scores a sample of holdout rows through
the feature code logged with the version (as production does) and reports NaN, invalid
outputs (outside [0, 1] for a probability, non-finite for a value), and latency per 1,000
rows (after a small warm-up).

    python -m loopline.release.smoke --model-dir <downloaded version> --rows sample.parquet
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.release.gate import SmokeResult

TIMEOUT_S = 300


KEPT_ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR")


def smoke_test(model_uri: str, local: Path, rows: pd.DataFrame, max_ms_per_1000_rows: float) -> SmokeResult:
    """Run the check in a fresh Python process on `local`, the version's artifacts already
    checked against their recorded digests (loopline.models.store.download_verified); any
    failure to load or score fails the test."""
    with tempfile.TemporaryDirectory(prefix="loopline-smoke-") as tmp:
        sample = Path(tmp) / "sample.parquet"
        rows.to_parquet(sample, index=False)
        done = subprocess.run([sys.executable, "-m", "loopline.release.smoke", "--model-dir", str(local),
                               "--rows", str(sample)], capture_output=True, text=True, timeout=TIMEOUT_S,
                              env={k: v for k, v in os.environ.items() if k in KEPT_ENVIRONMENT})
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return SmokeResult(False, f"{model_uri} did not load and score in a fresh process: {last}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    problems = []
    if report["nan"]:
        problems.append(f"{report['nan']} of {report['rows']} predictions are NaN")
    if report["out_of_range"]:
        problems.append(f"{report['out_of_range']} predictions are not valid {report['task']} outputs")
    if report["ms_per_1000_rows"] > max_ms_per_1000_rows:
        problems.append(f"{report['ms_per_1000_rows']:.1f} ms per 1,000 rows > {max_ms_per_1000_rows}")
    detail = "; ".join(problems) or f"{report['rows']} rows scored, {report['ms_per_1000_rows']:.1f} ms per 1,000"
    return SmokeResult(not problems, detail, report["ms_per_1000_rows"], report["nan"], report["out_of_range"])


def main(argv: list[str] | None = None) -> int:
    from loopline.core.metrics import valid_output
    from loopline.models.store import load_local

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", required=True, help="a registered version's verified artifacts")
    parser.add_argument("--rows", required=True, help="Parquet file of entity rows to score")
    args = parser.parse_args(argv)
    rows = pd.read_parquet(args.rows)
    model = load_local(Path(args.model_dir), args.model_dir)
    model.score(rows.head(10))  # warm-up: first-call costs are not per-row latency
    started = time.perf_counter()
    predictions = model.score(rows)
    elapsed_ms = (time.perf_counter() - started) * 1000
    nan = np.isnan(predictions)
    print(json.dumps({"rows": len(rows), "task": model.task, "nan": int(nan.sum()),
                      "out_of_range": int((~valid_output(model.task, predictions) & ~nan).sum()),
                      "ms_per_1000_rows": elapsed_ms * 1000 / max(len(rows), 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
