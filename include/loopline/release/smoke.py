"""Smoke test before promotion: load a version from the registry in a fresh process and score.

A fresh interpreter proves the version loads with nothing cached in the caller (pickles of
lost classes, missing artifacts, wrong flavour). The caller downloads the version and checks
its files against the recorded digests, before anything loads them; the fresh process gets only that folder and an
environment without the stack's settings and secrets, so a model that misbehaves on load
reaches no service. It scores a sample of holdout rows through
the feature code logged with the version (as production does) and reports NaN, invalid
outputs (outside [0, 1] for a probability, non-finite for a value), and latency per 1,000
rows (after a small warm-up).

The process is started before the caller downloads anything (`FreshProcess`): its interpreter
and libraries load while the registry answers, and it learns which folder to load only once
that folder is verified. It reads one JSON line from stdin and prints one:

    echo '{"model_dir": "<downloaded version>", "rows": "sample.parquet"}' | python -m loopline.release.smoke
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd

from loopline.release.gate import SmokeResult

TIMEOUT_S = 300


KEPT_ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR")


class FreshProcess:
    """A Python process that has loaded Loopline's scoring code and no model yet; `test` gives
    it one. Used as a context manager, so that a caller failing before `test` stops it."""

    def __init__(self) -> None:
        self._process = subprocess.Popen([sys.executable, "-m", "loopline.release.smoke"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         env={k: v for k, v in os.environ.items() if k in KEPT_ENVIRONMENT})

    def __enter__(self) -> FreshProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.communicate()

    def test(self, model_uri: str, local: Path, rows: pd.DataFrame, max_ms_per_1000_rows: float) -> SmokeResult:
        """Load and score `local`, the version's artifacts already checked against their
        recorded digests (loopline.models.store.download_verified); any failure to load or
        score fails the test."""
        with tempfile.TemporaryDirectory(prefix="loopline-smoke-") as tmp:
            sample = Path(tmp) / "sample.parquet"
            rows.to_parquet(sample, index=False)
            request = json.dumps({"model_dir": str(local), "rows": str(sample)}) + "\n"
            try:
                out, err = self._process.communicate(request, timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                return SmokeResult(False, f"{model_uri} did not load and score within {TIMEOUT_S} s in a fresh process")
        if self._process.returncode != 0:
            last = (err.strip().splitlines() or ["no output"])[-1]
            return SmokeResult(False, f"{model_uri} did not load and score in a fresh process: {last}")
        return judged(json.loads(out.strip().splitlines()[-1]), max_ms_per_1000_rows)


def judged(report: dict, max_ms_per_1000_rows: float) -> SmokeResult:
    """The fresh process's report held against the gate's limits."""
    problems = []
    if report["nan"]:
        problems.append(f"{report['nan']} of {report['rows']} predictions are NaN")
    if report["out_of_range"]:
        problems.append(f"{report['out_of_range']} predictions are not valid {report['task']} outputs")
    if report["ms_per_1000_rows"] > max_ms_per_1000_rows:
        problems.append(f"{report['ms_per_1000_rows']:.1f} ms per 1,000 rows > {max_ms_per_1000_rows}")
    detail = "; ".join(problems) or f"{report['rows']} rows scored, {report['ms_per_1000_rows']:.1f} ms per 1,000"
    return SmokeResult(not problems, detail, report["ms_per_1000_rows"], report["nan"], report["out_of_range"])


def main() -> int:
    # What loading any version needs, imported before the version is known (see FreshProcess).
    import mlflow.models  # noqa: F401 (load_local's first import)

    from loopline.core.metrics import valid_output
    from loopline.models.store import load_local

    request = json.loads(sys.stdin.readline())
    rows = pd.read_parquet(request["rows"])
    model = load_local(Path(request["model_dir"]), request["model_dir"])
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
