"""Results-view figures: built from real (tiny) sweeps of every task, including diverged and refused runs."""

from __future__ import annotations

import html
import re
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
import pytest

from lib.heads.config import HeadConfig, parse_head_string
from lib.report.base import COMPACT_CHARS, HEIGHT, run_colors
from lib.report.confusion import confusion_matrix, reliability_diagram
from lib.report.curves import MAJORITY_TEXT, grad_norm_curves, loss_curves, metric_curves
from lib.report.html_report import comparison_figures, html_report
from lib.report.outputs import output_histograms, output_sum_histogram
from lib.train.diagnostics import annotate
from lib.train.metrics import float_equal
from lib.train.trainer import train

EVIL = "<script>alert('x')</script> & co"
DIVERGE = "optimizer=sgd,learning_rate=10,kernel_initializer=random_normal(stddev=100)"
SPECS = {
    "binary": ["learning_rate=0.01", "activation=softmax", "activation=linear,from_logits=true,learning_rate=0.01"],
    "multiclass": ["learning_rate=0.01", "loss=categorical_crossentropy,labels=integer",
                   "activation=sigmoid,loss=binary_crossentropy,labels=one_hot,learning_rate=0.01"],
    "multilabel": ["learning_rate=0.01", "activation=softmax"],
    "regression": ["learning_rate=0.01", DIVERGE, "activation=sigmoid"],
}
TASKS = tuple(SPECS)


@pytest.fixture(scope="module")
def sweeps(toy, tiny_backbone):
    """One annotated 3-epoch sweep per task, trained once for the whole module."""
    out = {}
    for task, specs in SPECS.items():
        configs = [parse_head_string(task, s) for s in specs]
        if task == "binary":
            configs.append(HeadConfig(task="binary", name=EVIL, learning_rate=0.01))
        out[task] = annotate(train(configs, toy(task), epochs=3, seed=0, loaded=tiny_backbone))
    return out


def _trained(sweep):
    return [r for r in sweep.runs if r.status != "error"]


def _texts(fig: go.Figure) -> str:
    """Every piece of text in a figure's layout (title, subtitle, annotations, subplot titles)."""
    parts = [fig.layout.title.text or "", fig.layout.title.subtitle.text or ""]
    parts += [a.text or "" for a in fig.layout.annotations]
    return "\n".join(parts).replace("<br>", " ")  # wrapped lines read as one


def _col(trace) -> int:
    """1 or 2: which of the before/after columns a trace of a make_subplots figure sits in."""
    return 1 if trace.xaxis in ("x", None) or int(trace.xaxis[1:]) % 2 == 1 else 2


def test_the_sweeps_hold_the_cases_under_test(sweeps):
    assert [r.status for r in sweeps["regression"].runs] == ["ok", "diverged", "ok"]
    assert sweeps["multiclass"].runs[1].status == "error" and not sweeps["multiclass"].runs[1].snapshots
    softmax_one = sweeps["binary"].runs[1]
    assert softmax_one.config.activation == "softmax" and softmax_one.snapshots[3].shape[1] == 1


def test_run_colors_are_stable_and_distinct():
    assert run_colors(12) == run_colors(20)[:12]
    assert len(set(run_colors(12))) == 12
    assert run_colors(3) == run_colors(12)[:3]
    assert run_colors(13)[12] == run_colors(1)[0]


@pytest.mark.parametrize("task", TASKS)
def test_loss_curves_draw_train_and_validation_per_trained_run(sweeps, task):
    sweep = sweeps[task]
    fig = loss_curves(sweep)
    trained = _trained(sweep)
    assert len(fig.data) == 2 * len(trained)
    assert [t.line.dash for t in fig.data] == ["solid"] * len(trained) + ["dash"] * len(trained)
    colors = run_colors(len(sweep.runs))
    idx = [i for i, r in enumerate(sweep.runs) if r.status != "error"]
    assert [t.line.color for t in fig.data[:len(trained)]] == [colors[i] for i in idx]
    for t in fig.data:
        assert np.all(np.isfinite(np.asarray(t.y, dtype=float)))
    assert fig.layout.font.size >= 14
    # drawn in half a page's width: legend under the plot, subtitle wrapped, and the extra room they take
    # is added to the figure, so the plot itself keeps the height of a full-width chart's
    legend = fig.layout.legend  # under the plot: at the figure's bottom edge, below the x axis title
    assert legend.orientation == "h" and (legend.yref, legend.yanchor, legend.y) == ("container", "bottom", 0)
    assert fig.layout.margin.b >= 60 + 24  # room for the axis title and a legend row
    assert all(len(line) <= COMPACT_CHARS for line in fig.layout.title.subtitle.text.split("<br>"))
    m = fig.layout.margin
    assert fig.layout.height - m.t - m.b == HEIGHT - 70 - 26 - 4 - 60
    assert "solid" in fig.layout.title.text and "dashed" in fig.layout.title.text


def test_diverged_run_is_named_cut_short_and_marked(sweeps):
    sweep = sweeps["regression"]
    bad = sweep.runs[1]
    k = bad.diverged_epoch
    fig = loss_curves(sweep)
    names = [t.name for t in fig.data]
    # two runs share 'linear + MSE': named by what differs (SGD at lr 10), so no number is needed
    assert "lr 10" in bad.label and "SGD" in bad.label
    assert f"{bad.label} (diverged @ {k})" in names
    train_trace = next(t for t in fig.data if "diverged" in t.name and t.line.dash == "solid")
    finite = [e for e, v in zip(bad.history["epoch"], bad.history["loss"]) if np.isfinite(v)]
    assert list(train_trace.x) == finite and len(train_trace.x) >= 1
    assert list(train_trace.marker.symbol)[-1] == "x"
    assert any(s.type == "line" and s.x0 == k for s in fig.layout.shapes)
    assert f"diverged @ {k}" in _texts(fig)
    # the MAE spans 20+ decades once it diverges: the metric chart switches to a log axis
    assert metric_curves(sweep).layout.yaxis.type == "log"


def test_log_scale_loss_keeps_only_positive_finite_points(sweeps):
    fig = loss_curves(sweeps["regression"], log_y=True)
    assert fig.layout.yaxis.type == "log"
    assert len(fig.data) == 6
    for t in fig.data:
        y = np.asarray(t.y, dtype=float)
        assert np.all(np.isfinite(y)) and np.all(y > 0)


def test_refused_run_has_no_curve_but_is_named(sweeps):
    sweep = sweeps["multiclass"]
    refused = sweep.runs[1]
    for fig in (loss_curves(sweep), metric_curves(sweep), grad_norm_curves(sweep)):
        assert all(refused.label not in t.name for t in fig.data)
        assert "Not trained" in _texts(fig) and refused.label in _texts(fig)


@pytest.mark.parametrize("task", TASKS)
def test_metric_curves_show_the_primary_metric_and_the_majority_floor(sweeps, task):
    sweep = sweeps[task]
    fig = metric_curves(sweep)
    assert len(fig.data) == len(_trained(sweep))
    # plotly does not wrap titles: a half-page chart at 1280 px holds about 48 characters (the
    # multilabel one, 62, ran past its box)
    assert len(fig.layout.title.text) <= 45, fig.layout.title.text
    key = {"binary": "val_accuracy", "multiclass": "val_accuracy", "multilabel": "val_exact_match",
           "regression": "val_mae"}[task]
    first = _trained(sweep)[0]
    np.testing.assert_allclose(fig.data[0].y, first.history[key])
    floor = [a for a in fig.layout.annotations if MAJORITY_TEXT in (a.text or "")]
    if task in ("binary", "multiclass"):
        assert len(floor) == 1
        rate = np.bincount(sweep.y_val.astype(int)).max() / len(sweep.y_val)
        line = [s for s in fig.layout.shapes if s.line.dash == "dot" and s.y0 == s.y1]
        assert len(line) == 1 and line[0].y0 == pytest.approx(rate)
    else:
        assert not floor


@pytest.mark.parametrize("task", TASKS)
def test_grad_norm_curves_are_log_scaled(sweeps, task):
    fig = grad_norm_curves(sweeps[task])
    assert fig.layout.yaxis.type == "log"
    assert len(fig.data) == len(_trained(sweeps[task]))
    for t in fig.data:
        assert np.all(np.asarray(t.y, dtype=float) > 0)


def test_binary_histograms_split_by_true_class_in_probability_space(sweeps):
    sweep = sweeps["binary"]
    n_val = len(sweep.y_val)
    for i in (0, 2):  # sigmoid, and linear logits converted to probabilities
        fig = output_histograms(sweep, i)
        titles = _texts(fig)
        assert "before training (epoch 0)" in titles and "after training (epoch 3)" in titles
        for col in (1, 2):
            traces = [t for t in fig.data if _col(t) == col]
            assert {t.name for t in traces} == {"true: dark", "true: bright"}
            assert sum(len(t.x) for t in traces) == n_val
            values = np.concatenate([np.asarray(t.x, dtype=float) for t in traces])
            assert values.min() >= 0 and values.max() <= 1
        assert tuple(fig.layout.xaxis.range) == tuple(fig.layout.xaxis2.range) == (-0.02, 1.02)
    # the logits head: what is drawn is sigmoid(raw output)
    fig = output_histograms(sweep, 2)
    raw = sweep.runs[2].snapshots[3][:, 0]
    after = np.sort(np.concatenate([np.asarray(t.x, dtype=float) for t in fig.data if _col(t) == 2]))
    np.testing.assert_allclose(after, np.sort(1 / (1 + np.exp(-raw))), rtol=1e-6)


def test_multiclass_and_multilabel_histograms(sweeps):
    mc = sweeps["multiclass"]
    fig = output_histograms(mc, 0)
    names = {t.name for t in fig.data}
    assert names == {"unit of the true class", "units of the other classes"}
    after = [t for t in fig.data if _col(t) == 2]
    n_val, k = len(mc.y_val), len(mc.label_names)
    assert sorted(len(t.x) for t in after) == [n_val, n_val * (k - 1)]
    ml = sweeps["multilabel"]
    fig = output_histograms(ml, 0)
    titles = _texts(fig)
    for label in ml.label_names:  # one row per label
        assert f"after training (epoch 3) — {label}" in titles
    assert {t.name for t in fig.data} == {"label present", "label absent"}
    assert sum(len(t.x) for t in fig.data if _col(t) == 2) == len(ml.y_val) * len(ml.label_names)


def test_regression_outputs_are_a_scatter_against_the_diagonal(sweeps):
    sweep = sweeps["regression"]
    fig = output_histograms(sweep, 0)
    diag = [t for t in fig.data if t.name.startswith("perfect prediction")]
    assert len(diag) == 2 and list(diag[0].x) == list(diag[0].y)
    points = [t for t in fig.data if t.name == "validation images"]
    np.testing.assert_allclose(points[1].y, sweep.runs[0].snapshots[3][:, 0], rtol=1e-6)
    np.testing.assert_allclose(points[1].x, sweep.y_val, rtol=1e-6)
    # the diverged run: only finite predictions are drawn, and its last snapshot is the default
    fig = output_histograms(sweep, 1)
    bad = sweep.runs[1]
    assert f"after training (epoch {bad.diverged_epoch})" in _texts(fig)
    for t in fig.data:
        assert np.all(np.isfinite(np.asarray(t.y, dtype=float)))


def test_an_epoch_can_be_chosen_and_the_nearest_snapshot_is_used(sweeps):
    sweep = sweeps["binary"]
    assert "after training (epoch 1)" in _texts(output_histograms(sweep, 0, epoch=1))
    assert "after training (epoch 3)" in _texts(output_histograms(sweep, 0, epoch=40))


def test_softmax_over_one_unit_sums_to_one(sweeps):
    sweep = sweeps["binary"]
    fig = output_sum_histogram(sweep, 1)
    assert len(fig.data) == 2
    for t in fig.data:
        x = np.asarray(t.x, dtype=float)
        assert len(x) == len(sweep.y_val) and np.all(float_equal(x, 1.0))  # 0.99999994 with Eigen kernels
    assert "every image: 1" in _texts(fig)
    # a sigmoid multilabel head's sums spread out
    ml = output_sum_histogram(sweeps["multilabel"], 0)
    assert np.ptp(np.asarray(ml.data[1].x, dtype=float)) > 0.5
    # a multilabel softmax head: every row sums to 1 as well
    ml_soft = output_sum_histogram(sweeps["multilabel"], 1)
    np.testing.assert_allclose(np.asarray(ml_soft.data[1].x, dtype=float), 1.0, atol=1e-5)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_confusion_matrix_counts_every_validation_image(sweeps, task):
    sweep = sweeps[task]
    for i, run in enumerate(sweep.runs):
        fig = confusion_matrix(sweep, i)
        if run.status == "error":
            assert not fig.data and "refused" in _texts(fig)
            continue
        z = np.asarray(fig.data[0].z)
        assert z.sum() == len(sweep.y_val)
        assert list(fig.data[0].y) == list(sweep.label_names)
        assert list(fig.data[0].x)[:len(sweep.label_names)] == list(sweep.label_names)
        acc = run.final["val_accuracy"]
        assert np.trace(z[:, :len(sweep.label_names)]) == pytest.approx(acc * len(sweep.y_val))


def test_softmax_over_one_unit_fills_one_column(sweeps):
    # its output is always 1.0 > 0.5: every image is called the positive class
    z = np.asarray(confusion_matrix(sweeps["binary"], 1).data[0].z)
    assert z[:, 0].sum() == 0 and z[:, 1].sum() == len(sweeps["binary"].y_val)


def test_confusion_matrix_only_for_single_label_tasks(sweeps):
    for task in ("multilabel", "regression"):
        fig = confusion_matrix(sweeps[task], 0)
        assert not fig.data and "binary and multiclass" in _texts(fig)


def test_reliability_diagram(sweeps):
    binary = sweeps["binary"]
    fig = reliability_diagram(binary, 0)
    diag, points = fig.data
    assert list(diag.x) == [0, 1] and list(diag.y) == [0, 1]
    assert int(np.sum(points.customdata)) == len(binary.y_val)
    assert np.all((np.asarray(points.x) >= 0) & (np.asarray(points.x) <= 1))
    assert np.all((np.asarray(points.y) >= 0) & (np.asarray(points.y) <= 1))
    ml = sweeps["multilabel"]  # every (image, label) pair pooled
    fig = reliability_diagram(ml, 0)
    assert int(np.sum(fig.data[1].customdata)) == ml.y_val.size
    assert "calibration applies to classification" in _texts(reliability_diagram(sweeps["regression"], 0)).lower()


def test_per_run_figures_survive_a_refused_run(sweeps):
    sweep = sweeps["multiclass"]
    for fn in (output_histograms, output_sum_histogram, confusion_matrix, reliability_diagram):
        fig = fn(sweep, 1)
        assert isinstance(fig, go.Figure) and not fig.data
        assert "refused" in _texts(fig)


def test_a_run_with_nothing_finite_draws_empty_curves_and_says_so(sweeps):
    base = sweeps["binary"]
    run = base.runs[0]
    nan = float("nan")
    wrecked = replace(run, status="diverged", diverged_epoch=1,
                      history={k: [1] if k == "epoch" else [nan] for k in run.history},
                      snapshots={0: np.full_like(run.snapshots[0], nan), 1: np.full_like(run.snapshots[0], np.inf)},
                      final={"val_loss": nan, "val_accuracy": None})
    sweep = replace(base, runs=[wrecked, run])
    fig = loss_curves(sweep)
    assert len(fig.data) == 4 and len(fig.data[0].x) == 0
    assert f"No finite value to draw: {run.label} #1 (diverged @ 1)" in _texts(fig)  # the same run twice: numbered
    for fn in (metric_curves, grad_norm_curves):
        assert isinstance(fn(sweep), go.Figure)
    assert "NaN/inf" in _texts(output_histograms(sweep, 0))
    assert "NaN/inf" in _texts(confusion_matrix(sweep, 0))
    assert "NaN/inf" in _texts(reliability_diagram(sweep, 0))
    assert isinstance(output_sum_histogram(sweep, 0), go.Figure)
    assert "diverged @ 1" in html_report(sweep)


def test_twelve_runs_get_twelve_colours_and_unique_names(sweeps):
    base = sweeps["binary"]
    sweep = replace(base, runs=[base.runs[0]] * 12)
    fig = loss_curves(sweep)
    solid = [t for t in fig.data if t.line.dash == "solid"]
    assert len({t.line.color for t in solid}) == 12
    assert len({t.name for t in solid}) == 12


@pytest.mark.parametrize("task", TASKS)
def test_comparison_figures_in_a_fixed_order(sweeps, task):
    sweep = sweeps[task]
    figs = comparison_figures(sweep)
    keys = list(figs)
    assert keys[:4] == ["Loss", "Validation metric", "Gradient norm", "Every head, epoch by epoch (slider and play button)"]
    assert all(isinstance(f, go.Figure) for f in figs.values())
    for i, run in enumerate(sweep.runs):
        per_run = [k for k in keys if k.startswith(f"Run {i + 1}:")]
        if run.status == "error":
            assert not per_run
            continue
        expected = {"binary": ["outputs", "what the loss saw", "output sums", "confusion matrix", "calibration"],
                    "multiclass": ["outputs", "what the loss saw", "output sums", "confusion matrix", "calibration"],
                    "multilabel": ["outputs", "what the loss saw", "output sums", "calibration"],
                    "regression": ["outputs", "residuals"]}[task]
        assert [k.rsplit(" — ", 1)[1] for k in per_run] == expected
    assert list(comparison_figures(sweep)) == keys  # deterministic


@pytest.mark.parametrize("task", TASKS)
def test_html_report_is_self_contained_and_complete(sweeps, task):
    sweep = sweeps[task]
    page = html_report(sweep)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("plotly.js v") == 1  # the bundle's banner: inlined exactly once
    assert not re.search(r"<script[^>]*\ssrc=", page)  # nothing fetched from elsewhere
    assert page.count('class="plotly-graph-div"') == len(comparison_figures(sweep))
    for value in (sweep.dataset, sweep.task, sweep.backbone, sweep.weights, sweep.backend, sweep.keras_version):
        assert html.escape(str(value)) in page
    for run in sweep.runs:
        assert html.escape(run.label) in page
        assert html.escape(run.verdict.message) in page
        for d in run.diagnostics:
            assert html.escape(d["message"]) in page
    if task == "regression":
        assert "diverged at epoch" in page
    if task == "multiclass":
        assert html.escape(sweep.runs[1].error) in page


def test_html_report_escapes_user_text(sweeps):
    sweep = sweeps["binary"]
    page = html_report(sweep, title="A <b>bold</b> title")
    assert "<script>alert" not in page
    assert html.escape(EVIL) in page
    assert "<title>A &lt;b&gt;bold&lt;/b&gt; title</title>" in page
    # inside figures the name is escaped for plotly's HTML-like labels too
    fig = loss_curves(sweep)
    assert any(t.name.startswith("&lt;script&gt;") for t in fig.data)


def test_every_figure_carries_the_template_even_if_plotly_default_changes(monkeypatch):
    import plotly.io as pio

    from lib.report import base

    white = pio.templates[base.TEMPLATE].layout.to_plotly_json()
    fig = base._message_figure("t", "m")
    assert fig.layout.template.layout.to_plotly_json() == white
    monkeypatch.setattr(pio.templates, "default", "plotly_dark")
    fig = base._message_figure("t", "m")
    assert fig.layout.template.layout.to_plotly_json() == white


def test_half_width_figures_wrap_their_subtitles_and_projector_scales_them(sweeps):
    """Confusion and calibration are drawn side by side in half the page: their subtitles wrap (they
    were cut to "A si…"); projector() makes every font and the height larger and re-wraps long lines."""
    from lib.report.base import FONT_SIZE, FULL_CHARS, PROJECTOR_SCALE, projector

    for fig in (confusion_matrix(sweeps["binary"], 0), reliability_diagram(sweeps["binary"], 0)):
        lines = fig.layout.title.subtitle.text.split("<br>")
        assert len(lines) >= 2 and all(len(line) <= COMPACT_CHARS for line in lines), lines
        height, top = fig.layout.height, fig.layout.margin.t
        projector(fig)
        assert fig.layout.font.size == round(FONT_SIZE * PROJECTOR_SCALE)
        assert fig.layout.height >= round(height * PROJECTOR_SCALE) and fig.layout.margin.t >= round(top * PROJECTOR_SCALE)
    scatter = projector(output_histograms(sweeps["regression"], 0))  # regression: predicted vs true
    lines = scatter.layout.title.subtitle.text.split("<br>")
    assert all(len(line) <= round(FULL_CHARS / PROJECTOR_SCALE) for line in lines), lines


def test_csv_rows_carry_the_loss_on_predictions_and_every_head_setting(sweeps):
    from lib.report.html_report import html_report
    from lib.report.results import history_rows

    sweep = sweeps["multiclass"]
    rows = history_rows(sweep)
    for run in _trained(sweep):
        mine = [r for r in rows if r["run"] == sweep.runs.index(run) + 1]
        assert [r["epoch"] for r in mine] == run.history["epoch"]
        assert mine[-1]["val_loss_on_predictions"] == run.final.get("val_loss_on_predictions") is not None
        assert all(r["val_loss_on_predictions"] is None for r in mine[:-1])
        for r in mine:  # defaults included: a row alone says which head it was
            assert (r["head_activation"], r["head_loss"], r["head_optimizer"], r["head_learning_rate"]) == (
                run.config.activation, run.config.loss, run.config.optimizer, run.config.learning_rate)
    report = html_report(sweep)
    softmax_head = next(r for r in sweep.runs if r.config.activation == "softmax")
    assert softmax_head.config.to_dict()["activation"] == "softmax"
    assert "activation=softmax" in report and "optimizer=adam" in report  # the defaults are written out


# ---- inside the head (lib/report/inside.py) -------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
def test_loss_seen_panels_for_every_run_including_refused_and_diverged(sweeps, task):
    from lib.report.inside import loss_seen_figure

    sweep = sweeps[task]
    for i, run in enumerate(sweep.runs):
        fig = loss_seen_figure(sweep, i)
        if run.status == "error":
            assert "Keras refused this head" in _texts(fig)
        elif task == "regression":
            assert fig.layout.title.text.startswith("Residuals") and "predicted − true" in fig.layout.xaxis.title.text
        else:
            assert "loss used: " in _texts(fig) and run.loss_used.statement[:40] in _texts(fig)
            # the bars of each panel count every validation image (multi-unit/-label: every value) once
            per_image = {"binary": 1, "multiclass": sweep.n_outputs, "multilabel": sweep.n_outputs}[task]
            bars = [t for t in fig.data if t.xaxis in ("x", None)]
            if np.all(np.isfinite(run.snapshots[0])):
                assert sum(int(np.sum(t.y)) for t in bars) == len(sweep.y_val) * per_image


@pytest.mark.parametrize("task", TASKS)
def test_the_scrubber_has_a_frame_per_kept_epoch_moving_every_trained_head(sweeps, task):
    from lib.report.inside import scrubber_figure

    sweep = sweeps[task]
    fig = scrubber_figure(sweep)
    trained = [r for r in sweep.runs if r.snapshots]
    epochs = sorted(set().union(*(r.snapshots for r in trained)))
    assert [f.name for f in fig.frames] == [str(e) for e in epochs]
    assert [s.label for s in fig.layout.sliders[0].steps] == [str(e) for e in epochs]
    moving = fig.frames[0].traces
    assert all(f.traces == moving and len(f.data) == len(moving) for f in fig.frames)
    assert len({fig.data[k].xaxis for k in moving}) == 2 * len(trained)  # both panels of every trained head
    for k, frame_trace in zip(moving, fig.frames[-1].data, strict=True):  # opens at the last epoch
        assert list(fig.data[k].y) == list(frame_trace.y)
    if task == "binary":
        # a long name is cut before it is escaped (never mid-entity), and shown as text
        assert html.escape(EVIL[:25], quote=False) + "…" in _texts(fig) and "<script>" not in _texts(fig)


def test_same_image_every_head_and_the_top_loss_cards(sweeps):
    from lib.report.inside import (
        confidently_wrong_text,
        no_gallery_reason,
        same_image_figure,
        top_loss_cards,
    )

    sweep = sweeps["binary"]
    worst = sweep.runs[1].top_losses[0][0]
    fig = same_image_figure(sweep, worst)
    assert len(fig.data) == len(_trained(sweep))
    softmax_bar = fig.data[1]
    assert float_equal(softmax_bar.y[0], 1.0)  # softmax over one unit: 1 for this image too
    cards = top_loss_cards(sweep, 1, 4)
    assert [c.rank for c in cards] == [1, 2, 3, 4] and cards[0].index == worst
    assert cards[0].truth == sweep.label_names[int(sweep.y_val[worst])]
    assert "(to float precision)" in cards[0].output
    assert confidently_wrong_text(sweep, sweep.runs[1]) == f"{sweep.runs[1].confidently_wrong} of {len(sweep.y_val)} images"
    reg = sweeps["regression"]
    assert "diverged at epoch" in no_gallery_reason(reg.runs[1])
    assert confidently_wrong_text(reg, reg.runs[0]) == ""
    assert top_loss_cards(reg, 0, 2)[0].loss_name == "absolute error"
    assert "Keras refused" in no_gallery_reason(sweeps["multiclass"].runs[1])
    assert len(same_image_figure(reg, 0).data) == 2  # the diverged head has no bars, and the hint says so
    assert f"No bars for head 2 (diverged at epoch {reg.runs[1].diverged_epoch})" in _texts(same_image_figure(reg, 0))


def test_val_images_only_for_the_data_the_sweep_was_trained_on(sweeps, toy):
    from lib.report.inside import val_images

    sweep, data = sweeps["binary"], toy("binary")
    images = val_images(sweep, data)
    assert images.shape[0] == len(sweep.y_val)
    np.testing.assert_array_equal(images[0], data.images[np.flatnonzero(data.is_val)[0]])
    assert val_images(sweep, toy("multiclass")) is None and val_images(sweep, None) is None
    assert val_images(sweep, replace(data, y=1 - data.y)) is None  # other targets: not this sweep's images


@pytest.mark.parametrize("task", TASKS)
def test_the_image_picker_has_one_point_per_validation_image_carrying_its_index(sweeps, task):
    from lib.report.inside import image_picker_figure

    sweep = sweeps[task]
    for i, run in enumerate(sweep.runs):
        fig = image_picker_figure(sweep, i)
        if run.status != "ok":
            assert not fig.data and ("diverged" in _texts(fig) or "refused" in _texts(fig))
            continue
        indices = sorted(int(k) for t in fig.data for k in t.customdata)
        assert indices == list(range(len(sweep.y_val)))  # every image once, clickable to its index
        worst, loss = run.top_losses[0]
        trace = next(t for t in fig.data if worst in list(t.customdata))
        assert float(trace.y[list(trace.customdata).index(worst)]) == pytest.approx(loss, rel=1e-6)


def test_an_upload_with_one_image_per_class_renders_every_inside_view(tiny_backbone):
    """Four images, one per class, as an upload: one validation image, three classes absent from it."""
    from conftest import toy_data

    from lib.report.inside import (
        image_picker_figure,
        loss_seen_figure,
        same_image_figure,
        scrubber_figure,
        top_loss_cards,
        val_images,
    )

    data = toy_data("multiclass", n=4, cache_on_disk=False)
    sweep = annotate(train([parse_head_string("multiclass", s) for s in ("", "activation=sigmoid")], data,
                           epochs=3, seed=0, loaded=tiny_backbone))
    assert len(sweep.y_val) == 1
    for i, run in enumerate(sweep.runs):
        assert run.loss_used is not None and run.loss_used.label != "unknown"
        assert [c.index for c in top_loss_cards(sweep, i)] == [0]
        assert run.confidently_wrong in (0, 1)
        for fig in (loss_seen_figure(sweep, i), image_picker_figure(sweep, i)):
            assert isinstance(fig, go.Figure) and fig.to_json()
    assert len(scrubber_figure(sweep).frames) == 4
    assert len(same_image_figure(sweep, 0).data) == 2
    assert val_images(sweep, data).shape[0] == 1
    assert "<!DOCTYPE html>" in html_report(sweep)
