"""The downloadable HTML report: the experiment, every run (config, status, verdict, diagnostics, final
metrics) and every figure, in one self-contained page. `html_report` escapes everything it writes.
"""

from __future__ import annotations

import html
import math

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from lib.heads.config import HeadConfig
from lib.report.base import HEIGHT, run_colors, run_names
from lib.report.confusion import confusion_matrix, reliability_diagram
from lib.report.curves import _wide_range, grad_norm_curves, loss_curves, metric_curves
from lib.report.inside import (
    confidently_wrong_text,
    loss_seen_figure,
    no_gallery_reason,
    scrubber_figure,
    top_loss_cards,
)
from lib.report.outputs import output_histograms, output_sum_histogram
from lib.train.trainer import SweepResult
from lib.train.verdict import combine


def comparison_figures(sweep: SweepResult) -> dict[str, go.Figure]:
    """Every figure for the report in a fixed order: the shared curves, then each trained run's outputs,
    output sums (classification), confusion matrix (binary/multiclass) and calibration (classification)."""
    losses = ("loss", "val_loss")
    figs: dict[str, go.Figure] = {
        "Loss": loss_curves(sweep, log_y=_wide_range(sweep, losses)),
        "Validation metric": metric_curves(sweep),
        "Gradient norm": grad_norm_curves(sweep),
        "Every head, epoch by epoch (slider and play button)": scrubber_figure(sweep),
    }
    names = run_names(sweep)
    for i, run in enumerate(sweep.runs):
        if not run.snapshots:
            continue
        prefix = f"Run {i + 1}: {names[i]}"
        figs[f"{prefix} — outputs"] = output_histograms(sweep, i)
        figs[f"{prefix} — {'residuals' if sweep.task == 'regression' else 'what the loss saw'}"] = loss_seen_figure(sweep, i)
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
    """Every setting of the head, defaults included (a reader of the report cannot know the defaults:
    "softmax" was left out once because it is the multiclass default)."""
    d = config.to_dict()
    parts = []
    for k, v in d.items():
        if k in ("task", "name"):
            continue
        if k == "hidden":
            v = ";".join(f"{u}:{a}" for u, a in v)
        parts.append(f"{k}={_fmt(v) if isinstance(v, float) else v}")
    return ", ".join(parts)


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
        verdict = combine(run, sweep)  # the badge reflects what the run measured, reconciled with the table
        status = run.status + (f" at epoch {run.diverged_epoch}" if run.status == "diverged" else "")
        parts.append(f"<div class=\"run\" style=\"border-left-color:{colors[i]}\">\n"
                     f"<h3>Run {i + 1}: {e(names[i])}</h3>\n"
                     f"<p>Head: <code>{e(_config_string(run.config))}</code></p>\n"
                     f"<p>Status: <span class=\"badge {e(run.status)}\">{e(status)}</span>"
                     + (f" — {e(run.error)}" if run.error else "") + "</p>\n"
                     f"<p>Verdict after training: <span class=\"badge {e(verdict.level)}\">{e(verdict.level)}</span> "
                     f"{e(verdict.message)}</p>\n"
                     f"<p class=\"muted\">Pairing table: {e(verdict.table.level)} — {e(verdict.table.message)}</p>\n")
        if verdict.symptoms:
            parts.append("<p>What the run showed:</p>\n<ul>\n" + "".join(
                f"<li><span class=\"badge {e(str(d.get('severity', '')))}\">{e(str(d.get('severity', '')))}</span> "
                f"{e(str(d.get('message', '')))} <span class=\"muted\">(knob: {e(str(d.get('knob', '')))})</span></li>\n"
                for d in verdict.symptoms) + "</ul>\n")
        for heading, items in (("Warnings", run.warnings), ("Notes", run.notes)):
            if items:
                parts.append(f"<p>{heading}:</p>\n<ul>" + "".join(f"<li>{e(w)}</li>" for w in items) + "</ul>\n")
        if run.loss_used is not None:
            parts.append(f"<p>What the loss used (<code>{e(run.loss_used.label)}</code>, evidence "
                         f"{e(run.loss_used.clarity or 'none')}): {e(run.loss_used.statement)}</p>\n")
        wrong = confidently_wrong_text(sweep, run)
        if wrong:
            parts.append(f"<p>Confidently wrong (probability ≥ 0.9, or ≤ 0.1 for one unit): {e(wrong)}</p>\n")
        cards = top_loss_cards(sweep, i, 8)
        if cards:
            parts.append("<p>The validation images it gets most wrong:</p>\n<table><tr><th>rank</th><th>image</th>"
                         "<th>true</th><th>output</th><th>" + e(cards[0].loss_name) + "</th></tr>" + "".join(
                             f"<tr><td>{c.rank}</td><td>{c.index}</td><td>{e(c.truth)}</td><td>{e(c.output)}</td>"
                             f"<td>{c.loss:.4g}</td></tr>" for c in cards) + "</table>\n")
        elif no_gallery_reason(run):
            parts.append(f"<p class=\"muted\">{e(no_gallery_reason(run))}</p>\n")
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
