"""Task metrics computed from what predict() returns (not from what the loss saw)."""

from __future__ import annotations

import numpy as np

from lib.heads.config import CE_LOSSES, HeadConfig

# Kernels differ between CPUs in the last bits: softmax over one unit returns 1.0 with TensorFlow's
# oneDNN kernels and 0.99999994 (1 - 2**-24, one float32 step below 1) with its Eigen kernels, which
# TensorFlow uses on CPUs without AVX-512. "Equal to float precision" means within a few such steps.
FLOAT32_STEPS = 4


def float_equal(x: np.ndarray | float, value: float, steps: int = FLOAT32_STEPS) -> np.ndarray:
    """Where x equals value to float32 precision: within `steps` float32 rounding steps of it."""
    tol = steps * float(np.finfo(np.float32).eps) * max(1.0, abs(value))
    return np.abs(np.asarray(x, dtype=np.float64) - value) <= tol


def probability_view(config: HeadConfig, outputs: np.ndarray) -> np.ndarray:
    """Outputs as a user would read them: logits (linear + from_logits=True) turned into probabilities,
    everything else exactly as predict() returned it."""
    if not (config.from_logits and config.activation == "linear" and config.loss in CE_LOSSES):
        return outputs
    if config.loss == "binary_crossentropy" or outputs.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-np.clip(outputs, -60, 60)))
    z = outputs - outputs.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def binary_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC by ranks (ties averaged); None when only one class is present."""
    y = y.astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0 or not np.all(np.isfinite(score)):
        return None
    order = np.argsort(score, kind="mergesort")
    # ties share the mean of their 1-based ranks (vectorised: it runs for every head and epoch)
    _, group, counts = np.unique(score[order], return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = np.empty(len(score))
    ranks[order] = ((ends - counts + ends - 1) / 2 + 1)[group.reshape(-1)]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def predicted_classes(config: HeadConfig, view: np.ndarray) -> np.ndarray:
    """Class predictions for binary/multiclass: one unit -> output > 0.5, several -> argmax."""
    if view.shape[1] == 1:
        return (view[:, 0] > 0.5).astype(int)
    return np.argmax(view, axis=1)


def task_metrics(config: HeadConfig, outputs: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """The task's validation metrics from raw predict() outputs and the true targets."""
    view = probability_view(config, outputs)
    task = config.task
    if not np.all(np.isfinite(view)):
        return {k: None for k in metric_names(task)}
    if task in ("binary", "multiclass"):
        pred = predicted_classes(config, view)
        out = {"val_accuracy": float(np.mean(pred == y))}
        if task == "binary":
            score = view[:, 0] if view.shape[1] == 1 else view[:, min(1, view.shape[1] - 1)]
            out["val_auc"] = binary_auc(y, score)
        return out
    if task == "multilabel":
        if view.shape[1] != y.shape[1]:
            return {k: None for k in metric_names(task)}
        pred = view > 0.5
        truth = y > 0.5
        return {"val_exact_match": float(np.mean(np.all(pred == truth, axis=1))),
                "val_hamming_accuracy": float(np.mean(pred == truth))}
    return {"val_mae": float(np.mean(np.abs(outputs[:, 0] - y)))}


def metric_names(task: str) -> tuple[str, ...]:
    return {"binary": ("val_accuracy", "val_auc"), "multiclass": ("val_accuracy",),
            "multilabel": ("val_exact_match", "val_hamming_accuracy"), "regression": ("val_mae",)}[task]


def primary_metric(task: str) -> str:
    """The metric the UI plots and lessons compare."""
    return metric_names(task)[0]


def majority_rate(task: str, y: np.ndarray) -> float | None:
    """Accuracy of always predicting the most common class (the floor a head must beat)."""
    if task not in ("binary", "multiclass") or len(y) == 0:
        return None
    return float(np.bincount(y.astype(int)).max() / len(y))
