"""Inside the head: what the loss was computed on beside what predict() returned, every head's outputs
moving epoch by epoch (Plotly animation frames: the browser redraws them, no server round trip), the
regression residuals, the images a head gets most wrong, and one image's outputs in every head.

Which values the loss used comes from the run's own measurement (RunResult.loss_used, lib.train.loss_seen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lib.report.base import (
    FONT_SIZE,
    HEIGHT,
    _class_names,
    _layout,
    _message_figure,
    _no_outputs_message,
    _pick_epoch,
    _run_and_name,
    _t,
    run_colors,
    run_names,
)
from lib.report.outputs import NEG_COLOR, POS_COLOR, _facets, _is_probability
from lib.train import metrics as M
from lib.train.loss_seen import loss_view
from lib.train.trainer import RunResult, SweepResult

BINS = 40
_LOSS_COLUMN = {"pre_activation": "pre-{act} values", "outputs": "the outputs",
                "clipped_outputs": "outputs clipped to [ε, 1−ε]", "unknown": "(not reproduced)"}
_TITLE_NAME_CHARS = 26  # a head's name in a half-width subplot title (the legend and cards have it whole)


def loss_column_title(run: RunResult) -> str:
    """'loss used: pre-softmax values' (or the outputs, or the outputs clipped to [ε, 1−ε])."""
    label = run.loss_used.label if run.loss_used else "unknown"
    return "loss used: " + _LOSS_COLUMN[label].format(act=run.config.activation)


def _row_titles(fig: go.Figure, titles: list[str]) -> None:
    """Each row's title anchored at the left edge, free to run over both columns (a title per column
    overlapped its neighbour at projector size)."""
    for ann in fig.layout.annotations:
        if ann.text in titles:
            ann.update(x=0, xanchor="left")


def _short(name: str) -> str:
    return name if len(name) <= _TITLE_NAME_CHARS else name[:_TITLE_NAME_CHARS - 1] + "…"


def _seen(run: RunResult, epoch: int) -> np.ndarray:
    """The values the loss used at `epoch` (measured label; unknown: the pre-activation values)."""
    label = run.loss_used.label if run.loss_used else "unknown"
    z = run.pre_activations.get(epoch, run.snapshots[epoch])
    return np.asarray(loss_view(run.config, "pre_activation" if label == "unknown" else label,
                                run.snapshots[epoch], z), dtype=float)


def _groups(sweep: SweepResult, values: np.ndarray) -> tuple[list[tuple[str, np.ndarray, str]], str]:
    """One value list per truth group (facets of a multi-label head pooled into one), and the axis title."""
    facets, x_title = _facets(sweep, values)
    if len(facets) == 1:
        return facets[0][1], x_title
    pooled: dict[str, tuple[list, str]] = {}
    for _, groups in facets:
        for name, vals, color in groups:
            pooled.setdefault(name, ([], color))[0].append(vals)
    return [(n, np.concatenate(v), c) for n, (v, c) in pooled.items()], x_title + " (all labels pooled)"


def _edges(arrays: list[np.ndarray], probability: bool) -> np.ndarray:
    """Shared bin edges for every epoch of one panel, so an animation's axes stay put."""
    if probability:
        return np.linspace(-0.0125, 1.0125, 42)
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.zeros(0)
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-9:  # every value the same (softmax over one unit: 1.0): one bin around it
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, BINS + 1)


def _counts(vals: np.ndarray, edges: np.ndarray) -> np.ndarray:
    finite = vals[np.isfinite(vals)]
    counts, _ = np.histogram(np.clip(finite, edges[0], edges[-1]), bins=edges)
    return counts


def _binned(sweep: SweepResult, run: RunResult, at: dict[int, int]) -> list[tuple[np.ndarray, str, list]]:
    """A classification head's two panels — the values its loss used, and predict()'s — binned for every
    shown epoch (`at`: shown epoch -> snapshot epoch) on edges shared by all of them, split by the truth:
    [(edges, x-axis title, [(group, colour, {shown epoch: counts})])], left panel first."""
    panels = []
    for col, prob in ((1, False), (2, _is_probability(run.config))):
        grouped = {e: _groups(sweep, _seen(run, snap) if col == 1 else
                              M.probability_view(run.config, np.asarray(run.snapshots[snap], dtype=float)))
                   for e, snap in at.items()}
        edges = _edges([vals for groups, _ in grouped.values() for _, vals, _ in groups], prob)
        first_groups, x_title = next(iter(grouped.values()))
        panels.append((edges, x_title, [(name, color, {e: _counts(grouped[e][0][k][1], edges) for e in grouped})
                                        for k, (name, _, color) in enumerate(first_groups)]))
    return panels


def loss_seen_figure(sweep: SweepResult, run_index: int, epoch: int | None = None) -> go.Figure:
    """Two panels per row, the same validation images coloured by true class: the values the loss was
    computed on (as measured) and the values predict() returns; before training and at `epoch` (default:
    the last). Regression: the residuals (predicted − true, in the target's units) instead."""
    run, name = _run_and_name(sweep, run_index)
    title = f"What the loss saw vs what predict() returned — {name}"
    if not run.snapshots:
        return _message_figure(title, _no_outputs_message(run))
    if sweep.task == "regression":
        return residual_histogram(sweep, run_index, epoch)
    after = _pick_epoch(run, epoch)
    rows = [("before training", 0)] if 0 in run.snapshots and after != 0 else []
    rows.append((f"epoch {after}", after))
    loss_title = loss_column_title(run)
    titles = [t for label, _ in rows for t in (f"{label} — left: {loss_title} · right: predict()", "")]
    fig = make_subplots(rows=len(rows), cols=2, subplot_titles=titles, horizontal_spacing=0.08, vertical_spacing=0.16)
    _row_titles(fig, titles[::2])
    shown: set[str] = set()
    for col, (edges, x_title, groups) in enumerate(_binned(sweep, run, {e: e for _, e in rows}), start=1):
        centres = (edges[:-1] + edges[1:]) / 2
        for r, (_, e) in enumerate(rows, start=1):
            if not any(counts[e].any() for _, _, counts in groups):  # only finite values are counted
                fig.add_annotation(text="NaN/inf: nothing to draw", x=0.5, y=0.5, xref="x domain", yref="y domain",
                                   showarrow=False, font=dict(size=FONT_SIZE, color="#b22222"), row=r, col=col)
            for group, color, counts in groups:
                fig.add_trace(go.Bar(x=centres, y=counts[e], name=group, legendgroup=group,
                                     showlegend=group not in shown, marker=dict(color=color, line=dict(width=0)),
                                     opacity=0.65, width=float(edges[1] - edges[0]),
                                     hovertemplate=f"{group}<br>value %{{x:.4g}}<br>%{{y}} values<extra></extra>"),
                              row=r, col=col)
                shown.add(group)
            fig.update_xaxes(title_text=x_title if col == 2 else "value the loss used", row=r, col=col)
    fig.update_yaxes(title_text="count")
    statement = run.loss_used.statement if run.loss_used else "Keras refused this head: nothing was measured."
    fig = _layout(fig, title, _t(statement), height=max(HEIGHT, 150 + 300 * len(rows)), barmode="overlay")
    return fig.update_layout(margin=dict(t=fig.layout.margin.t + 30))  # room for the subplot titles


def residual_histogram(sweep: SweepResult, run_index: int, epoch: int | None = None) -> go.Figure:
    """A regression head's residuals (predicted − true, in the target's units), before and after training."""
    run, name = _run_and_name(sweep, run_index)
    title = f"Residuals — {name}"
    if not run.snapshots:
        return _message_figure(title, _no_outputs_message(run))
    after = _pick_epoch(run, epoch)
    epochs = ([0] if 0 in run.snapshots and after != 0 else []) + [after]
    y = np.asarray(sweep.y_val, dtype=float).ravel()
    res = {e: np.asarray(run.snapshots[e], dtype=float)[:, 0] - y for e in epochs}
    edges = _edges(list(res.values()), False)
    centres = (edges[:-1] + edges[1:]) / 2
    unit = f" ({_t(sweep.unit)})" if sweep.unit else ""
    fig = go.Figure()
    for e, color in zip(epochs, (NEG_COLOR, POS_COLOR)[-len(epochs):], strict=True):
        label = "before training (epoch 0)" if e == 0 else f"epoch {e}"
        fig.add_trace(go.Bar(x=centres, y=_counts(res[e], edges), name=label, opacity=0.65,
                             marker=dict(color=color, line=dict(width=0)), width=float(edges[1] - edges[0]),
                             hovertemplate=f"residual %{{x:.4g}}{unit}<br>%{{y}} images<extra></extra>"))
    fig.add_vline(x=0, line=dict(color="#333333", dash="dot", width=2))
    fig.update_xaxes(title_text=f"predicted − true{unit}")
    fig.update_yaxes(title_text="images")
    finite = res[after][np.isfinite(res[after])]
    hint = (f"Median absolute error at epoch {after}: {np.median(np.abs(finite)):.4g}{unit}. "
            "A narrow spike at 0 is a good head; a wide or shifted one misses." if finite.size
            else "The outputs are NaN/inf: nothing to draw.")
    return _layout(fig, title, hint, barmode="overlay")


def scrubber_figure(sweep: SweepResult, heads: list[int] | None = None) -> go.Figure:
    """Every head's validation outputs at every kept epoch, in one figure with a slider and a play button
    (Plotly animation frames). Classification: per head, the values the loss used and predict()'s, split by
    the truth; regression: per head, predicted vs true and the residuals."""
    heads = list(range(len(sweep.runs))) if heads is None else heads
    names = run_names(sweep)
    trained = [i for i in heads if sweep.runs[i].snapshots]
    title = "Watch the outputs move — every head, epoch by epoch"
    if not trained:
        return _message_figure(title, "No head has outputs to show (Keras refused every one).")
    epochs = sorted(set().union(*(sweep.runs[i].snapshots for i in trained)))
    regression = sweep.task == "regression"
    col_titles = ("predicted vs true", "residual (predicted − true)") if regression else None
    titles = []
    for i in trained:
        run = sweep.runs[i]
        pair = col_titles or (loss_column_title(run), "predict()")
        titles += [f"{i + 1}. {_t(_short(names[i]))} — left: {pair[0]} · right: {pair[1]}", ""]
    fig = make_subplots(rows=len(trained), cols=2, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=min(0.12, 0.5 / max(len(trained), 1)))
    _row_titles(fig, titles[::2])
    # Frames carry only what moves: the y values of the animated traces (by index); x, colours and the
    # diagonal stay in the figure (measured: sending x too made a 3-head step ~1.5x slower to redraw).
    frames_data: dict[int, list] = {e: [] for e in epochs}
    moving: list[int] = []
    y = np.asarray(sweep.y_val, dtype=float)
    colors = run_colors(len(sweep.runs))
    shown: set[str] = set()
    for r, i in enumerate(trained, start=1):
        run = sweep.runs[i]
        at = {e: _pick_epoch(run, e) if e <= max(run.snapshots) else max(run.snapshots) for e in epochs}
        if regression:
            preds = {e: np.asarray(run.snapshots[at[e]], dtype=float)[:, 0] for e in epochs}
            finite = np.concatenate([y] + [p[np.isfinite(p)] for p in preds.values()])
            lo, hi = float(finite.min()), float(finite.max())
            fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", showlegend=False, hoverinfo="skip",
                                     line=dict(color="#555555", dash="dash", width=1.5)), row=r, col=1)
            first = epochs[0]
            fig.add_trace(go.Scatter(x=y, y=preds[first], mode="markers", showlegend=False,
                                     marker=dict(color=colors[i % len(colors)], size=7, opacity=0.7)), row=r, col=1)
            edges = _edges([p - y for p in preds.values()], False)
            centres = (edges[:-1] + edges[1:]) / 2
            fig.add_trace(go.Bar(x=centres, y=_counts(preds[first] - y, edges), showlegend=False,
                                 marker=dict(color=colors[i % len(colors)]), width=float(edges[1] - edges[0])),
                          row=r, col=2)
            fig.update_yaxes(range=[lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)], row=r, col=1)
            moving += [len(fig.data) - 2, len(fig.data) - 1]
            for e in epochs:
                frames_data[e] += [go.Scatter(y=preds[e]), go.Bar(y=_counts(preds[e] - y, edges))]
            continue
        for col, (edges, _, groups) in enumerate(_binned(sweep, run, at), start=1):
            centres = (edges[:-1] + edges[1:]) / 2
            top = max([1] + [int(c.max()) for _, _, counts in groups for c in counts.values()])
            for group, color, counts in groups:
                fig.add_trace(go.Bar(x=centres, y=counts[epochs[0]], name=group, legendgroup=group,
                                     showlegend=group not in shown, opacity=0.65, width=float(edges[1] - edges[0]),
                                     marker=dict(color=color, line=dict(width=0)),
                                     hovertemplate=f"{group}<br>value %{{x:.4g}}<br>%{{y}}<extra></extra>"),
                              row=r, col=col)
                shown.add(group)
                moving.append(len(fig.data) - 1)
                for e in epochs:
                    frames_data[e].append(go.Bar(y=counts[e]))
            fig.update_yaxes(range=[0, top * 1.05], row=r, col=col)  # fixed: bars grow and shrink, axes stay
    fig.frames = [go.Frame(name=str(e), data=frames_data[e], traces=moving) for e in epochs]
    step = dict(mode="immediate", frame=dict(duration=0, redraw=False), transition=dict(duration=0))
    fig.update_layout(
        barmode="overlay",
        sliders=[dict(active=len(epochs) - 1, currentvalue=dict(prefix="epoch ", xanchor="right", font=dict(size=FONT_SIZE + 2)),
                      x=0.16, len=0.84, y=0, yanchor="top", pad=dict(t=50), steps=[dict(label=str(e), method="animate", args=[[str(e)], step])
                                             for e in epochs])],
        # stacked left of the slider, clear of its rail (a click on step 0 once landed on "pause")
        updatemenus=[dict(type="buttons", showactive=False, x=0, y=0, xanchor="left", yanchor="top",
                          pad=dict(t=50, r=10), direction="down",
                          buttons=[dict(label="▶ play", method="animate",
                                        args=[None, dict(mode="immediate", fromcurrent=True,
                                                         frame=dict(duration=250, redraw=False),
                                                         transition=dict(duration=0))]),
                                   dict(label="❚❚ pause", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))])])])
    # The figure opens at the last epoch: set the traces to it (frames only change them once moved).
    for k, last in zip(moving, frames_data[epochs[-1]], strict=True):
        fig.data[k].y = last.y
    hint = ("Drag the slider or press play; all heads move together. Left: what the loss used. Right: predict()."
            ) if not regression else \
        "Drag the slider or press play: the points should gather on the diagonal and the residuals at 0."
    fig = _layout(fig, title, hint, height=max(HEIGHT, 220 + 260 * len(trained)), barmode="overlay")
    fig.update_layout(margin=dict(b=170, t=fig.layout.margin.t + 30))  # room for the subplot titles, the slider
    return fig


# ---- the images behind the numbers ----------------------------------------------------------------

@dataclass(frozen=True)
class ImageCard:
    """One validation image in a gallery: its index, rank, truth and what the head said about it."""

    index: int  # into the validation set
    rank: int  # 1 = the worst
    truth: str
    output: str
    loss: float
    loss_name: str  # "loss" or "absolute error"


def _truth_text(sweep: SweepResult, index: int) -> str:
    names, y = _class_names(sweep), np.asarray(sweep.y_val)[index]
    if sweep.task == "regression":
        return f"{float(y):.4g} {sweep.unit}".strip()
    if sweep.task == "multilabel":
        present = [names[k] for k in np.flatnonzero(np.asarray(y) > 0.5)]
        return ", ".join(present) or "(no label)"
    return names[int(y)] if int(y) < len(names) else str(int(y))


def output_text(sweep: SweepResult, run: RunResult, index: int, epoch: int | None = None) -> str:
    """What predict() returned for one image, in words: the predicted class and its probability, or the value."""
    out = np.asarray(run.snapshots[_pick_epoch(run, epoch)], dtype=float)[index]
    if sweep.task == "regression":
        return f"predicted {out[0]:.4g} {sweep.unit}".strip()
    view = M.probability_view(run.config, out[None])[0]
    names = _class_names(sweep)
    if not np.all(np.isfinite(view)):
        return "NaN/inf"
    if sweep.task == "multilabel":
        return ", ".join(f"{names[k] if k < len(names) else k} {view[k]:.2f}" for k in range(len(view)))
    if len(view) == 1:
        pos = names[1] if len(names) > 1 else "positive"
        shown = "1.0 (to float precision)" if M.float_equal(view[0], 1.0) else f"{view[0]:.3g}"
        return f"{shown} for '{pos}'"
    k = int(np.argmax(view))
    return f"{names[k] if k < len(names) else k} {view[k]:.2f}"


def top_loss_cards(sweep: SweepResult, run_index: int, k: int = 8) -> list[ImageCard]:
    """The head's k worst validation images (run.top_losses), with their truth and the head's output."""
    run = sweep.runs[run_index]
    loss_name = "absolute error" if sweep.task == "regression" else "loss"
    return [ImageCard(i, rank, _truth_text(sweep, i), output_text(sweep, run, i), v, loss_name)
            for rank, (i, v) in enumerate(run.top_losses[:k], start=1)]


def no_gallery_reason(run: RunResult) -> str:
    """Why a head has no top-losses gallery ('' when it has one)."""
    if run.status == "error":
        return f"Keras refused this head, so there are no images to rank: {run.error}"
    if run.status == "diverged":
        return (f"This head diverged at epoch {run.diverged_epoch}: its outputs became NaN/inf, so no image can "
                "be ranked by how wrong it is.")
    if not run.top_losses:
        return "The loss could not be computed on this head's outputs, so no image can be ranked."
    return ""


def confidently_wrong_text(sweep: SweepResult, run: RunResult) -> str:
    """The card's one number: how many predictions are wrong at >= 0.9, out of how many."""
    if run.confidently_wrong is None:
        return ""
    n = len(sweep.y_val) * (sweep.n_outputs if sweep.task == "multilabel" else 1)
    what = "label decisions" if sweep.task == "multilabel" else "images"
    return f"{run.confidently_wrong} of {n} {what}"


def same_image_figure(sweep: SweepResult, index: int, epoch: int | None = None) -> go.Figure:
    """One validation image's outputs in every head, as bars: what predict() returned (logits heads as the
    probabilities they stand for), so a class compares heads on the same picture."""
    title = f"Validation image {index}: every head's output (true: {_t(_truth_text(sweep, index))})"
    names = run_names(sweep)
    colors = run_colors(len(sweep.runs))
    fig = go.Figure()
    classes = _class_names(sweep)
    missing = []
    lo, hi = 0.0, 1.0
    for i, run in enumerate(sweep.runs):
        if not run.snapshots:
            missing.append(f"{i + 1} (refused)")
            continue
        if run.status == "diverged":  # its weights became NaN/inf: no output of it means anything
            missing.append(f"{i + 1} (diverged at epoch {run.diverged_epoch})")
            continue
        out = np.asarray(run.snapshots[_pick_epoch(run, epoch)], dtype=float)[index]
        view = out if sweep.task == "regression" else M.probability_view(run.config, out[None])[0]
        if not np.all(np.isfinite(view)):
            missing.append(f"{i + 1} (NaN/inf)")
            continue
        if sweep.task == "regression":
            labels = ["predicted"]
        elif len(view) == 1:
            labels = [f"output for '{_t(classes[1]) if len(classes) > 1 else 'positive'}'"]
        else:
            labels = [_t(classes[k]) if k < len(classes) else f"unit {k}" for k in range(len(view))]
        lo, hi = min(lo, float(view.min())), max(hi, float(view.max()))
        fig.add_trace(go.Bar(x=labels, y=view, name=f"{i + 1}. {_t(names[i])}", marker=dict(color=colors[i % len(colors)]),
                             text=[f"{v:.3g}" for v in view], textposition="outside",
                             hovertemplate="%{x}: %{y:.4g}<extra>" + f"{i + 1}" + "</extra>"))
    if sweep.task == "regression":
        fig.add_hline(y=float(np.asarray(sweep.y_val)[index]), line=dict(color="#333333", dash="dot", width=2),
                      annotation_text="true value")
    else:  # probabilities in [0, 1]; a relu or linear head's outputs may leave it, and are shown as they are
        pad = 0.12 * (hi - lo)
        fig.update_yaxes(range=[lo - (pad if lo < 0 else 0), hi + pad], title_text="output")
    hint = "Bars are what predict() returned for this one image."
    if missing:
        hint += " No bars for head " + ", ".join(missing) + "."
    return _layout(fig, title, hint, barmode="group")


def image_picker_figure(sweep: SweepResult, run_index: int) -> go.Figure:
    """One point per validation image for one head: what predict() returned (the true class's probability;
    regression: the prediction) against the head's loss on it, coloured by the truth. Each point carries its
    image's index (customdata), so a click on it can choose the image for `same_image_figure`."""
    run, name = _run_and_name(sweep, run_index)
    title = f"Pick an image: click a point — {name}"
    if not run.snapshots or run.status != "ok":
        return _message_figure(title, _t(no_gallery_reason(run)) or _no_outputs_message(run))
    out = np.asarray(run.snapshots[max(run.snapshots)], dtype=float)
    y = np.asarray(sweep.y_val)
    losses = run.sample_losses  # measured after training, the same numbers top_losses ranks
    if losses is None:
        return _message_figure(title, "The loss could not be computed on this head's outputs.")
    classes = _class_names(sweep)
    view = out if sweep.task == "regression" else M.probability_view(run.config, out)
    if sweep.task == "regression":
        x, x_title = view[:, 0], f"predicted{' (' + _t(sweep.unit) + ')' if sweep.unit else ''}"
        groups = [("validation images", np.ones(len(y), bool), POS_COLOR)]
    elif sweep.task == "multilabel":
        x, x_title = view.mean(axis=1), "mean output over the labels"
        groups = [("validation images", np.ones(len(y), bool), POS_COLOR)]
    else:
        yi = y.astype(int)
        if view.shape[1] == 1:
            x = np.where(yi == 1, view[:, 0], 1 - view[:, 0]) if sweep.task == "binary" else view[:, 0]
        else:
            x = view[np.arange(len(yi)), np.minimum(yi, view.shape[1] - 1)]
        x_title = "probability given to the true class"
        colors = run_colors(max(len(classes), 2))
        groups = [(f"true: {_t(c)}", yi == k, colors[k % len(colors)]) for k, c in enumerate(classes)]
    fig = go.Figure()
    for label, mask, color in groups:
        idx = np.flatnonzero(mask)
        fig.add_trace(go.Scatter(x=x[idx], y=losses[idx], mode="markers", name=label, customdata=idx,
                                 marker=dict(color=color, size=9, opacity=0.75, line=dict(width=0.5, color="white")),
                                 hovertemplate="image %{customdata}<br>x %{x:.4g}<br>loss %{y:.4g}<extra></extra>"))
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text="absolute error" if sweep.task == "regression" else "loss on predict()")
    return _layout(fig, title, "Top left: images it is sure about and wrong. Click one to see it in every head.")


def val_images(sweep: SweepResult, data) -> np.ndarray | None:
    """The sweep's validation images (in y_val's order) from `data`, or None when `data` is not the data the
    sweep was trained on (another dataset, an upload replaced since): its validation targets must match."""
    if data is None or data.task != sweep.task or data.dataset != sweep.dataset:
        return None
    is_val = np.asarray(data.is_val, bool)
    y = np.asarray(data.y)[is_val]
    if y.shape != np.shape(sweep.y_val) or not np.array_equal(y, np.asarray(sweep.y_val)):
        return None
    return np.asarray(data.images)[is_val]
