"""Symptoms read from a finished run, each naming the knob most likely responsible.

The static verdict comes from the pairing table; these are what the run itself showed, because
the loss curve alone can hide a mismatch (e.g. softmax over one unit: loss falls, output is 1.0).
`lib.train.verdict` reconciles them with the table into the one verdict a head gets after training.
"""

from __future__ import annotations

import numpy as np

from lib.heads.config import CE_LOSSES
from lib.heads.pairings import backend_title
from lib.train import metrics as M
from lib.train.trainer import RunResult, SweepResult

BOUNDS = {"sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, None)}
SAT_TOL = 1e-3
# Every symptom a run can show (lib/train/claims.py holds a run that shows each one).
SYMPTOMS = (
    "clipped_outputs", "constant_output", "dead_relu", "diverged", "flat_loss", "labels_compete",
    "learning_rate", "loss_hides_outputs", "majority_rate", "no_gradient", "overfitting", "pinned_regression",
    "refused", "saturated", "saturated_at_start", "sums_not_one", "zero_loss_moving",
)


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
        zeros = c.kernel_initializer == "zeros" and bool(c.hidden)
        why = why or (" — a zeros-initialised kernel gives every hidden unit the same zero output, and zero "
                      "gradient, so the head never leaves its start" if zeros else "")
        knob = ("activation or units" if one_softmax else
                "kernel_initializer (glorot_uniform or he_normal)" if zeros else
                "kernel_initializer or learning_rate")
        out.append(_symptom("constant_output", "error",
                            f"Every prediction is {value:.4g}, the same for every image (to float precision){why}{tail}.", knob))
    elif finite:
        reads_logits = loss_reads_logits(c, sweep.backend)
        gradient = (f"on {backend_title(sweep.backend)} the loss reads the pre-{c.activation} logits, so its gradient "
                    "(p − y) is still alive" if reads_logits else
                    f"the loss reads the {c.activation} outputs themselves, so at a bound its gradient vanishes")
        sat, wrong = saturated_fraction(final, c.activation), wrong_side_fraction(final, c, sweep)
        # Confident, correct outputs are what cross-entropy converges to (its gradient is p − y). Pinned on the
        # wrong side is a symptom: when the loss reads the logits such outputs still get a gradient, so only
        # most of them being wrong counts; when it reads the outputs they are stuck, so a tenth is enough.
        # Where the wrong side cannot be told, only a loss that reads the outputs makes pinning a symptom.
        stuck = 0.5 if reads_logits else 0.1
        if sat > 0.8 and (wrong > stuck if wrong is not None else not reads_logits):
            share = f", {wrong:.0%} of them on the wrong side" if wrong is not None else ""
            out.append(_symptom("saturated", "warning",
                                f"{sat:.0%} of outputs sit within 0.001 of the {c.activation} range's bounds{share}: "
                                f"the head is confidently wrong, and {gradient}.",
                                "learning_rate or kernel_initializer"))
        if before is not None and np.all(np.isfinite(before)) and saturated_fraction(before, c.activation) > 0.8:
            losses = [v for v in hist.get("loss", []) if np.isfinite(v)]
            moved = f" (training loss {losses[0]:.3g} → {losses[-1]:.3g})" if len(losses) >= 2 else ""
            out.append(_symptom("saturated_at_start", "warning",
                                "Before any training most outputs were already at a bound of the activation: the "
                                f"initial weights are too large; {gradient}{moved if reads_logits else ''}, but the "
                                "head starts far from any answer.", "kernel_initializer"))
        if c.activation == "linear" and c.loss in CE_LOSSES and not c.from_logits:
            outside = float(np.mean((final < 0) | (final > 1)))
            if outside > 0.05:
                out.append(_symptom("clipped_outputs", "error",
                                    f"{outside:.0%} of the raw outputs lie outside [0, 1] (they span {final.min():.3g}"
                                    f"…{final.max():.3g}); with from_logits=False the loss clips them into (0, 1) first, "
                                    "so it never sees what the model outputs.", "from_logits or activation"))

    # A loss that clips the outputs into (0, 1) jumps towards −log(1e−7) ≈ 16 whatever the steps, so its
    # trend says nothing about the learning rate or overfitting (clipped_outputs says why).
    clips = c.loss in CE_LOSSES and not c.from_logits and c.activation not in ("sigmoid", "softmax")
    if not clips:
        out += _learning_rate_symptoms(run)
        if not any(d["code"] == "learning_rate" for d in out):  # wild steps explain a rising validation loss
            out += _overfitting(hist, c)
    moving = zero_loss_moving(run)
    if moving:
        loss_max, dz = moving  # why (TensorFlow's fused kernel) is the table's to say: verdict.combine adds it
        out.append(_symptom("zero_loss_moving", "error",
                            f"The reported loss is {loss_max:.2g} at every epoch, yet the output layer's pre-activation "
                            f"values moved by {dz:.3g} on average: the weights changed with a gradient that is not "
                            "this loss's.", "loss (binary_crossentropy for one unit) or units (2)"))
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


def zero_loss_moving(run: RunResult) -> tuple[float, float] | None:
    """(largest reported loss, mean change of the pre-activation values) when the training loss is 0 at
    every epoch (within 1e-6: float noise on a loss of order 1) while the output layer's pre-activation
    values moved by more than 0.01 on average; else None."""
    losses = np.asarray(run.history.get("loss", []), float)
    if losses.size == 0 or not np.all(np.abs(losses) < 1e-6):
        return None
    dz = pre_activation_change(run)
    return (float(np.max(np.abs(losses))), dz) if dz is not None and np.isfinite(dz) and dz > 0.01 else None


def pre_activation_change(run: RunResult) -> float | None:
    """Mean absolute change of the output layer's pre-activation values from before training to the last
    kept epoch; None when the run kept no two snapshots of them."""
    z = run.pre_activations
    if 0 not in z or len(z) < 2:
        return None
    return float(np.mean(np.abs(z[max(z)] - z[0])))


def loss_reads_logits(config, backend: str) -> bool:
    """Whether the loss sees the pre-activation logits: Keras on TensorFlow hands a cross-entropy loss the
    logits a sigmoid/softmax output carries (with from_logits=False); other backends give it the outputs."""
    return (backend == "tensorflow" and config.loss in CE_LOSSES and not config.from_logits
            and config.activation in ("sigmoid", "softmax"))


def wrong_side_fraction(outputs: np.ndarray, config, sweep: SweepResult) -> float | None:
    """Of the outputs pinned at a bound, the share pinned on the wrong side of its target (1 where the
    target is 0 or the reverse); None when the outputs do not line up with 0/1 targets."""
    task, y = sweep.task, np.asarray(sweep.y_val)
    if task not in ("binary", "multiclass", "multilabel") or config.activation not in ("sigmoid", "softmax"):
        return None
    units = outputs.shape[1]
    if task == "multilabel":
        target = y.astype(float)
    elif units == 1 and task == "binary":
        target = y.reshape(-1, 1).astype(float)
    elif units == (2 if task == "binary" else sweep.n_outputs):
        target = np.eye(units)[y.astype(int)]
    else:
        return None
    if target.shape != outputs.shape:
        return None
    pinned = (np.abs(outputs) < SAT_TOL) | (np.abs(outputs - 1) < SAT_TOL)
    if not pinned.any():
        return None
    return float(np.mean(np.abs(outputs[pinned] - target[pinned]) > 0.5))


def _learning_rate_symptoms(run: RunResult) -> list[dict]:
    """Losses that grow by orders of magnitude, or swing up and down by large factors: steps too large."""
    c, h = run.config, run.history
    start = run.final.get("initial_val_loss")
    val = [v for v in h.get("val_loss", []) if np.isfinite(v)]
    knob = f"learning_rate (try {c.learning_rate / 10:g}, ten times smaller)"
    if start is not None and np.isfinite(start) and start > 0 and val:
        peak = max(val)
        if peak > 10 * start:
            k = h["val_loss"].index(peak) + 1
            return [_symptom("learning_rate", "error",
                             f"The validation loss grew from {start:.3g} before training to {peak:.4g} at epoch {k} "
                             f"(×{peak / start:.0f}, and {val[-1]:.4g} at the end): the optimizer's steps are far too "
                             f"large for this head (learning rate {c.learning_rate:g}).", knob)]
    # Swings: the loss changes direction with steps of more than 20% on both sides, several times.
    steps = [b / a for a, b in zip(val, val[1:]) if a > 0]
    reversals = sum(1 for r1, r2 in zip(steps, steps[1:])
                    if (r1 > 1.2 and r2 < 1 / 1.2) or (r1 < 1 / 1.2 and r2 > 1.2))
    never_better = start is not None and np.isfinite(start) and len(val) >= 3 and min(val) > 1.5 * start
    if reversals >= 3 or never_better:
        what = [f"swings up and down by more than 20% from one epoch to the next ({reversals} reversals)"] if reversals >= 3 else []
        if never_better:
            what.append(f"never came below its value before training ({start:.3g}; lowest {min(val):.3g})")
        return [_symptom("learning_rate", "warning",
                         f"The validation loss {' and '.join(what)}: the optimizer overshoots "
                         f"(learning rate {c.learning_rate:g}).", knob)]
    return []


def _overfitting(hist: dict, config) -> list[dict]:
    """Validation loss rising for several epochs after its best while the training loss keeps falling."""
    val, tr = hist.get("val_loss", []), hist.get("loss", [])
    if len(val) < 6 or not all(np.isfinite(val)) or not all(np.isfinite(tr)):
        return []
    best = int(np.argmin(val))
    rising = len(val) - 1 - best
    # Several epochs, clearly above the best (10%, so epoch-to-epoch noise on a few hundred images is not it),
    # and every one of the last three above it: a trend, not a blip.
    if (rising >= 3 and val[-1] > 1.1 * val[best] and val[-1] - val[best] > 0.02
            and min(val[-3:]) > 1.03 * val[best] and tr[-1] < tr[best]):
        e = hist["epoch"]
        smaller = ("pooling gap instead of flatten" if config.pooling == "flatten" else
                   "fewer hidden units" if config.hidden else "fewer weights")
        return [_symptom("overfitting", "warning",
                         f"Overfitting from epoch {e[best] + 1}: the validation loss rose from {val[best]:.3g} "
                         f"(epoch {e[best]}) to {val[-1]:.3g} while the training loss kept falling "
                         f"({tr[best]:.3g} → {tr[-1]:.3g}).",
                         f"epochs (stop near epoch {e[best]}), {'more ' if config.dropout else ''}dropout, or a "
                         f"smaller head ({smaller})")]
    return []


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
    """Fill every run's diagnostics in place with the symptoms of its combined verdict (reconciled with the
    pairing table, see lib.train.verdict), and return the sweep for chaining."""
    from lib.train.verdict import combine  # verdict builds on this module

    for run in sweep.runs:
        run.diagnostics = list(combine(run, sweep).symptoms)
    return sweep
