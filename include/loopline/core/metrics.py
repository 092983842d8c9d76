"""Task types: their metrics, each with its direction (what "better" means for the gate, the
critical slices, the smoke test and automatic rollback), and the model types that learn
them. Pure functions, no I/O.

    binary      roc_auc (higher), pr_auc (higher), log_loss (lower)   on probabilities
    regression  rmse (lower), mae (lower), r2 (higher)                on values
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported on use: specs (and so DAG files) load without it
    import numpy as np

HIGHER, LOWER = "higher", "lower"
MODEL_TYPES = {  # model type -> the task types it learns (loopline.models.types implements them)
    "lightgbm": ("binary", "regression"),
    "sklearn_logistic": ("binary",),
    "sklearn_ridge": ("regression",),
}


def _roc_auc(predicted: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, predicted))


def _pr_auc(predicted: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(truth, predicted))


def _log_loss(predicted: np.ndarray, truth: np.ndarray) -> float:
    import numpy as np
    from sklearn.metrics import log_loss

    return float(log_loss(truth, np.clip(predicted, 1e-7, 1 - 1e-7), labels=[0, 1]))


def _rmse(predicted: np.ndarray, truth: np.ndarray) -> float:
    import numpy as np

    return float(np.sqrt(np.mean((predicted - truth) ** 2)))


def _mae(predicted: np.ndarray, truth: np.ndarray) -> float:
    import numpy as np

    return float(np.mean(np.abs(predicted - truth)))


def _r2(predicted: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(truth, predicted))


METRICS: dict[str, dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], float]]]] = {
    "binary": {"roc_auc": (HIGHER, _roc_auc), "pr_auc": (HIGHER, _pr_auc), "log_loss": (LOWER, _log_loss)},
    "regression": {"rmse": (LOWER, _rmse), "mae": (LOWER, _mae), "r2": (HIGHER, _r2)},
}


def names(task: str) -> list[str]:
    return list(METRICS[task])


def direction(task: str, metric: str) -> str:
    return METRICS[task][metric][0]


def evaluate(task: str, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Every metric of the task type, for predictions against the true outcomes."""
    import numpy as np

    predicted, truth = np.asarray(predicted, dtype=float), np.asarray(truth, dtype=float)
    return {name: compute(predicted, truth) for name, (_, compute) in METRICS[task].items()}


def score(task: str, metric: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """One metric as a function of (predicted, truth)."""
    return lambda predicted, truth: evaluate_one(task, metric, predicted, truth)


def evaluate_one(task: str, metric: str, predicted: np.ndarray, truth: np.ndarray) -> float:
    import numpy as np

    return METRICS[task][metric][1](np.asarray(predicted, dtype=float), np.asarray(truth, dtype=float))


def gain(task: str, metric: str, new: float, old: float) -> float:
    """How much better `new` is than `old` (negative: worse), whichever way the metric points."""
    return new - old if direction(task, metric) == HIGHER else old - new


def judgeable(task: str, truth: np.ndarray) -> bool:
    """Can a metric be computed on these outcomes? (A one-class binary sample cannot be ranked.)"""
    import numpy as np

    return len(truth) > 0 and (task != "binary" or len(np.unique(truth)) == 2)


def valid_output(task: str, predicted: np.ndarray) -> np.ndarray:
    """Which predictions are valid outputs for the task: finite, and in [0, 1] for probabilities."""
    import numpy as np

    predicted = np.asarray(predicted, dtype=float)
    finite = np.isfinite(predicted)
    return finite & (predicted >= 0) & (predicted <= 1) if task == "binary" else finite
