"""The promotion gate, pure: overall margin, critical slices, and the smoke test's verdict.

A candidate is promoted only if its smoke test passed (it loads from the registry in a fresh
process and scores sensibly), and then either there is no champion yet, or it beats the
champion on the primary metric by the spec's margin, on the same holdout rows, without any
value of a critical slice column (e.g. one merchant category) losing more than that
column's tolerance. The primary metric must be one where higher is better (roc_auc,
average_precision). Slices with too few rows, or only one class, are reported, not judged.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SliceCheck:
    column: str
    value: str
    rows: int
    candidate: float | None
    champion: float | None
    tolerance: float

    @property
    def judged(self) -> bool:
        return self.candidate is not None and self.champion is not None

    @property
    def passed(self) -> bool:
        return not self.judged or self.champion - self.candidate <= self.tolerance

    def describe(self) -> str:
        if not self.judged:
            return f"{self.column}={self.value}: {self.rows} rows, not judged"
        return (f"{self.column}={self.value}: {self.candidate:.4f} vs {self.champion:.4f} "
                f"({self.candidate - self.champion:+.4f}, tolerance {self.tolerance})")


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    detail: str
    ms_per_1000_rows: float | None = None
    nan: int = 0
    out_of_range: int = 0


def slice_checks(holdout: pd.DataFrame, labels: np.ndarray, candidate: np.ndarray, champion: np.ndarray | None,
                 tolerances: dict[str, float], min_rows: int,
                 metric: Callable[[np.ndarray, np.ndarray], float]) -> list[SliceCheck]:
    """The primary metric of candidate and champion for each value of each critical column."""
    checks = []
    for column, tolerance in tolerances.items():
        for value in sorted(holdout[column].dropna().unique()):
            rows = (holdout[column] == value).to_numpy()
            judgeable = champion is not None and rows.sum() >= min_rows and len(np.unique(labels[rows])) == 2
            checks.append(SliceCheck(
                column, str(value), int(rows.sum()),
                metric(candidate[rows], labels[rows]) if judgeable else None,
                metric(champion[rows], labels[rows]) if judgeable else None, tolerance))
    return checks


def decide(candidate: float, champion: float | None, min_improvement: float,
           slices: list[SliceCheck] = (), smoke: SmokeResult | None = None) -> tuple[bool, str]:
    """(promote?, why) from the scores on the same holdout, the slice checks and the smoke test."""
    if smoke is not None and not smoke.passed:
        return False, f"smoke test failed: {smoke.detail}"
    if champion is None:
        return True, "no champion yet"
    if candidate < champion + min_improvement:
        return False, f"does not beat champion by the margin ({candidate - champion:+.4f} < {min_improvement})"
    degraded = [s for s in slices if not s.passed]
    if degraded:
        return False, "critical slice degrades: " + "; ".join(s.describe() for s in degraded)
    return True, f"beats champion by {candidate - champion:+.4f} (margin {min_improvement})"
