"""What predict() returned, for one run: its validation outputs before and after training (histograms
split by the truth; predicted vs true for regression) and each image's sum of outputs.

Probabilities are always read through `metrics.probability_view`, so logits heads are shown as the
probabilities they stand for.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lib.heads.config import CE_LOSSES, HeadConfig
from lib.report.base import (
    DIAGONAL,
    FONT_SIZE,
    HEIGHT,
    _binary_score,
    _class_names,
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

# Colours for "negative / positive" (true class, label present) inside one run's figures.
NEG_COLOR, POS_COLOR = "#4c72b0", "#dd8452"

# 41 bins centred on 0, 0.025, ..., 1: outputs pinned at exactly 0 or 1 get a bin of their own.
_PROB_BINS = dict(start=-0.0125, end=1.0125, size=0.025)
_PROB_RANGE = [-0.02, 1.02]


def _is_probability(config: HeadConfig) -> bool:
    """Whether probability_view of this head's outputs lies in [0, 1] by construction."""
    if config.activation in ("sigmoid", "softmax"):
        return True
    return config.from_logits and config.activation == "linear" and config.loss in CE_LOSSES


def _facets(sweep: SweepResult, view: np.ndarray) -> tuple[list[tuple[str, list[tuple[str, np.ndarray, str]]]], str]:
    """Histogram facets for classification outputs: [(facet title, [(group, values, colour)])], x-axis title."""
    y, names, task = np.asarray(sweep.y_val), _class_names(sweep), sweep.task
    units = view.shape[1]
    if task == "binary":
        score = _binary_score(view)
        yb = y.astype(int) == 1
        which = "" if units == 1 else f" (unit {min(1, units - 1)})"
        return ([("", [(f"true: {_t(names[0])}", score[~yb], NEG_COLOR),
                       (f"true: {_t(names[1])}", score[yb], POS_COLOR)])],
                f"output for '{_t(names[1])}'{which}")
    if task == "multiclass":
        if units != len(names):
            return [("", [("all outputs", view.ravel(), NEG_COLOR)])], f"output ({units} units for {len(names)} classes)"
        yi = y.astype(int)
        mask = np.zeros(view.shape, dtype=bool)
        mask[np.arange(len(yi)), yi] = True
        return ([("", [("unit of the true class", view[mask], POS_COLOR),
                       ("units of the other classes", view[~mask], NEG_COLOR)])], "output per unit")
    # multilabel
    truth = np.asarray(y) > 0.5
    if truth.ndim != 2 or units != truth.shape[1]:
        return [("", [("all outputs", view.ravel(), NEG_COLOR)])], f"output ({units} units for {len(names)} labels)"
    if units > 4:
        return ([("all labels pooled", [("label present", view[truth], POS_COLOR),
                                        ("label absent", view[~truth], NEG_COLOR)])], "output per label")
    return ([(_t(names[k]), [("label present", view[truth[:, k], k], POS_COLOR),
                             ("label absent", view[~truth[:, k], k], NEG_COLOR)]) for k in range(units)],
            "output per label")


def _panel_note(fig: go.Figure, text: str, row: int, col: int) -> None:
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="x domain", yref="y domain", showarrow=False,
                       font=dict(size=FONT_SIZE, color="#b22222"), row=row, col=col)


def _empty_panel_text(run: RunResult, epoch: int) -> str:
    if epoch < 0:
        return "not recorded"
    return "outputs are NaN/inf<br>(the run diverged)" if run.status == "diverged" else "outputs are NaN/inf"


def _nonfinite_text(values: np.ndarray) -> str:
    bad = int(np.size(values) - np.isfinite(values).sum())
    return f"{bad} NaN/inf value{'s' if bad != 1 else ''} not drawn" if bad else ""


def _before_after(run: RunResult, epoch: int | None) -> list[tuple[str, int, np.ndarray]]:
    """[(panel title, epoch, outputs)] for 'before' and 'after' (epoch -1: a placeholder, nothing recorded)."""
    after = _pick_epoch(run, epoch)
    panels = []
    if 0 in run.snapshots:
        panels.append(("before training (epoch 0)", 0, run.snapshots[0]))
    label = f"after training (epoch {after})" if after else "never trained (epoch 0)"
    panels.append((label, after, run.snapshots[after]))
    if len(panels) == 1:
        panels.insert(0, ("before training: not recorded", -1, np.full_like(run.snapshots[after], np.nan)))
    return panels


def output_histograms(sweep: SweepResult, run_index: int, epoch: int | None = None) -> go.Figure:
    """One run's validation outputs before training (epoch 0) and at a snapshot epoch (default: the last).

    Classification: histograms of the probability view, split by the truth (binary: by true class;
    multiclass: the true class's unit vs the other units; multilabel: per label, present vs absent).
    The x range is fixed to [0, 1] when the outputs are probabilities by construction.
    Regression: predicted vs true scatter with the y = x diagonal.
    """
    run, name = _run_and_name(sweep, run_index)
    title = f"Outputs of {name} — before vs after training"
    if not run.snapshots:
        return _message_figure(title, _no_outputs_message(run))
    panels = _before_after(run, epoch)
    if sweep.task == "regression":
        return _regression_scatter(sweep, run, run_index, name, panels)

    views = [M.probability_view(run.config, np.asarray(out, dtype=float)) for _, _, out in panels]
    facet_sets = [_facets(sweep, v) for v in views]
    x_title = facet_sets[-1][1]
    n_rows = len(facet_sets[-1][0])
    fixed = _is_probability(run.config)
    titles = []
    for r in range(n_rows):
        for (panel_title, _, _) in panels:
            facet = facet_sets[-1][0][r][0]
            titles.append(f"{panel_title}{' — ' + facet if facet else ''}")
    fig = make_subplots(rows=n_rows, cols=2, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=min(0.12, 0.3 / max(n_rows - 1, 1)) if n_rows > 1 else 0.1)
    # Multiclass compares one value per image with K-1 per image: compare shapes (percent), not counts.
    histnorm = "percent" if sweep.task == "multiclass" else ""
    shown: set[str] = set()
    for c, (facets, _) in enumerate(facet_sets, start=1):
        for r, (_, groups) in enumerate(facets, start=1):
            if not any(np.isfinite(vals).any() for _, vals, _ in groups):
                _panel_note(fig, _empty_panel_text(run, panels[c - 1][1]), r, c)
            for group, vals, color in groups:
                finite = vals[np.isfinite(vals)]
                fig.add_trace(go.Histogram(
                    x=finite, name=group, legendgroup=group, showlegend=group not in shown,
                    marker=dict(color=color, line=dict(width=0)), opacity=0.65,
                    xbins=_PROB_BINS if fixed else None, nbinsx=None if fixed else 40, histnorm=histnorm,
                    bingroup=f"r{r}c{c}",
                    hovertemplate=f"{group}<br>output %{{x}}<br>%{{y:.3g}}{'%' if histnorm else ' images'}<extra></extra>"), row=r, col=c)
                shown.add(group)
            note = _nonfinite_text(np.concatenate([v.ravel() for _, v, _ in groups]))
            if note and any(np.isfinite(v).any() for _, v, _ in groups):
                fig.add_annotation(text=note, x=0.98, y=0.98, xref="x domain", yref="y domain", showarrow=False,
                                   xanchor="right", font=dict(size=FONT_SIZE - 2, color="#b22222"), row=r, col=c)
    fig.update_layout(barmode="overlay")
    if fixed:
        fig.update_xaxes(range=_PROB_RANGE)
    fig.update_xaxes(title_text=x_title, row=n_rows)
    fig.update_yaxes(title_text="% of each group" if histnorm else "images")
    converted = run.config.from_logits and run.config.activation == "linear" and run.config.loss in CE_LOSSES
    hint = ("Logits converted to probabilities. " if converted else "") + \
        "A useful head pushes the two colours apart; a single spike means every image gets the same answer."
    return _layout(fig, title, hint, height=max(HEIGHT, 90 + 260 * n_rows), barmode="overlay")


def _regression_scatter(sweep: SweepResult, run: RunResult, run_index: int, name: str,
                        panels: list[tuple[str, int, np.ndarray]]) -> go.Figure:
    y = np.asarray(sweep.y_val, dtype=float).ravel()
    color = run_colors(len(sweep.runs))[run_index % len(sweep.runs)]
    unit = f" ({_t(sweep.unit)})" if sweep.unit else ""
    target = _t(sweep.label_names[0]) if sweep.label_names else "target"
    fig = make_subplots(rows=1, cols=2, subplot_titles=[p[0] for p in panels], horizontal_spacing=0.1)
    lo, hi = (float(np.nanmin(y)), float(np.nanmax(y))) if y.size else (0.0, 1.0)
    for c, (_, _, out) in enumerate(panels, start=1):
        pred = np.asarray(out, dtype=float)[:, 0]
        keep = np.isfinite(pred) & np.isfinite(y)
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=DIAGONAL, name="perfect prediction (y = x)",
                                 legendgroup="diag", showlegend=c == 1, hoverinfo="skip"), row=1, col=c)
        fig.add_trace(go.Scatter(x=y[keep], y=pred[keep], mode="markers", name="validation images",
                                 legendgroup="pts", showlegend=c == 1,
                                 marker=dict(color=color, size=8, opacity=0.7, line=dict(width=0.5, color="white")),
                                 hovertemplate=f"true %{{x:.4g}}{unit}<br>predicted %{{y:.4g}}{unit}<extra></extra>"),
                      row=1, col=c)
        if not keep.any():
            _panel_note(fig, _empty_panel_text(run, panels[c - 1][1]), 1, c)
        elif not keep.all():
            fig.add_annotation(text=_nonfinite_text(pred), x=0.98, y=0.02, xref="x domain", yref="y domain",
                               showarrow=False, xanchor="right", yanchor="bottom",
                               font=dict(size=FONT_SIZE - 2, color="#b22222"), row=1, col=c)
    fig.update_xaxes(title_text=f"true {target}{unit}")
    fig.update_yaxes(title_text=f"predicted{unit}", col=1)
    return _layout(fig, f"Predicted vs true — {name}", "Points on the dashed diagonal are perfect; a flat band means "
                   "the head predicts the same value for everything.")


def output_sum_histogram(sweep: SweepResult, run_index: int) -> go.Figure:
    """Per-image sum of the outputs (probability view) before and after training.

    Softmax rows always sum to 1 to float precision (a spike at 1.0 — over one unit, that is also every output);
    independent sigmoids need not.
    """
    run, name = _run_and_name(sweep, run_index)
    title = f"Sum of each image's outputs — {name}"
    if sweep.task == "regression":
        return _message_figure(title, "Output sums only mean something for classification heads.")
    if not run.snapshots:
        return _message_figure(title, _no_outputs_message(run))
    panels = _before_after(run, None)
    color = run_colors(len(sweep.runs))[run_index % len(sweep.runs)]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[p[0] for p in panels], horizontal_spacing=0.1)
    all_sums = [M.probability_view(run.config, np.asarray(out, dtype=float)).sum(axis=1) for _, _, out in panels]
    both = np.concatenate(all_sums)
    both = both[np.isfinite(both)]
    # Shared bins that always include 0 and 1, centred so 1.0 (and 1 - 2**-24) sits in the middle of its bin.
    lo, hi = min(float(both.min()), 0.0) if both.size else 0.0, max(float(both.max()), 1.0) if both.size else 1.0
    size = (hi - lo) / 40
    bins = dict(start=lo - size / 2, end=hi + size / 2, size=size)
    for c, sums in enumerate(all_sums, start=1):
        finite = sums[np.isfinite(sums)]
        fig.add_trace(go.Histogram(x=finite, name="images", showlegend=False, xbins=bins,
                                   marker=dict(color=color, line=dict(width=0)),
                                   hovertemplate="sum %{x}<br>%{y} images<extra></extra>"), row=1, col=c)
        fig.add_vline(x=1.0, line=dict(color="#333333", dash="dot", width=2), row=1, col=c)
        if not finite.size:
            _panel_note(fig, "outputs are NaN/inf", 1, c)
        elif np.ptp(finite) < 1e-6:
            fig.add_annotation(text=f"every image: {finite[0]:.4g}", x=0.02, y=0.98, xref="x domain",
                               yref="y domain", showarrow=False, xanchor="left", yanchor="top",
                               font=dict(size=FONT_SIZE, color="#b22222"), row=1, col=c)
    fig.update_xaxes(title_text="sum of outputs per image", range=[lo - size, hi + size])
    fig.update_yaxes(title_text="images", col=1)
    units = run.snapshots[max(run.snapshots)].shape[1]
    hint = ("Dotted line: sum = 1. Single-label heads should sum to 1; "
            "a spike at 1.0 with one unit is softmax over one unit: it can only say 1." if units == 1 and
            run.config.activation == "softmax" else
            "Dotted line: sum = 1. Softmax sums to 1 (to float precision); sigmoid outputs vary (multilabel: they should).")
    return _layout(fig, title, hint)
