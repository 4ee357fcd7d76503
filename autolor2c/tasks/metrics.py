"""GLUE metrics from model outputs: accuracy, F1, Matthews correlation, Pearson and Spearman."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from autolor2c.tasks.registry import TaskSpec, get_task


def _correlation(fn: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    def metric(preds: np.ndarray, labels: np.ndarray) -> float:
        # Undefined for fewer than 2 points or constant inputs (e.g. a collapsed model): report 0.
        if len(preds) < 2 or np.ptp(preds) == 0 or np.ptp(labels) == 0:
            return 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(fn(preds, labels)[0])
        return 0.0 if math.isnan(value) else value

    return metric


def _quiet(fn: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    # sklearn warns (and returns 0) when a class is never predicted; that is a valid score here.
    def metric(preds: np.ndarray, labels: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(fn(preds, labels))

    return metric


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda p, y: float(accuracy_score(y, p)),
    "f1": _quiet(lambda p, y: f1_score(y, p, average="binary", pos_label=1, zero_division=0)),
    "f1_macro": _quiet(lambda p, y: f1_score(y, p, average="macro", zero_division=0)),
    "matthews_correlation": _quiet(lambda p, y: matthews_corrcoef(y, p)),
    "pearson": _correlation(pearsonr),
    "spearmanr": _correlation(spearmanr),
}


def _to_numpy(x: Any) -> np.ndarray:
    if type(x).__module__.startswith("datasets.") and hasattr(x, "__getitem__"):
        x = x[:]  # a datasets Column iterates row by row (8 s on SST-2's labels); its slice is one Arrow read
    if hasattr(x, "detach"):  # a torch tensor, possibly bf16 (which numpy cannot hold)
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def compute_metrics(task: TaskSpec | str, predictions: Any, labels: Any) -> dict[str, float]:
    """Every metric of ``task`` as floats.

    ``predictions`` are logits of shape (N, C) (or already-chosen class ids of shape (N,)) for
    classification, and scores of shape (N,) or (N, 1) for regression.
    """
    task = get_task(task)
    preds = _to_numpy(predictions)
    y = _to_numpy(labels).reshape(-1)
    if task.is_regression:
        if preds.ndim == 2 and preds.shape[1] == 1:
            preds = preds[:, 0]
        if preds.ndim != 1:
            raise ValueError(f"regression predictions must have shape (N,) or (N, 1), got {preds.shape}")
        preds, y = preds.astype(np.float64), y.astype(np.float64)
    else:
        if preds.ndim == 2:
            preds = preds.argmax(axis=-1)
        elif preds.ndim != 1:
            raise ValueError(f"classification predictions must have shape (N, C) or (N,), got {preds.shape}")
        preds, y = preds.astype(np.int64), y.astype(np.int64)
    if len(preds) != len(y):
        raise ValueError(f"{len(preds)} predictions for {len(y)} labels")
    if len(y) == 0:
        raise ValueError("no predictions to score")
    return {name: METRICS[name](preds, y) for name in task.metrics}


def trivial_score(task: TaskSpec | str, train_labels: Any, eval_labels: Any) -> float:
    """The primary score of a model that ignores its input: the training set's majority class (its mean,
    for regression) predicted for every row. A trained adapter that does not beat it learned nothing."""
    task = get_task(task)
    train_y = _to_numpy(train_labels).reshape(-1)
    eval_y = _to_numpy(eval_labels).reshape(-1)
    if task.is_regression:
        preds = np.full(len(eval_y), float(np.mean(train_y)))
    else:
        values, counts = np.unique(train_y.astype(np.int64), return_counts=True)
        preds = np.full(len(eval_y), int(values[np.argmax(counts)]))
    score = compute_metrics(task, preds, eval_y)[task.primary_metric]
    return 0.0 if not np.isfinite(score) else float(score)
