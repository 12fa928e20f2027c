"""Every run's curves per epoch, on one chart each: loss (train and validation), the task's validation
metric, and the gradient norm at the output layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from lib.report.base import FONT_SIZE, _join, _layout, _t, run_colors, run_names
from lib.train import metrics as M
from lib.train.seeds import SeedSweeps
from lib.train.trainer import SweepResult

MAJORITY_TEXT = "always the most common class"

METRIC_TITLES = {
    "val_accuracy": "validation accuracy",
    "val_auc": "validation AUC",
    "val_exact_match": "validation exact-match accuracy (every label right)",
    "val_hamming_accuracy": "validation per-label accuracy",
    "val_mae": "validation mean absolute error",
}


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
    # a two-phase head trains its fine-tuning epochs after the sweep's: the axis reaches its last one
    last = max([sweep.epochs, 1, *(max(r.history.get("epoch") or [0]) for r in sweep.runs)])
    fig.update_xaxes(title_text="epoch", dtick=max(1, math.ceil(last / 10)), range=[0.5, last + 0.5])
    _mark_phases(fig, sweep)


def _mark_phases(fig: go.Figure, sweep: SweepResult) -> None:
    """A dashed vertical line where a two-phase head's fine-tuning (phase 2) begins."""
    colors = run_colors(len(sweep.runs))
    for i, run in enumerate(sweep.runs):
        if run.phase_boundary is None:
            continue
        x = run.phase_boundary + 0.5
        fig.add_vline(x=x, line=dict(color=colors[i], dash="dash", width=1.5))
        fig.add_annotation(x=x, y=0.02, xref="x", yref="paper", text="fine-tuning →", showarrow=False,
                           xanchor="left", xshift=3, yanchor="bottom",
                           font=dict(color=colors[i], size=FONT_SIZE - 1), bgcolor="rgba(255,255,255,0.8)")


def _error_note(sweep: SweepResult) -> str:
    names = run_names(sweep)
    refused = [_t(names[i]) for i, r in enumerate(sweep.runs) if r.status == "error" and not r.history.get("epoch")]
    return f"Not trained (Keras refused the head): {', '.join(refused)}" if refused else ""


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


# Two curves "coincide" when they never differ by more than this share of the chart's y span: a chart is
# about 300 px tall and its lines 2.5 px wide, so 0.5% (1.5 px) means the later trace hides the earlier one
# completely and the reader sees one line where there are two — the chart must say so. They must also agree
# to COINCIDE_RTOL of their own size, so two different curves squashed flat by a third, far larger one
# (a loss of 100 beside losses of 0.3) are not called the same: 1e-3 is far above float32 round-off
# between equal computations (~1e-6) and far below any real difference between two heads' losses.
COINCIDE_FRACTION = 0.005
COINCIDE_RTOL = 1e-3


def coinciding_runs(sweep: SweepResult, key: str, log_y: bool = False) -> list[list[int]]:
    """Groups (run indices, ascending) of runs whose `key` curves lie on top of each other on the chart.

    Compared in the drawn scale (log10 when log_y), over the same epochs, within COINCIDE_FRACTION of the
    span of every drawn value of that chart; a run with nothing finite to draw joins no group.
    """
    curves: dict[int, np.ndarray] = {}  # in the drawn scale
    raw: dict[int, np.ndarray] = {}
    for i, run in enumerate(sweep.runs):
        y = _floats(run.history.get(key, []))
        raw[i] = y
        if log_y:
            y = np.where(y > 0, np.log10(np.where(y > 0, y, 1.0)), np.nan)
        if y.size and np.isfinite(y).any():
            curves[i] = y
    drawn = np.concatenate(list(curves.values())) if curves else np.zeros(0)
    drawn = drawn[np.isfinite(drawn)]
    if not drawn.size:
        return []
    span = float(drawn.max() - drawn.min())
    tol = COINCIDE_FRACTION * span if span > 0 else 1e-6 * max(1.0, float(np.abs(drawn).max()))
    groups: list[list[int]] = []
    for i in sorted(curves):
        for g in groups:
            a, b = curves[g[0]], curves[i]
            if a.shape == b.shape and np.array_equal(np.isfinite(a), np.isfinite(b)):
                both = np.isfinite(a)
                ra, rb = raw[g[0]][both], raw[i][both]
                same = np.abs(ra - rb) <= COINCIDE_RTOL * np.maximum(np.abs(ra), np.abs(rb)) + 1e-12
                if float(np.max(np.abs(a[both] - b[both]))) <= tol and bool(np.all(same)):
                    g.append(i)
                    break
        else:
            groups.append([i])
    return [g for g in groups if len(g) > 1]


def _names_of(sweep: SweepResult, group: Sequence[int]) -> str:
    names = [f"{i + 1}. {_t(run_names(sweep)[i])}" for i in group]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def coincide_note(sweep: SweepResult, keys: Sequence[str], what: Sequence[str], log_y: bool = False) -> str:
    """'1. A and 2. B coincide: one line hides the other' (naming which curves when not all), or ''."""
    found: dict[tuple[int, ...], list[str]] = {}
    for key, label in zip(keys, what, strict=True):
        for g in coinciding_runs(sweep, key, log_y):
            found.setdefault(tuple(g), []).append(label)
    def which(labels: list[str]) -> str:
        return f" ({' and '.join(labels)})" if len(labels) < len(keys) else ""  # all of the chart's curves: no list
    return _join(*(f"{_names_of(sweep, g)} coincide{which(labels)}: one line hides the other."
                   for g, labels in found.items()))


def _mark_coinciding(fig: go.Figure, sweep: SweepResult, key: str, log_y: bool = False) -> None:
    """Legend entries of coinciding curves say which other curve hides them ("= 2. …")."""
    for g in coinciding_runs(sweep, key, log_y):
        for trace in fig.data:
            idx = [i for i in g if trace.legendgroup == f"run{i}" and trace.showlegend is not False]
            for i in idx:
                others = [j for j in g if j != i]
                trace.name = f"{trace.name} (= {', '.join(str(j + 1) + '.' for j in others)})"


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
    _mark_coinciding(fig, sweep, "loss", log_y)
    same = coincide_note(sweep, ("loss", "val_loss"), ("train loss", "validation loss"), log_y)
    hint = "Falling together: learning. Validation rising while train falls: overfitting."
    return _layout(fig, "Loss — train (solid) vs validation (dashed)",
                   _join(hint, same, _empty_note(empty), _error_note(sweep)), compact=True)


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
    # The title's bracket goes to the subtitle: a half-page chart's title is one line ("Validation
    # exact-match accuracy (every label right) per epoch" ran past its box at 1280 px).
    name, _, aside = METRIC_TITLES[key].partition(" (")
    title = name[0].upper() + name[1:]
    if aside:
        hint = f"{aside.rstrip(')')[0].upper()}{aside.rstrip(')')[1:]}. {hint}"
    _mark_coinciding(fig, sweep, key, log_y)
    same = coincide_note(sweep, (key,), (METRIC_TITLES[key].split(" (")[0],), log_y)
    return _layout(fig, f"{title} per epoch", _join(hint, same, _empty_note(empty), _error_note(sweep)), compact=True)


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


def _rgba(color: str, alpha: float) -> str:
    c = color.lstrip("#")
    if len(c) != 6:
        return color
    r, g, b = (int(c[k:k + 2], 16) for k in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def seed_band_curves(rep: SeedSweeps, key: str | None = None) -> go.Figure:
    """One history key (default: the task's validation metric) over the seeds: each run's mean as a line,
    its min–max over the seeds as a shaded band of the same colour."""
    sweep = rep.first
    key = key or M.primary_metric(sweep.task)
    colors, names = run_colors(len(sweep.runs)), run_names(sweep)
    fig = go.Figure()
    is_rate = key.startswith("val_") and key != "val_mae" and "loss" not in key
    fmt = ".1%" if is_rate else ".4g"
    for i in range(rep.n_runs):
        x, mean, lo, hi = rep.curve(i, key)
        keep = np.isfinite(mean)
        if not keep.any():
            continue
        x, mean, lo, hi = x[keep].tolist(), mean[keep].tolist(), lo[keep].tolist(), hi[keep].tolist()
        name = _t(names[i])
        fig.add_trace(go.Scatter(x=x + x[::-1], y=hi + lo[::-1], fill="toself", fillcolor=_rgba(colors[i], 0.18),
                                 line=dict(width=0), hoverinfo="skip", showlegend=False, legendgroup=f"run{i}"))
        fig.add_trace(go.Scatter(
            x=x, y=mean, mode="lines", name=name, legendgroup=f"run{i}", line=dict(color=colors[i], width=2.5),
            customdata=np.column_stack([lo, hi]),
            hovertemplate=(f"{name}<br>epoch %{{x}}<br>mean %{{y:{fmt}}}<br>min %{{customdata[0]:{fmt}}} · "
                           f"max %{{customdata[1]:{fmt}}}<extra></extra>")))
    _epoch_axis(fig, sweep)
    what = METRIC_TITLES.get(key, {"loss": "training loss", "val_loss": "validation loss"}.get(key, key))
    if is_rate:
        fig.update_yaxes(title_text=what.split(" (")[0], tickformat=".0%", range=[0, 1.05])
    else:
        fig.update_yaxes(title_text=what.split(" (")[0])
    n = len(rep.sweeps)
    seeds = f"seeds {rep.seeds[0]}–{rep.seeds[-1]}" if n > 1 else f"seed {rep.seeds[0]}"
    hint = f"Line: mean of {seeds}; band: lowest to highest seed."
    # runs whose curves coincide in every seed are drawn as one line and one band: say so
    common = [set(map(tuple, coinciding_runs(s, key))) for s in rep.sweeps]
    same = [list(g) for g in sorted(set.intersection(*common))] if common else []
    note = _join(*(f"{_names_of(sweep, g)} coincide in every seed." for g in same))
    short = what.split(" (")[0]  # half a page wide: the long metric names' parenthesis would be cut off
    return _layout(fig, f"{short[0].upper() + short[1:]} over {n} seeds", _join(hint, note), compact=True)
