"""Whether one run's predictions come true: the confusion matrix (binary, multiclass) and the
reliability diagram (calibration, every classification task).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from lib.report.base import (
    DIAGONAL,
    FONT_SIZE,
    HEIGHT,
    _binary_score,
    _class_names,
    _join,
    _layout,
    _message_figure,
    _no_outputs_message,
    _pick_epoch,
    _run_and_name,
    _t,
    run_colors,
)
from lib.train import metrics as M
from lib.train.trainer import RunResult, SweepResult


def _final_view(sweep: SweepResult, run: RunResult, epoch: int | None) -> tuple[int, np.ndarray]:
    e = _pick_epoch(run, epoch)
    return e, M.probability_view(run.config, np.asarray(run.snapshots[e], dtype=float))


def confusion_matrix(sweep: SweepResult, run_index: int, epoch: int | None = None) -> go.Figure:
    """Binary/multiclass: counts of true class (rows) vs predicted class (columns) at a snapshot (default: last).

    Predictions are read like the metrics read them (one unit: > 0.5; several: argmax). Columns for units
    beyond the class count (a head with too many units) are named 'unit k'.
    """
    run, name = _run_and_name(sweep, run_index)
    title = f"Confusion matrix — {name}"
    if sweep.task not in ("binary", "multiclass"):
        return _message_figure(title, "A confusion matrix applies to binary and multiclass tasks.")
    if not run.snapshots:
        return _message_figure(title, _no_outputs_message(run))
    e, view = _final_view(sweep, run, epoch)
    if not np.all(np.isfinite(view)):
        return _message_figure(title, f"Outputs at epoch {e} are NaN/inf: no predictions to count.")
    names = [_t(n) for n in _class_names(sweep)]
    y = np.asarray(sweep.y_val).astype(int)
    pred = M.predicted_classes(run.config, view)
    n_pred = max(len(names), int(pred.max()) + 1 if pred.size else 0)
    counts = np.zeros((len(names), n_pred), dtype=int)
    np.add.at(counts, (y, pred), 1)
    cols = names + [f"unit {k}" for k in range(len(names), n_pred)]
    fig = go.Figure(go.Heatmap(
        z=counts, x=cols, y=names, text=counts, texttemplate="%{text}", textfont=dict(size=FONT_SIZE + 1),
        colorscale="Blues", showscale=False, xgap=2, ygap=2,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z} images<extra></extra>"))
    fig.update_yaxes(title_text="true class", autorange="reversed", type="category")
    fig.update_xaxes(title_text="predicted class", type="category", side="bottom")
    acc = float(np.mean(pred == y)) if y.size else float("nan")
    return _layout(fig, title, f"Epoch {e}: correct answers lie on the diagonal (accuracy {acc:.1%}). "
                   "A single filled column: every image gets the same class.",
                   height=max(HEIGHT, 160 + 45 * len(names)), compact=True)  # drawn at half width


def reliability_diagram(sweep: SweepResult, run_index: int, epoch: int | None = None, bins: int = 10) -> go.Figure:
    """Calibration: mean predicted probability vs how often it came true, in equal-width bins, with the diagonal.

    Binary: the positive-class probability; multilabel: every (image, label) pair pooled; multiclass: the
    top class's probability vs whether it was right. Outputs that are not probabilities are refused.
    """
    run, name = _run_and_name(sweep, run_index)
    title = f"Calibration — {name}"
    if sweep.task == "regression":
        return _message_figure(title, "Calibration applies to classification heads.")
    if not run.snapshots:
        return _message_figure(title, _no_outputs_message(run))
    e, view = _final_view(sweep, run, epoch)
    if not np.all(np.isfinite(view)):
        return _message_figure(title, f"Outputs at epoch {e} are NaN/inf: nothing to calibrate.")
    if view.size and (view.min() < -1e-6 or view.max() > 1 + 1e-6):
        return _message_figure(title, _join(f"The outputs are not probabilities ({_t(run.config.activation)} "
                                            f"outputs span {view.min():.3g}…{view.max():.3g}),",
                                            "so there is no calibration to read."))
    y = np.asarray(sweep.y_val)
    if sweep.task == "binary":
        p, hit, what = _binary_score(view), (y.astype(int) == 1).astype(float), "positive-class probability"
    elif sweep.task == "multiclass":
        pred = M.predicted_classes(run.config, view)
        p = view.max(axis=1) if view.shape[1] > 1 else np.where(pred == 1, view[:, 0], 1 - view[:, 0])
        hit, what = (pred == y.astype(int)).astype(float), "probability of the predicted class"
    else:
        if y.ndim != 2 or view.shape[1] != y.shape[1]:
            return _message_figure(title, f"{view.shape[1]} output units for {y.shape[-1]} labels: "
                                          "no probability per label to calibrate.")
        p, hit, what = view.ravel(), (y > 0.5).astype(float).ravel(), "probability per label (all labels pooled)"
    p = np.clip(p, 0.0, 1.0)
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    used = count > 0
    mean_p = np.bincount(idx, weights=p, minlength=bins)[used] / count[used]
    freq = np.bincount(idx, weights=hit, minlength=bins)[used] / count[used]
    ece = float(np.sum(count[used] * np.abs(mean_p - freq)) / max(p.size, 1))
    color = run_colors(len(sweep.runs))[run_index % len(sweep.runs)]
    sizes = 8 + 22 * np.sqrt(count[used] / max(count.max(), 1))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=DIAGONAL, name="perfectly calibrated",
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=mean_p, y=freq, mode="lines+markers", name=f"epoch {e}", customdata=count[used],
                             line=dict(color=color, width=2.5), marker=dict(size=sizes, color=color),
                             hovertemplate="mean predicted %{x:.2f}<br>came true %{y:.1%}<br>%{customdata} "
                                           "predictions<extra></extra>"))
    fig.update_xaxes(title_text=f"mean predicted {what}", range=[-0.02, 1.02], tickformat=".1f")
    fig.update_yaxes(title_text="observed frequency", range=[-0.02, 1.02], tickformat=".0%")
    return _layout(fig, title, f"On the diagonal, 'p = 0.8' comes true 80% of the time. Marker size: how many "
                   f"predictions fall in the bin. Expected calibration error {ece:.3f}.", compact=True)
