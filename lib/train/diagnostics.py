"""Symptoms read from a finished run, each naming the knob most likely responsible.

The static verdict comes from the pairing table; these are what the run itself showed, because
the loss curve alone can hide a mismatch (e.g. softmax over one unit: loss falls, output is 1.0).
"""

from __future__ import annotations

import numpy as np

from lib.train import metrics as M
from lib.train.trainer import RunResult, SweepResult

BOUNDS = {"sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, None)}
SAT_TOL = 1e-3


def _symptom(code: str, severity: str, message: str, knob: str) -> dict:
    return {"code": code, "severity": severity, "message": message, "knob": knob}


def saturated_fraction(outputs: np.ndarray, activation: str) -> float:
    """Share of outputs within 1e-3 of a bound of the activation's range."""
    lo, hi = BOUNDS.get(activation, (None, None))
    if lo is None or outputs.size == 0:
        return 0.0
    near = np.abs(outputs - lo) < SAT_TOL
    if hi is not None:
        near |= np.abs(outputs - hi) < SAT_TOL
    return float(np.mean(near))


def diagnose(run: RunResult, sweep: SweepResult) -> list[dict]:
    """Every symptom this run shows, most important first."""
    c = run.config
    out: list[dict] = []
    if run.status == "error":
        return [_symptom("refused", "error", f"Training did not start: {run.error}. {run.verdict.message}",
                         run.verdict.knobs[0] if run.verdict.knobs else "loss")]
    if run.status == "diverged":
        out.append(_symptom("diverged", "error",
                            f"Diverged at epoch {run.diverged_epoch}: the loss or outputs became NaN/inf; the other "
                            "runs were not affected.", "learning_rate or kernel_initializer"))
    if not run.snapshots:
        return out
    final = run.snapshots[max(run.snapshots)]
    before = run.snapshots.get(0)
    task, y_va = sweep.task, sweep.y_val
    finite = np.all(np.isfinite(final))
    hist = run.history

    if finite and final.size and np.ptp(final) < 1e-6:
        value = float(final.flat[0])
        one_softmax = c.activation == "softmax" and final.shape[1] == 1
        why = " — softmax over one unit can say nothing else" if one_softmax else ""
        tail = (" — even though the loss fell, because on TensorFlow the loss saw the pre-softmax logits"
                if one_softmax and _loss_fell(hist) and sweep.backend == "tensorflow" else "")
        out.append(_symptom("constant_output", "error",
                            f"Every prediction is {value:.4g}, the same for every image (to float precision){why}{tail}.", "activation or units"))
    elif finite:
        sat = saturated_fraction(final, c.activation)
        if sat > 0.8:
            out.append(_symptom("saturated", "warning",
                                f"{sat:.0%} of outputs sit within 0.001 of the {c.activation} range's bounds: the "
                                "head is pinned where its gradient vanishes.", "kernel_initializer or learning_rate"))
        if before is not None and np.all(np.isfinite(before)) and saturated_fraction(before, c.activation) > 0.8:
            out.append(_symptom("saturated_at_start", "warning",
                                "Before any training most outputs were already at a bound of the activation: the "
                                "initial weights are too large.", "kernel_initializer"))

    if _flat(hist["loss"]):
        out.append(_symptom("flat_loss", "warning",
                            "The training loss barely moved (under 1% from first to last epoch).",
                            "learning_rate, kernel_initializer or the loss/activation pairing"))

    reported, on_preds = run.final.get("val_loss"), run.final.get("val_loss_on_predictions")
    if (reported is not None and on_preds is not None and np.isfinite(reported)
            and on_preds > max(2 * reported, reported + 0.5)):
        out.append(_symptom("loss_hides_outputs", "warning",
                            f"The reported validation loss is {reported:.3g}, but the same loss on what predict() "
                            f"returns is {on_preds:.3g}: the curve describes values the model never outputs.",
                            "activation / from_logits"))

    if task in ("binary", "multiclass") and finite:
        units = final.shape[1]
        if units > 1 and c.activation != "linear":
            sums = M.probability_view(c, final).sum(axis=1)
            off = float(np.mean(np.abs(sums - 1) > 0.01))
            if off > 0.5:
                out.append(_symptom("sums_not_one", "warning",
                                    f"Outputs of {off:.0%} of images do not sum to 1 (mean sum {sums.mean():.2f}) in a "
                                    "single-label task: they are not a probability distribution over the classes.",
                                    "activation (softmax)"))
        acc, floor = run.final.get("val_accuracy"), M.majority_rate(task, y_va)
        if acc is not None and floor is not None and acc <= floor + 0.01:
            out.append(_symptom("majority_rate", "warning",
                                f"Accuracy {acc:.1%} is no better than always answering the most common class "
                                f"({floor:.1%}).", "activation, loss or learning_rate"))
    if task == "multilabel" and finite and c.activation == "softmax" and final.shape[1] > 1:
        multi = float(np.mean(y_va.sum(axis=1) >= 2)) if y_va.ndim == 2 else 0.0
        if multi > 0:
            out.append(_symptom("labels_compete", "error",
                                f"{multi:.0%} of validation images carry several labels, but softmax rows sum to 1, "
                                "so at most one label can pass 0.5.", "activation (sigmoid)"))
    if task == "regression" and finite:
        pred = final[:, 0]
        lo, hi = BOUNDS.get(c.activation, (None, None))
        if lo is not None:
            outside = float(np.mean((y_va < lo) | ((y_va > hi) if hi is not None else False)))
            pinned = float(np.mean((np.abs(pred - lo) < SAT_TOL) | ((np.abs(pred - hi) < SAT_TOL) if hi is not None else False)))
            rng = f"[{lo:g}, {hi:g}]" if hi is not None else f"[{lo:g}, ∞)"
            if outside > 0:
                out.append(_symptom("pinned_regression", "error" if outside > 0.5 else "warning",
                                    f"{outside:.0%} of targets lie outside {c.activation}'s range {rng}; {pinned:.0%} of "
                                    f"predictions are pinned at its bound (predictions span {pred.min():.3g}…{pred.max():.3g}, "
                                    f"targets {y_va.min():.3g}…{y_va.max():.3g}).", "activation (linear)"))
            elif c.activation == "relu" and pinned > 0.9:
                out.append(_symptom("dead_relu", "error", "Almost every prediction is exactly 0: the ReLU output unit "
                                    "is dead and gets no gradient.", "activation (linear) or bias_initializer"))
    grads = [g for g in hist["grad_norm"] if np.isfinite(g)]
    if grads and max(grads) < 1e-7:
        out.append(_symptom("no_gradient", "warning", "The gradient at the output layer is zero throughout: "
                            "nothing reaches the head's weights.", "activation, kernel_initializer or loss"))
    return out


def _loss_fell(hist: dict) -> bool:
    losses = [v for v in hist.get("loss", []) if np.isfinite(v)]
    return len(losses) >= 2 and losses[-1] < losses[0] - 1e-3


def _flat(losses: list[float]) -> bool:
    vals = [v for v in losses if np.isfinite(v)]
    if len(vals) < 3:
        return False
    return abs(vals[-1] - vals[0]) <= 0.01 * max(abs(vals[0]), 1e-8)


def output_summary(outputs: np.ndarray, activation: str, y: np.ndarray, task: str) -> dict:
    """Numbers that describe one snapshot of validation outputs (for JSON and the verdict texts)."""
    finite = np.isfinite(outputs)
    o = np.where(finite, outputs, np.nan)
    summary = {
        "finite_fraction": float(finite.mean()) if outputs.size else 1.0,
        "mean": _num(np.nanmean(o)), "std": _num(np.nanstd(o)),
        "min": _num(np.nanmin(o)), "max": _num(np.nanmax(o)),
        "quantiles": {q: _num(np.nanquantile(o, float(q))) for q in ("0.05", "0.5", "0.95")},
        "saturated_fraction": saturated_fraction(outputs[finite.all(axis=1)], activation),
        "row_sum_mean": _num(np.nanmean(o.sum(axis=1))), "row_sum_std": _num(np.nanstd(o.sum(axis=1))),
    }
    if task in ("binary", "multiclass") and len(y):
        summary["mean_by_true_class"] = {int(k): [_num(v) for v in np.nanmean(o[y == k], axis=0)]
                                         for k in np.unique(y)}
    return summary


def _num(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def annotate(sweep: SweepResult) -> SweepResult:
    """Fill every run's diagnostics in place (and return the sweep for chaining)."""
    for run in sweep.runs:
        run.diagnostics = diagnose(run, sweep)
    return sweep
