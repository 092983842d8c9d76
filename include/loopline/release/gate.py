"""The promotion gate, pure: overall margin, critical slices, and the smoke test's verdict.

A candidate is promoted only if its smoke test passed (it loads from the registry in a fresh
process and scores sensibly), and then either there is no champion yet, or it beats the
champion on the primary metric by the spec's margin, on the same holdout rows, without any
value of a critical slice column (e.g. one merchant category) losing more than that
column's tolerance. "Beats" and "loses" follow the primary metric's direction (loopline.core.metrics:
higher roc_auc is better, lower rmse is). Slices with too few rows, or (binary) only one
class, are reported, not judged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from loopline.core import metrics


@dataclass(frozen=True)
class SliceCheck:
    column: str
    value: str
    rows: int
    candidate: float | None
    champion: float | None
    tolerance: float
    gain: float | None = None  # how much better the candidate is (negative: worse), in the metric's direction

    @property
    def judged(self) -> bool:
        return self.gain is not None

    @property
    def passed(self) -> bool:
        return not self.judged or -self.gain <= self.tolerance

    def describe(self) -> str:
        if not self.judged:
            return f"{self.column}={self.value}: {self.rows} rows, not judged"
        return (f"{self.column}={self.value}: {self.candidate:.4f} vs {self.champion:.4f} "
                f"(gain {self.gain:+.4f}, tolerance {self.tolerance})")


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    detail: str
    ms_per_1000_rows: float | None = None
    nan: int = 0
    out_of_range: int = 0  # invalid outputs: outside [0, 1] for probabilities, non-finite values


@dataclass(frozen=True)
class Metric:
    """The primary metric of a task type: how to compute it and which way is better."""

    task: str
    name: str

    def __call__(self, predicted: np.ndarray, truth: np.ndarray) -> float:
        return metrics.evaluate_one(self.task, self.name, predicted, truth)

    def gain(self, new: float, old: float) -> float:
        return metrics.gain(self.task, self.name, new, old)


def slice_checks(holdout: pd.DataFrame, labels: np.ndarray, candidate: np.ndarray, champion: np.ndarray | None,
                 tolerances: dict[str, float], min_rows: int, metric: Metric) -> list[SliceCheck]:
    """The primary metric of candidate and champion for each value of each critical column."""
    checks = []
    for column, tolerance in tolerances.items():
        for value in sorted(holdout[column].dropna().unique()):
            rows = (holdout[column] == value).to_numpy()
            judged = champion is not None and rows.sum() >= min_rows and metrics.judgeable(metric.task, labels[rows])
            ours = metric(candidate[rows], labels[rows]) if judged else None
            theirs = metric(champion[rows], labels[rows]) if judged else None
            checks.append(SliceCheck(column, str(value), int(rows.sum()), ours, theirs, tolerance,
                                     metric.gain(ours, theirs) if judged else None))
    return checks


def decimals_to_tell_apart(value: float, other: float) -> int:
    """The fewest decimals (4 to 12) at which two numbers read differently, so a refusal never
    reads like `gain +0.0020 < 0.002`."""
    for decimals in range(4, 12):
        if round(value, decimals) != round(other, decimals):
            return decimals
    return 12


def decide(metric: Metric, candidate: float, champion: float | None, min_improvement: float,
           slices: list[SliceCheck] = (), smoke: SmokeResult | None = None) -> tuple[bool, str]:
    """(promote?, why) from the scores on the same holdout, the slice checks and the smoke test."""
    if smoke is not None and not smoke.passed:
        return False, f"smoke test failed: {smoke.detail}"
    if not np.isfinite(candidate):
        return False, f"{metric.name} of the candidate is {candidate}: it cannot be judged"
    if champion is None:
        return True, "no champion yet"
    if not np.isfinite(champion):
        return False, f"{metric.name} of the champion is {champion} on this holdout: the two cannot be compared"
    gain = metric.gain(candidate, champion)
    better = "higher" if metrics.direction(metric.task, metric.name) == metrics.HIGHER else "lower"
    if not gain >= min_improvement:
        d = decimals_to_tell_apart(gain, min_improvement)
        return False, (f"does not beat champion by the margin ({metric.name} {candidate:.{d}f} vs {champion:.{d}f}, "
                       f"gain {gain:+.{d}f} < {min_improvement:.{d}f}; {better} is better)")
    degraded = [s for s in slices if not s.passed]
    if degraded:
        return False, "critical slice degrades: " + "; ".join(s.describe() for s in degraded)
    return True, f"beats champion by {gain:+.4f} {metric.name} (margin {min_improvement}; {better} is better)"
