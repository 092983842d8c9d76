"""Drift: compare the features of a scored batch with the champion's training reference.

The reference profile (bin edges and proportions per feature) is computed at training time
and stored with the model's MLflow run; PSI (population stability index) per feature says
how far today's batch moved. Pure functions: no I/O here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PSI_FLOOR = 1e-4  # keeps log() finite when a bin is empty on one side
NUMERIC_BINS = 10


def profile(frame: pd.DataFrame, columns: list[str]) -> dict[str, dict]:
    """Reference distribution of each column: quantile bins for numbers, shares for categories."""
    result: dict[str, dict] = {}
    for column in columns:
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object:
            shares = values.astype("string").fillna("<missing>").value_counts(normalize=True)
            result[column] = {"kind": "categorical", "shares": {str(k): float(v) for k, v in shares.items()}}
        else:
            inner = np.unique(np.nanquantile(values.to_numpy(dtype=float), np.linspace(0, 1, NUMERIC_BINS + 1))[1:-1])
            result[column] = {"kind": "numeric", "edges": inner.tolist(), "shares": _bin_shares(values, inner)}
    return result


def _bin_shares(values: pd.Series, inner_edges: np.ndarray) -> list[float]:
    counts = np.bincount(np.searchsorted(inner_edges, values.to_numpy(dtype=float), side="right"),
                         minlength=len(inner_edges) + 1)
    return (counts / max(counts.sum(), 1)).tolist()


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index: 0 = same distribution, > 0.2 is commonly read as drift."""
    e = np.clip(np.asarray(expected, dtype=float), PSI_FLOOR, None)
    a = np.clip(np.asarray(actual, dtype=float), PSI_FLOOR, None)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class Comparison:
    """One column's reference and current distributions over the same bins, and their PSI."""
    kind: str  # numeric | categorical
    bins: list[str]  # a label per bin: "< 3.2", "3.2 – 7.5", "≥ 7.5"; or the category
    reference: list[float]  # shares, summing to 1
    current: list[float]
    psi: float


def compare(reference: dict[str, dict], frame: pd.DataFrame) -> dict[str, Comparison]:
    """Every profiled column of `frame` against the reference profile, bin by bin."""
    comparisons = {}
    for column, ref in reference.items():
        values = frame[column]
        if ref["kind"] == "numeric":
            edges = np.asarray(ref["edges"])
            bins, expected, actual = _numeric_labels(edges), ref["shares"], _bin_shares(values, edges)
        else:
            shares = values.astype("string").fillna("<missing>").value_counts(normalize=True)
            bins = sorted(set(ref["shares"]) | set(shares.index))
            expected, actual = [ref["shares"].get(c, 0.0) for c in bins], [float(shares.get(c, 0.0)) for c in bins]
        comparisons[column] = Comparison(ref["kind"], bins, list(expected), list(actual), psi(expected, actual))
    return comparisons


def drift_scores(reference: dict[str, dict], frame: pd.DataFrame) -> dict[str, float]:
    """PSI of every profiled column of `frame` against the reference profile."""
    return {column: comparison.psi for column, comparison in compare(reference, frame).items()}


def _numeric_labels(inner_edges: np.ndarray) -> list[str]:
    edges = [f"{edge:.4g}" for edge in inner_edges]
    if not edges:
        return ["all values"]
    return [f"< {edges[0]}", *(f"{low} – {high}" for low, high in zip(edges, edges[1:])), f"≥ {edges[-1]}"]
