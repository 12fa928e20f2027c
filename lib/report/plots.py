"""Every figure of the Results view, as plotly figures built from a SweepResult.

Each function returns a `plotly.graph_objects.Figure` and copes with whatever a sweep holds: runs Keras
refused (no history, no outputs), runs that diverged (short histories, NaN/inf values: non-finite
points are dropped and the divergence epoch is marked with an ✕), and 1 to 12 runs. Run i has the
same colour in every figure (`run_colors`). Probabilities are always read through
`metrics.probability_view`, so logits heads are shown as the probabilities they stand for.

Text that comes from the user (head names, class names) is HTML-escaped before it reaches plotly,
whose labels accept a subset of HTML; `html_report` escapes everything it writes itself.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from lib.heads.config import CE_LOSSES, HeadConfig, default_head
from lib.train import metrics as M
from lib.train.trainer import RunResult, SweepResult

HEIGHT = 380
FONT_SIZE = 15
TITLE_SIZE = 19
TEMPLATE = "plotly_white"
# Plotly's default, so new figures start with it for free: setting it on each figure re-validated the
# whole template, 10 ms a figure and a fifth of a results page's server time under load.
pio.templates.default = TEMPLATE
# Twelve colours that stay distinct when projected (Tableau 10 + two darker extras): run i -> PALETTE[i].
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#637939")
# Colours for "negative / positive" (true class, label present) inside one run's figures.
NEG_COLOR, POS_COLOR = "#4c72b0", "#dd8452"
DIAGONAL = dict(color="#555555", dash="dash", width=1.5)
MAJORITY_TEXT = "always the most common class"
# 41 bins centred on 0, 0.025, ..., 1: outputs pinned at exactly 0 or 1 get a bin of their own.
_PROB_BINS = dict(start=-0.0125, end=1.0125, size=0.025)
_PROB_RANGE = [-0.02, 1.02]
METRIC_TITLES = {
    "val_accuracy": "validation accuracy",
    "val_auc": "validation AUC",
    "val_exact_match": "validation exact-match accuracy (every label right)",
    "val_hamming_accuracy": "validation per-label accuracy",
    "val_mae": "validation mean absolute error",
}


# ----------------------------------------------------------------------------------- shared pieces
def run_colors(n: int) -> list[str]:
    """The colour of runs 0..n-1, the same in every figure (cycles after 12)."""
    return [PALETTE[i % len(PALETTE)] for i in range(max(0, n))]


def run_names(sweep: SweepResult) -> list[str]:
    """Legend names, plain text: the config label, '(diverged @ k)' / '(error)' when it applies, and
    '#i' when two runs would otherwise share a name."""
    labels = [r.label for r in sweep.runs]
    names = []
    for i, run in enumerate(sweep.runs):
        name = run.label
        if labels.count(run.label) > 1:
            name += f" #{i + 1}"
        if run.status == "diverged":
            name += f" (diverged @ {run.diverged_epoch})"
        elif run.status == "error":
            name += " (error)"
        names.append(name)
    return names


def _t(text: object) -> str:
    """User text made safe for plotly's HTML-like labels (plotly turns the entities back into characters)."""
    return html.escape(str(text), quote=False)


COMPACT_CHARS = 55  # subtitle characters per line in a half-width chart (plotly does not wrap titles)


def _layout(fig: go.Figure, title: str, subtitle: str = "", height: int = HEIGHT, compact: bool = False,
            **kw) -> go.Figure:
    """Title, fonts, margins and template. compact=True for charts drawn in half a page's width: the
    subtitle is wrapped and the legend goes under the plot, which then keeps the whole width (a legend
    beside it left a plot too narrow for its own labels)."""
    title_d: dict = dict(text=title, font=dict(size=TITLE_SIZE), x=0.01, xanchor="left")
    lines = _wrap(subtitle, COMPACT_CHARS) if compact and subtitle else [subtitle] if subtitle else []
    if lines:
        title_d["subtitle"] = dict(text="<br>".join(lines), font=dict(size=FONT_SIZE - 1, color="#555555"))
    if pio.templates.default != TEMPLATE:  # something changed plotly's default after this module set it
        kw["template"] = TEMPLATE
    top = 70 + 26 * len(lines) + (4 if lines else 0)
    legend: dict = dict(font=dict(size=FONT_SIZE - 1))
    bottom = 60
    if compact:
        # legend rows at ~400 px of width: ~8 px a character plus the line sample, per entry
        widths = [50 + 8 * len(t.name or "") for t in fig.data if t.showlegend is not False]
        rows = max(1, math.ceil(sum(widths) / 400))
        legend.update(orientation="h", yanchor="top", y=-0.22, x=0, xanchor="left")
        bottom += 24 * rows
        height += 24 * rows + 26 * max(0, len(lines) - 1)
    fig.update_layout(
        height=height, title=title_d, font=dict(size=FONT_SIZE), legend=legend,
        hoverlabel=dict(font=dict(size=FONT_SIZE - 1)), margin=dict(l=70, r=30, t=top, b=bottom), **kw)
    return fig


def _message_figure(title: str, message: str, height: int = HEIGHT) -> go.Figure:
    """A chart-sized figure that says why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=FONT_SIZE + 1, color="#444444"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height=height)


def _floats(values: Sequence) -> np.ndarray:
    """A history list (which may hold None for metrics of non-finite outputs) as floats with NaN."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _finite_xy(xs: Sequence, ys: Sequence, positive: bool = False) -> tuple[list, list]:
    x = np.asarray(list(xs), dtype=float)
    y = _floats(ys)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    keep = np.isfinite(x) & np.isfinite(y)
    if positive:
        keep &= y > 0
    return x[keep].tolist(), y[keep].tolist()


def _epoch_axis(fig: go.Figure, sweep: SweepResult) -> None:
    fig.update_xaxes(title_text="epoch", dtick=max(1, math.ceil(sweep.epochs / 10)),
                     range=[0.5, max(sweep.epochs, 1) + 0.5])


def _is_probability(config: HeadConfig) -> bool:
    """Whether probability_view of this head's outputs lies in [0, 1] by construction."""
    if config.activation in ("sigmoid", "softmax"):
        return True
    return config.from_logits and config.activation == "linear" and config.loss in CE_LOSSES


def _error_note(sweep: SweepResult) -> str:
    names = run_names(sweep)
    refused = [_t(names[i]) for i, r in enumerate(sweep.runs) if r.status == "error" and not r.history.get("epoch")]
    return f"Not trained (Keras refused the head): {', '.join(refused)}" if refused else ""


def _join(*parts: str) -> str:
    return "<br>".join(p for p in parts if p)


# ------------------------------------------------------------------------------------- curves
def _add_curves(fig: go.Figure, sweep: SweepResult, key: str, *, dash: str = "solid", show_legend: bool = True,
                positive: bool = False, fmt: str = ".4g", what: str = "") -> list[str]:
    """One trace per run that trained at all (empty when nothing finite is left), ✕ on a diverged run's
    last point. Returns the (escaped) names of runs that left nothing to draw."""
    colors, names = run_colors(len(sweep.runs)), run_names(sweep)
    empty = []
    for i, run in enumerate(sweep.runs):
        epochs = run.history.get("epoch", [])
        if not epochs:
            continue
        x, y = _finite_xy(epochs, run.history.get(key, []), positive=positive)
        if not x:
            empty.append(_t(names[i]))
        symbols, sizes = ["circle"] * len(x), [6] * len(x)
        if run.status == "diverged" and x:
            symbols[-1], sizes[-1] = "x", 14
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines+markers", name=_t(names[i]), legendgroup=f"run{i}", showlegend=show_legend,
            line=dict(color=colors[i], dash=dash, width=2.5), marker=dict(symbol=symbols, size=sizes, color=colors[i]),
            hovertemplate=f"{_t(names[i])}<br>epoch %{{x}}<br>{what or key} %{{y:{fmt}}}<extra></extra>"))
    return empty


def _empty_note(names: Sequence[str]) -> str:
    return f"No finite value to draw: {', '.join(dict.fromkeys(names))}" if names else ""


def _mark_divergence(fig: go.Figure, sweep: SweepResult) -> None:
    """A dotted vertical line and an ✕ label at each epoch where a run diverged."""
    colors = run_colors(len(sweep.runs))
    by_epoch: dict[int, list[int]] = {}
    for i, run in enumerate(sweep.runs):
        if run.status == "diverged" and run.diverged_epoch is not None:
            by_epoch.setdefault(int(run.diverged_epoch), []).append(i)
    for k, (epoch, idx) in enumerate(sorted(by_epoch.items())):
        text = "✕ diverged" if len(idx) == 1 else f"✕ {len(idx)} runs diverged"
        fig.add_vline(x=epoch, line=dict(color=colors[idx[0]], dash="dot", width=2))
        fig.add_annotation(x=epoch, y=1.0 - 0.09 * (k % 4), xref="x", yref="paper", text=f"{text} @ {epoch}",
                           showarrow=False, xanchor="left", xshift=4, yanchor="top",
                           font=dict(color=colors[idx[0]], size=FONT_SIZE - 1), bgcolor="rgba(255,255,255,0.8)")


def _positive(sweep: SweepResult, keys: Sequence[str]) -> np.ndarray:
    vals = np.concatenate([_floats(r.history.get(k, [])) for r in sweep.runs for k in keys] or [np.zeros(0)])
    return vals[np.isfinite(vals) & (vals > 0)]


def _log_ticks(fig: go.Figure, values: np.ndarray) -> None:
    """Readable ticks on a log y axis: 1-2-5 steps over a narrow range, powers of ten (thinned to about
    six labels) over a wide one — never plotly's clutter of minor digits."""
    if not values.size:
        return
    lo, hi = math.floor(math.log10(values.min())), math.ceil(math.log10(values.max()))
    span = max(hi - lo, 1)
    if span <= 2:
        steps = (1, 2, 3, 5) if span == 2 else (1, 1.5, 2, 3, 5, 7)
        vals = [m * 10.0 ** k for k in range(lo, hi + 1) for m in steps]
        vals = [v for v in vals if values.min() / 2.5 <= v <= values.max() * 2.5]
        text = [f"{v:.3g}" for v in vals]
    else:
        step = max(1, math.ceil(span / 6))
        exps = list(range(lo, hi + 1, step))
        vals = [10.0 ** k for k in exps]
        text = [f"{10 ** k:g}" if -2 <= k <= 3 else f"10<sup>{k}</sup>" for k in exps]
    fig.update_yaxes(tickmode="array", tickvals=vals, ticktext=text)


def _wide_range(sweep: SweepResult, keys: Sequence[str]) -> bool:
    """True when the finite positive values of these history keys span more than three decades."""
    vals = _positive(sweep, keys)
    return bool(vals.size) and float(vals.max() / vals.min()) > 1e3


def loss_curves(sweep: SweepResult, log_y: bool = False) -> go.Figure:
    """Training (solid) and validation (dashed) loss of every run on one chart, one colour per run.

    Two traces per run that trained (none for runs Keras refused); a diverged run's curves stop at their
    last finite value, marked ✕, with a dotted line at the divergence epoch.
    """
    fig = go.Figure()
    empty_train = _add_curves(fig, sweep, "loss", dash="solid", positive=log_y, what="train loss")
    empty_val = _add_curves(fig, sweep, "val_loss", dash="dash", show_legend=False, positive=log_y, what="val loss")
    empty = [n for n in empty_train if n in empty_val]
    _mark_divergence(fig, sweep)
    _epoch_axis(fig, sweep)
    fig.update_yaxes(title_text="loss (log scale)" if log_y else "loss", type="log" if log_y else "linear")
    if log_y:
        _log_ticks(fig, _positive(sweep, ("loss", "val_loss")))
    hint = "Falling together: learning. Validation rising while train falls: overfitting."
    return _layout(fig, "Loss — train (solid) vs validation (dashed)", _join(hint, _empty_note(empty), _error_note(sweep)),
                   compact=True)


def metric_curves(sweep: SweepResult) -> go.Figure:
    """The task's primary validation metric per epoch for every run; for binary and multiclass a dotted
    line at the accuracy of always answering the most common class."""
    key = M.primary_metric(sweep.task)
    fig = go.Figure()
    is_rate = key != "val_mae"
    log_y = not is_rate and _wide_range(sweep, (key,))  # a diverged run would flatten every other curve
    empty = _add_curves(fig, sweep, key, fmt=".1%" if is_rate else ".4g", what=METRIC_TITLES[key], positive=log_y)
    _mark_divergence(fig, sweep)
    _epoch_axis(fig, sweep)
    floor = M.majority_rate(sweep.task, np.asarray(sweep.y_val))
    if floor is not None:
        fig.add_hline(y=floor, line=dict(color="#333333", dash="dot", width=2),
                      annotation_text=f"{MAJORITY_TEXT} ({floor:.0%})", annotation_position="bottom right",
                      annotation_font=dict(size=FONT_SIZE - 1, color="#333333"))
    if is_rate:
        fig.update_yaxes(title_text=METRIC_TITLES[key].split(" (")[0], tickformat=".0%", range=[0, 1.05])
        hint = "Higher is better; a head must beat the dotted line to have learned anything." if floor is not None \
            else "Higher is better."
    else:
        unit = f" ({_t(sweep.unit)})" if sweep.unit else ""
        if log_y:
            fig.update_yaxes(title_text=f"MAE{unit}, log scale", type="log")
            _log_ticks(fig, _positive(sweep, (key,)))
        else:
            fig.update_yaxes(title_text=f"MAE{unit}", rangemode="tozero")
        hint = "Lower is better: the typical distance between prediction and truth."
    title = METRIC_TITLES[key][0].upper() + METRIC_TITLES[key][1:]
    return _layout(fig, f"{title} per epoch", _join(hint, _empty_note(empty), _error_note(sweep)), compact=True)


def grad_norm_curves(sweep: SweepResult) -> go.Figure:
    """Mean gradient norm at the output layer per epoch, log scale (zeros cannot be drawn and are named)."""
    fig = go.Figure()
    empty = _add_curves(fig, sweep, "grad_norm", positive=True, what="gradient norm")
    _mark_divergence(fig, sweep)
    _epoch_axis(fig, sweep)
    fig.update_yaxes(title_text="gradient norm (log)", type="log")
    _log_ticks(fig, _positive(sweep, ("grad_norm",)))
    names = run_names(sweep)
    zero = [_t(names[i]) for i, r in enumerate(sweep.runs)
            if r.history.get("grad_norm") and not np.any(_floats(r.history["grad_norm"]) > 0)]
    note = f"Gradient exactly 0 (nothing to draw on a log scale): {', '.join(zero)}" if zero else ""
    hint = "Near zero: the head gets no signal. Growing by orders of magnitude: too high a learning rate."
    empty = [n for n in empty if n not in zero]
    return _layout(fig, "Gradient norm at the output layer (log scale)",
                   _join(hint, note, _empty_note(empty), _error_note(sweep)))


# ------------------------------------------------------------------------------ per-run helpers
def _run(sweep: SweepResult, run_index: int) -> RunResult:
    if not -len(sweep.runs) <= run_index < len(sweep.runs):
        raise IndexError(f"run_index {run_index} out of range for {len(sweep.runs)} runs")
    return sweep.runs[run_index]


def _pick_epoch(run: RunResult, epoch: int | None) -> int:
    """The requested snapshot epoch, or the nearest one kept (default: the last)."""
    if epoch is None or epoch in run.snapshots:
        return max(run.snapshots) if epoch is None else epoch
    return min(run.snapshots, key=lambda e: (abs(e - epoch), -e))


def _no_outputs_message(run: RunResult) -> str:
    if run.status == "error":
        return _join("No outputs: Keras refused this head.", *(_t(line) for line in _wrap(run.error)))
    return "No outputs were recorded for this run."


def _wrap(text: str, width: int = 90) -> list[str]:
    """Lines of at most about `width` characters (plotly does not wrap annotation text itself)."""
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    lines.append(cur)
    return lines


def _class_names(sweep: SweepResult) -> list[str]:
    names = list(sweep.label_names)
    if sweep.task == "binary" and len(names) < 2:
        names = ["negative", "positive"]
    return names


def _binary_score(view: np.ndarray) -> np.ndarray:
    """The positive-class score exactly as metrics reads it (unit 0 of one, unit 1 of several)."""
    return view[:, 0] if view.shape[1] == 1 else view[:, min(1, view.shape[1] - 1)]


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


# ------------------------------------------------------------------------------ per-run figures
def output_histograms(sweep: SweepResult, run_index: int, epoch: int | None = None) -> go.Figure:
    """One run's validation outputs before training (epoch 0) and at a snapshot epoch (default: the last).

    Classification: histograms of the probability view, split by the truth (binary: by true class;
    multiclass: the true class's unit vs the other units; multilabel: per label, present vs absent).
    The x range is fixed to [0, 1] when the outputs are probabilities by construction.
    Regression: predicted vs true scatter with the y = x diagonal.
    """
    run = _run(sweep, run_index)
    name = _t(run_names(sweep)[run_index % len(sweep.runs)])
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
    run = _run(sweep, run_index)
    name = _t(run_names(sweep)[run_index % len(sweep.runs)])
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


def _final_view(sweep: SweepResult, run: RunResult, epoch: int | None) -> tuple[int, np.ndarray]:
    e = _pick_epoch(run, epoch)
    return e, M.probability_view(run.config, np.asarray(run.snapshots[e], dtype=float))


def confusion_matrix(sweep: SweepResult, run_index: int, epoch: int | None = None) -> go.Figure:
    """Binary/multiclass: counts of true class (rows) vs predicted class (columns) at a snapshot (default: last).

    Predictions are read like the metrics read them (one unit: > 0.5; several: argmax). Columns for units
    beyond the class count (a head with too many units) are named 'unit k'.
    """
    run = _run(sweep, run_index)
    name = _t(run_names(sweep)[run_index % len(sweep.runs)])
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
                   height=max(HEIGHT, 160 + 45 * len(names)))


def reliability_diagram(sweep: SweepResult, run_index: int, epoch: int | None = None, bins: int = 10) -> go.Figure:
    """Calibration: mean predicted probability vs how often it came true, in equal-width bins, with the diagonal.

    Binary: the positive-class probability; multilabel: every (image, label) pair pooled; multiclass: the
    top class's probability vs whether it was right. Outputs that are not probabilities are refused.
    """
    run = _run(sweep, run_index)
    name = _t(run_names(sweep)[run_index % len(sweep.runs)])
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
                   f"predictions fall in the bin. Expected calibration error {ece:.3f}.")


# ---------------------------------------------------------------------------------------- report
def comparison_figures(sweep: SweepResult) -> dict[str, go.Figure]:
    """Every figure for the report in a fixed order: the shared curves, then each trained run's outputs,
    output sums (classification), confusion matrix (binary/multiclass) and calibration (classification)."""
    losses = ("loss", "val_loss")
    figs: dict[str, go.Figure] = {
        "Loss": loss_curves(sweep, log_y=_wide_range(sweep, losses)),
        "Validation metric": metric_curves(sweep),
        "Gradient norm": grad_norm_curves(sweep),
    }
    names = run_names(sweep)
    for i, run in enumerate(sweep.runs):
        if not run.snapshots:
            continue
        prefix = f"Run {i + 1}: {names[i]}"
        figs[f"{prefix} — outputs"] = output_histograms(sweep, i)
        if sweep.task != "regression":
            figs[f"{prefix} — output sums"] = output_sum_histogram(sweep, i)
        if sweep.task in ("binary", "multiclass"):
            figs[f"{prefix} — confusion matrix"] = confusion_matrix(sweep, i)
        if sweep.task != "regression":
            figs[f"{prefix} — calibration"] = reliability_diagram(sweep, i)
    return figs


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _config_string(config: HeadConfig) -> str:
    """The settings that differ from the task's textbook head (what to type to reproduce it)."""
    base = default_head(config.task).to_dict()
    d = config.to_dict()
    parts = []
    for k, v in d.items():
        if k in ("task", "name") or v == base.get(k):
            continue
        if k == "hidden":
            v = ";".join(f"{u}:{a}" for u, a in v)
        parts.append(f"{k}={_fmt(v) if isinstance(v, float) else v}")
    return ", ".join(parts) or "the textbook head"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:16px;color:#222;
  max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.45}
h1{font-size:1.9em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:2px solid #eee;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0} td,th{padding:.25em .8em;border-bottom:1px solid #eee;text-align:left}
th{color:#555;font-weight:600} .run{border:1px solid #ddd;border-left-width:8px;border-radius:6px;
  padding:.6em 1em;margin:1em 0} .run h3{margin:.1em 0 .4em}
.badge{display:inline-block;padding:.05em .6em;border-radius:1em;font-size:.85em;font-weight:600;color:#fff}
.ok{background:#2e7d32} .warning{background:#e08a00} .error{background:#c62828} .diverged{background:#6a1b9a}
ul{margin:.3em 0} .muted{color:#666} code{background:#f5f5f5;padding:0 .3em;border-radius:3px}
.figure{margin:1.2em 0}
"""


def html_report(sweep: SweepResult, title: str = "Head Lab comparison") -> str:
    """A self-contained HTML page: the experiment, every run (config, status, verdict, diagnostics, final
    metrics) and every figure of `comparison_figures`, with plotly.js inlined once. All text is escaped."""
    e = html.escape
    colors, names = run_colors(len(sweep.runs)), run_names(sweep)
    n_val, n_train = len(np.asarray(sweep.y_val)), len(np.asarray(sweep.y_train))
    exp_rows = [("Dataset", sweep.dataset), ("Task", sweep.task),
                ("Classes / labels", ", ".join(sweep.label_names) + (f" ({sweep.unit})" if sweep.unit else "")),
                ("Images", f"{n_train} training, {n_val} validation"),
                ("Backbone", f"{sweep.backbone} at {sweep.input_size} px"), ("Weights", sweep.weights),
                ("Epochs", sweep.epochs), ("Seed", sweep.seed), ("Batch size", sweep.batch_size),
                ("Backend", sweep.backend), ("Keras version", sweep.keras_version)]
    if sweep.timing:
        exp_rows.append(("Timing", ", ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in sweep.timing.items())))
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{e(title)}</title>\n"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<style>{_CSS}</style>\n"
             f"</head>\n<body>\n<h1>{e(title)}</h1>\n<p class=\"muted\">Generated by Head Lab.</p>\n"
             "<h2>Experiment</h2>\n<table>\n"]
    parts += [f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>\n" for k, v in exp_rows]
    parts.append("</table>\n")
    if sweep.notes:
        parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in sweep.notes) + "</ul>\n")

    parts.append("<h2>Runs</h2>\n")
    for i, run in enumerate(sweep.runs):
        status = run.status + (f" at epoch {run.diverged_epoch}" if run.status == "diverged" else "")
        parts.append(f"<div class=\"run\" style=\"border-left-color:{colors[i]}\">\n"
                     f"<h3>Run {i + 1}: {e(names[i])}</h3>\n"
                     f"<p>Head: <code>{e(_config_string(run.config))}</code></p>\n"
                     f"<p>Status: <span class=\"badge {e(run.status)}\">{e(status)}</span>"
                     + (f" — {e(run.error)}" if run.error else "") + "</p>\n"
                     f"<p>Verdict: <span class=\"badge {e(run.verdict.level)}\">{e(run.verdict.level)}</span> "
                     f"{e(run.verdict.message)}</p>\n")
        if run.diagnostics:
            parts.append("<p>What the run showed:</p>\n<ul>\n" + "".join(
                f"<li><span class=\"badge {e(str(d.get('severity', '')))}\">{e(str(d.get('severity', '')))}</span> "
                f"{e(str(d.get('message', '')))} <span class=\"muted\">(knob: {e(str(d.get('knob', '')))})</span></li>\n"
                for d in run.diagnostics) + "</ul>\n")
        for heading, items in (("Warnings", run.warnings), ("Notes", run.notes)):
            if items:
                parts.append(f"<p>{heading}:</p>\n<ul>" + "".join(f"<li>{e(w)}</li>" for w in items) + "</ul>\n")
        if run.final:
            parts.append("<table>" + "".join(f"<tr><th>{e(k.replace('_', ' '))}</th><td>{e(_fmt(v))}</td></tr>"
                                             for k, v in run.final.items()) + "</table>\n")
        parts.append("</div>\n")

    parts.append("<h2>Figures</h2>\n")
    config = {"displaylogo": False, "responsive": True}
    for k, (key, fig) in enumerate(comparison_figures(sweep).items()):
        div = pio.to_html(fig, full_html=False, include_plotlyjs=(k == 0), config=config, default_width="100%",
                          default_height=f"{int(fig.layout.height or HEIGHT)}px")
        parts.append(f"<div class=\"figure\">\n<h3>{e(key)}</h3>\n{div}\n</div>\n")
    parts.append("</body>\n</html>\n")
    return "".join(parts)
