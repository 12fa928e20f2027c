"""What every figure of the Results view shares: sizes, fonts and the template, a colour per run and
its legend name, the layout, a figure that says why there is nothing to draw, and picking one run and
one of its snapshots.

Each figure function (`curves`, `outputs`, `confusion`) returns a `plotly.graph_objects.Figure` and
copes with whatever a sweep holds: runs Keras refused (no history, no outputs), runs that diverged
(short histories, NaN/inf values: non-finite points are dropped and the divergence epoch is marked
with an ✕), and 1 to 12 runs. Run i has the same colour in every figure (`run_colors`).

Text that comes from the user (head names, class names) is HTML-escaped (`_t`) before it reaches
plotly, whose labels accept a subset of HTML.
"""

from __future__ import annotations

import html
import math

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

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

DIAGONAL = dict(color="#555555", dash="dash", width=1.5)


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
FULL_CHARS = 100  # the same in a full-width chart


def _layout(fig: go.Figure, title: str, subtitle: str = "", height: int = HEIGHT, compact: bool = False,
            **kw) -> go.Figure:
    """Title, fonts, margins and template. compact=True for charts drawn in half a page's width: the
    subtitle is wrapped and the legend goes under the plot, which then keeps the whole width (a legend
    beside it left a plot too narrow for its own labels)."""
    title_d: dict = dict(text=title, font=dict(size=TITLE_SIZE), x=0.01, xanchor="left")
    lines = [w for line in subtitle.split("<br>") for w in _wrap(line, COMPACT_CHARS if compact else FULL_CHARS)] \
        if subtitle else []
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
        # at the figure's own bottom edge, under the x axis title (y=-0.22 of the plot's height once
        # overlapped the axis title: "sigmoid×1 + B{epoch}")
        legend.update(orientation="h", yref="container", yanchor="bottom", y=0, x=0, xanchor="left")
        bottom += 24 * rows + 10
        height += 24 * rows + 10 + 26 * max(0, len(lines) - 1)
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


def _join(*parts: str) -> str:
    return "<br>".join(p for p in parts if p)


def _run_and_name(sweep: SweepResult, run_index: int) -> tuple[RunResult, str]:
    """Run `run_index` of the sweep, and its legend name escaped for plotly (a per-run figure's title)."""
    if not -len(sweep.runs) <= run_index < len(sweep.runs):
        raise IndexError(f"run_index {run_index} out of range for {len(sweep.runs)} runs")
    return sweep.runs[run_index], _t(run_names(sweep)[run_index % len(sweep.runs)])


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


PROJECTOR_SCALE = 1.3


def projector(fig: go.Figure, scale: float = PROJECTOR_SCALE) -> go.Figure:
    """The same figure for a projector: every font, the margins and the height `scale` times larger.

    Meant for charts drawn at the page's full width (projector mode stacks the half-width charts):
    subtitles were wrapped and legend rows counted for half a page at the normal size, which the
    doubled width still holds at this scale. Changes `fig` in place and returns it.
    """
    lay = fig.layout

    def grow(font, default: float) -> dict:
        return dict(size=round((font.size or default) * scale))

    fig.update_layout(font=grow(lay.font, FONT_SIZE), legend_font=grow(lay.legend.font, FONT_SIZE),
                      hoverlabel_font=grow(lay.hoverlabel.font, FONT_SIZE),
                      height=round((lay.height or HEIGHT) * scale))
    added = 0  # subtitle lines added by re-wrapping for the larger font
    if lay.title.text:
        fig.update_layout(title_font=grow(lay.title.font, TITLE_SIZE))
        if lay.title.subtitle and lay.title.subtitle.text:
            old = lay.title.subtitle.text.split("<br>")
            new = [w for line in old for w in _wrap(line, round(FULL_CHARS / scale))]
            added = len(new) - len(old)
            fig.update_layout(title_subtitle_font=grow(lay.title.subtitle.font, FONT_SIZE),
                              title_subtitle_text="<br>".join(new))
    m = lay.margin
    extra = round(30 * scale * added)  # a subtitle line at the larger font, and a little air above subplot titles
    fig.update_layout(margin=dict(l=round((m.l or 70) * scale), r=round((m.r or 30) * scale),
                                  t=round((m.t or 70) * scale) + extra, b=round((m.b or 60) * scale)),
                      height=lay.height + extra)
    for ann in lay.annotations:
        ann.font.size = round((ann.font.size or FONT_SIZE) * scale)
    fig.update_xaxes(automargin=True, title_standoff=8)
    fig.update_yaxes(automargin=True)
    return fig


RANDOM_WEIGHTS_NOTE = "Random backbone weights: not transfer learning"


def mark_random_weights(fig: go.Figure) -> go.Figure:
    """Say on the figure itself that the backbone's weights were random (a screenshot or a projected
    chart must not pass such a run off as transfer learning): a first, red subtitle line. In place."""
    lay = fig.layout
    note = f"<span style='color:#b03a2e'><b>⚠ {RANDOM_WEIGHTS_NOTE}</b></span>"
    old = lay.title.subtitle.text if lay.title.subtitle and lay.title.subtitle.text else ""
    if RANDOM_WEIGHTS_NOTE in old:
        return fig
    fig.update_layout(title_subtitle_text=_join(note, old), margin_t=(lay.margin.t or 70) + 26,
                      height=(lay.height or HEIGHT) + 26)
    if not old:
        fig.update_layout(title_subtitle_font=dict(size=FONT_SIZE - 1, color="#555555"))
    return fig
