"""Every sentence of the pairing table and of the run symptoms, with the run that checks it, per backend.

A `Claim` names a table row (or a symptom code), the backend it speaks of, a head on a sample dataset,
the phrases of that row's text it measures (`says`: they must appear in the text, so rewording a row
without revisiting its check fails a test) and `check`, which reads the run and returns what it measured
and whether the text holds. The finding and its check live here together; `lib.heads.pairings` keeps
the wording.

On TensorFlow a claim runs through Head Lab's own trainer (what the app shows, symptoms included); on
JAX through plain Keras `fit` (`lib.train.probe`) in a subprocess with `KERAS_BACKEND=jax`, on the same
MobileNetV2 features and from the same starting weights, so the two differ only by what the backend does.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lib.heads.config import HeadConfig, parse_head_string
from lib.train import metrics as M
from lib.train.probe import Probe, ProbeData, save_probe_data

TF, JAX = "tensorflow", "jax"
MEASURED_BACKENDS = (TF, JAX)
EPOCHS = 12
SEED = 0
# A loss "is 0" / "does not move" within float32 noise of a kernel's summation order (a few 1e-7 on
# values of order 1); "moves" means by far more than that.
ZERO = 1e-6


@dataclass(frozen=True)
class Context:
    """What a check may compare its run with: the sample's textbook head, and the claim's twin head."""

    ref: Probe
    twin: Probe | None = None


@dataclass(frozen=True)
class Claim:
    code: str  # a row of lib.heads.pairings.PROBLEMS, or a symptom code of lib.train.diagnostics
    backend: str
    sample: str  # "<dataset>/<task>"
    head: str  # a head string (lib.heads.config.parse_head_string); "" is the task's textbook head
    says: tuple[str, ...]  # phrases of the code's text on this backend that `check` measures
    check: Callable[[Probe, Context], tuple[bool, str]]
    twin: str | None = None  # a second head the check compares with (same sample and backend)
    kind: str = "problem"  # "problem" (a table row) or "symptom"

    @property
    def config(self) -> HeadConfig:
        return parse_head_string(self.sample.split("/")[1], self.head)

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.code}:{self.backend}:{self.head or 'textbook'}"


# ---- what a check reads off a run -------------------------------------------------------------

def refused(p: Probe, *words: str) -> tuple[bool, str]:
    """Training did not start, and the error says each of `words`."""
    return bool(p.error) and all(w.lower() in p.error.lower() for w in words), f"error: {p.error or 'none'}"


def trained(p: Probe) -> bool:
    return not p.error and p.out is not None and bool(p.loss)


def accuracy(p: Probe) -> float:
    """The task's primary metric on predict()'s final outputs (NaN when they are not finite)."""
    c = HeadConfig.from_dict(p.config)
    value = M.task_metrics(c, p.out, p.y_val).get(M.primary_metric(c.task)) if trained(p) else None
    return float("nan") if value is None else float(value)


def majority(p: Probe) -> float:
    return float(M.majority_rate(HeadConfig.from_dict(p.config).task, p.y_val) or 0.0)


def falls(p: Probe, factor: float = 2.0) -> bool:
    """The training loss ends at least `factor` times lower than it started (and stays finite)."""
    loss = np.asarray(p.loss, float)
    return trained(p) and bool(np.all(np.isfinite(loss))) and loss[-1] * factor < loss[0]


def moved(p: Probe) -> float:
    """Mean absolute change of the output layer's pre-activation values over training."""
    return float(np.mean(np.abs(p.z - p.z_before))) if trained(p) and p.z is not None else float("nan")


def mean_baseline_mae(p: Probe) -> float:
    """MAE of always predicting the validation targets' mean: what a regression head must beat."""
    y = np.asarray(p.y_val, float)
    return float(np.mean(np.abs(y - y.mean())))


def curves_equal(a: Probe, b: Probe, rtol: float = 1e-3) -> bool:
    """Two runs' training losses agree epoch by epoch (rtol 1e-3: kernels differ in the last bits per CPU
    and summation order, which over 12 epochs of Adam stays far below this)."""
    return trained(a) and trained(b) and np.allclose(a.loss, b.loss, rtol=rtol, atol=1e-6)


def _fmt(values: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())


def _all(*conds: bool, **evidence) -> tuple[bool, str]:
    return all(bool(c) for c in conds), _fmt(evidence)


# ---- the claims --------------------------------------------------------------------------------

B, MC, ML, R = "fashion/binary", "fashion/multiclass", "shapes/multilabel", "shapes/regression"
BCE, CCE, SCCE = "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"
LN2 = math.log(2)


def _textbook(p: Probe, c: Context) -> tuple[bool, str]:
    return _all(falls(p), accuracy(p) > majority(p) + 0.1, loss=(p.loss[0], p.loss[-1]) if p.loss else (),
                accuracy=accuracy(p), majority=majority(p))


def _sums_to_one(p: Probe) -> float:
    """Share of rows of outputs that sum to 1 within 1e-5."""
    return float(np.mean(np.abs(p.out.sum(axis=1) - 1) < 1e-5)) if trained(p) else float("nan")


def _textbook_and(cond: Callable[[Probe], bool], what: Callable[[Probe], str]):
    """The textbook check, and one more condition the row's text states (with what it measured)."""
    def check(p: Probe, c: Context) -> tuple[bool, str]:
        ok, evidence = _textbook(p, c)
        return ok and cond(p), f"{evidence}, {what(p)}"
    return check


def _binary_spread(p: Probe, c: Context) -> tuple[bool, str]:
    y = np.asarray(p.y_val).reshape(-1)
    pos, neg = float(p.out[y == 1].mean()), float(p.out[y == 0].mean())
    ok, ev = _textbook(p, c)
    return ok and pos > 0.8 and neg < 0.2, f"{ev}, mean output of positives {pos:.3g}, of negatives {neg:.3g}"


def _softmax_one_unit(loss_moves: bool):
    def check(p: Probe, c: Context) -> tuple[bool, str]:
        ones = float(np.mean(M.float_equal(p.out, 1.0))) if trained(p) else 0.0
        positive = float(np.mean(np.asarray(p.y_val) == 1))
        loss = np.asarray(p.loss, float)
        flat = trained(p) and abs(loss[-1] - loss[0]) <= ZERO * max(1.0, abs(loss[0]))
        return _all(ones == 1.0, falls(p) if loss_moves else flat, abs(accuracy(p) - positive) < 1e-9,
                    outputs_at_1=ones, loss=(float(loss[0]), float(loss[-1])), accuracy=accuracy(p))
    return check


def _ce_one_unit_moves(p: Probe, c: Context) -> tuple[bool, str]:
    """TensorFlow: the reported loss is 0 at every epoch while the pre-activation values move, and the
    outputs are pushed to a bound (0/1 targets: towards 0)."""
    loss = np.asarray(p.loss, float)
    return _all(trained(p), np.all(np.abs(loss) < ZERO), moved(p) > 1.0, float(np.mean(p.out)) < 0.05,
                max_loss=float(np.max(np.abs(loss))) if loss.size else float("nan"), z_moved=moved(p),
                mean_output=float(np.mean(p.out)) if trained(p) else float("nan"))


def _ce_one_unit_still(p: Probe, c: Context) -> tuple[bool, str]:
    """JAX: the loss is 0 and so is its gradient: nothing moves."""
    loss = np.asarray(p.loss, float)
    return _all(trained(p), np.all(np.abs(loss) < ZERO), moved(p) < ZERO,
                max_loss=float(np.max(np.abs(loss))) if loss.size else float("nan"), z_moved=moved(p))


def _nan(p: Probe, c: Context) -> tuple[bool, str]:
    loss = np.asarray(p.loss, float)
    return _all(not p.error and loss.size > 0 and not np.all(np.isfinite(loss)),
                losses=[float(v) for v in loss[:3]])


def _units_too_few_jax(p: Probe, c: Context) -> tuple[bool, str]:
    """No error; images of the class past the last unit get a loss of 0 and are never predicted right."""
    y = np.asarray(p.y_val)
    missing = y >= p.out.shape[1] if trained(p) else np.zeros_like(y, bool)
    lost = float(np.max(np.abs(p.sample_loss[missing]))) if trained(p) and missing.any() else float("nan")
    return _all(trained(p), falls(p), missing.any(), lost < ZERO, accuracy(p) <= 1 - missing.mean() + 1e-9,
                loss_of_missing_class=lost, accuracy=accuracy(p), missing_share=float(missing.mean()))


def _extra_units(p: Probe, c: Context) -> tuple[bool, str]:
    n = int(np.max(p.y_val)) + 1
    before, after = float(p.out_before[:, n:].mean()), float(p.out[:, n:].mean()) if trained(p) else float("nan")
    return _all(after < before, after < 0.01, extra_before=before, extra_after=after)


def _tracks_each_other(p: Probe, c: Context) -> tuple[bool, str]:
    r = float(np.min(np.corrcoef(p.out.T))) if trained(p) else float("nan")
    return _all(r > 0.99, min_correlation=r)


def _outside_01(p: Probe) -> float:
    return float(np.mean((p.out < 0) | (p.out > 1))) if trained(p) else float("nan")


def _linear_binary(p: Probe, c: Context) -> tuple[bool, str]:
    return _all(falls(p, 3), _outside_01(p) > 0.05, loss=(p.loss[0], p.loss[-1]) if p.loss else (),
                outside_0_1=_outside_01(p))


def _far_below_ref(gap: float):
    def check(p: Probe, c: Context) -> tuple[bool, str]:
        acc = accuracy(p)
        return _all(not np.isfinite(acc) or acc < accuracy(c.ref) - gap, accuracy=acc, textbook=accuracy(c.ref))
    return check


def _zeros_but_separates(p: Probe, c: Context) -> tuple[bool, str]:
    zeros = float(np.mean(p.out == 0)) if trained(p) else float("nan")
    return _all(zeros > 0.3, accuracy(p) > majority(p) + 0.1, exactly_0=zeros, accuracy=accuracy(p))


def _loss_floor(floor_of: Callable[[Probe], float]):
    def check(p: Probe, c: Context) -> tuple[bool, str]:
        floor = floor_of(p)
        return _all(trained(p), p.loss[-1] >= floor - 1e-3, accuracy(p) > majority(p) + 0.1,
                    final_loss=p.loss[-1] if p.loss else float("nan"), floor=floor, accuracy=accuracy(p))
    return check


def _relu_logit_floor(p: Probe) -> float:
    """A ReLU logit is ≥ 0, so a negative image's probability is ≥ 0.5: its loss is at least ln 2."""
    return float(np.mean(np.asarray(p.y_val) == 0)) * LN2


def _tanh_logit_floor(p: Probe) -> float:
    """tanh logits lie in (-1, 1): the best a K-class softmax (or a sigmoid) can give the truth."""
    k = HeadConfig.from_dict(p.config).resolved_units(int(np.max(p.y_val)) + 1)
    if k == 1:
        return -math.log(1 / (1 + math.exp(-1)))
    return -math.log(math.e / (math.e + (k - 1) / math.e))


def _tanh_one_output(p: Probe, c: Context) -> tuple[bool, str]:
    below = float(np.mean(p.out < 0)) if trained(p) else float("nan")
    return _all(below > 0.1, accuracy(p) > majority(p) + 0.1, below_0=below, accuracy=accuracy(p))


def _same_as_ref(p: Probe, c: Context) -> tuple[bool, str]:
    return _all(curves_equal(p, c.ref), loss=p.loss[-1] if p.loss else float("nan"), textbook=c.ref.loss[-1])


def _same_as_twin(p: Probe, c: Context) -> tuple[bool, str]:
    return _all(c.twin is not None and curves_equal(p, c.twin), loss=p.loss[-1] if p.loss else float("nan"),
                twin=c.twin.loss[-1] if c.twin and c.twin.loss else float("nan"))


def _warns(word: str):
    def check(p: Probe, c: Context) -> tuple[bool, str]:
        ok, ev = _same_as_ref(p, c)
        said = any(word in w for w in p.warnings)
        return ok and said, f"{ev}, warning printed: {said}"
    return check


def _double_squashed(p: Probe, c: Context) -> tuple[bool, str]:
    """JAX: the loss applies the activation again, so it stalls high, while predict()'s outputs still train."""
    return _all(p.loss[-1] > 0.5 if p.loss else False, accuracy(p) > majority(p) + 0.1,
                final_loss=p.loss[-1] if p.loss else float("nan"), textbook_loss=c.ref.loss[-1], accuracy=accuracy(p))


def _sums_off_acc_close(p: Probe, c: Context) -> tuple[bool, str]:
    off = 1 - _sums_to_one(p)
    return _all(off > 0.5, abs(accuracy(p) - accuracy(c.ref)) <= 0.03, rows_not_summing_to_1=off,
                accuracy=accuracy(p), textbook=accuracy(c.ref))


def _acc_close(p: Probe, c: Context) -> tuple[bool, str]:
    return _all(abs(accuracy(p) - accuracy(c.ref)) <= 0.03, accuracy=accuracy(p), textbook=accuracy(c.ref))


def _one_vs_rest(p: Probe, c: Context) -> tuple[bool, str]:
    ok, ev = _sums_off_acc_close(p, c)
    none_above = int(np.sum(np.max(p.out, axis=1) <= 0.5))
    return ok and none_above > 0, f"{ev}, rows with no output above 0.5: {none_above}"


def _labels_compete(p: Probe, c: Context) -> tuple[bool, str]:
    return _all(_sums_to_one(p) == 1.0, accuracy(p) < accuracy(c.ref) - 0.2, rows_summing_to_1=_sums_to_one(p),
                exact_match=accuracy(p), textbook=accuracy(c.ref))


def _pushed_to_one(p: Probe, c: Context) -> tuple[bool, str]:
    ones = float(np.mean(M.float_equal(p.out, 1.0))) if trained(p) else float("nan")
    return _all(ones > 0.9, accuracy(p) < accuracy(c.ref) - 0.3, outputs_at_1=ones, exact_match=accuracy(p),
                textbook=accuracy(c.ref))


def _split_confidence(p: Probe, c: Context) -> tuple[bool, str]:
    ones = float(np.mean(M.float_equal(p.out, 1.0))) if trained(p) else float("nan")
    return _all(ones < 0.1, accuracy(p) < accuracy(c.ref) - 0.1, outputs_at_1=ones, exact_match=accuracy(p),
                textbook=accuracy(c.ref))


def _index_as_number(p: Probe, c: Context) -> tuple[bool, str]:
    r = float(np.corrcoef(p.out[:, 0], p.y_val)[0, 1]) if trained(p) else float("nan")
    return _all(r > 0.5, accuracy(p) < 0.25, correlation_with_index=r, accuracy=accuracy(p))


def _regression_falls_slowly(p: Probe, c: Context) -> tuple[bool, str]:
    mae, base = accuracy(p), mean_baseline_mae(p)
    return _all(falls(p, 1.2), mae > base, mae=mae, predicting_the_mean=base)


def _regression_reaches(p: Probe, c: Context) -> tuple[bool, str]:
    mae, base = accuracy(p), mean_baseline_mae(p)
    return _all(falls(p, 5), mae < base, mae=mae, predicting_the_mean=base)


def _negative_loss(p: Probe, c: Context) -> tuple[bool, str]:
    return _all(trained(p), p.loss[-1] < 0, accuracy(p) > mean_baseline_mae(p), final_loss=p.loss[-1] if p.loss else 0.0,
                mae=accuracy(p), predicting_the_mean=mean_baseline_mae(p))


def _bounded(lo: float, hi: float):
    def check(p: Probe, c: Context) -> tuple[bool, str]:
        pred = p.out if trained(p) else np.array([np.nan])
        return _all(float(pred.min()) >= lo - 1e-6, float(pred.max()) <= hi + 1e-6,
                    accuracy(p) > mean_baseline_mae(p), predictions=(float(pred.min()), float(pred.max())),
                    mae=accuracy(p), predicting_the_mean=mean_baseline_mae(p))
    return check


def _relu_like_linear(p: Probe, c: Context) -> tuple[bool, str]:
    return _all(abs(accuracy(p) - accuracy(c.ref)) <= 0.05 * accuracy(c.ref), mae=accuracy(p),
                linear=accuracy(c.ref))


def _dead(p: Probe, c: Context) -> tuple[bool, str]:
    zeros = float(np.mean(p.out == 0)) if trained(p) else float("nan")
    loss = np.asarray(p.loss, float)
    return _all(zeros == 1.0, trained(p) and abs(loss[-1] - loss[0]) <= 1e-6 * abs(loss[0]), exactly_0=zeros,
                loss=(float(loss[0]), float(loss[-1])) if loss.size else ())


def _mse_from_logits_is_refused(p: Probe, c: Context) -> tuple[bool, str]:
    import keras

    try:
        keras.losses.MeanSquaredError(from_logits=True)
        raised = ""
    except TypeError as e:
        raised = str(e)
    same, evidence = _same_as_twin(p, c)
    return same and bool(raised), f"{evidence}; MeanSquaredError(from_logits=True): {raised or 'accepted'}"


def _symptom(code: str, also: Callable[[Probe], tuple[bool, str]] | None = None):
    """A TensorFlow run (Head Lab's trainer) whose diagnostics show `code`, and what else the message says."""
    def check(p: Probe, c: Context) -> tuple[bool, str]:
        shown = code in p.symptoms
        extra_ok, extra = also(p) if also else (True, "")
        return shown and extra_ok, f"symptoms {p.symptoms}{'; ' + extra if extra else ''}"
    return check


def _flat(p: Probe) -> tuple[bool, str]:
    loss = np.asarray(p.loss, float)
    change = abs(loss[-1] - loss[0]) / abs(loss[0])
    return change < 0.01, f"loss changed by {change:.2%}"


def _no_gradient(p: Probe) -> tuple[bool, str]:
    return moved(p) < ZERO, f"pre-activation values moved by {moved(p):.3g}"


def _zero_loss_moving(p: Probe) -> tuple[bool, str]:
    return _ce_one_unit_moves(p, None)


def _C(code, backend, sample, head, says, check, twin=None, kind="problem") -> Claim:
    return Claim(code, backend, sample, head, tuple(says), check, twin, kind)


BOTH = MEASURED_BACKENDS
CLAIMS: tuple[Claim, ...] = tuple(c for group in [
    # ---- textbook heads ----
    [_C("ok_sigmoid_bce", be, B, "", ["Loss falls", "towards 0 and 1 by true label", "above the majority rate"],
        _binary_spread) for be in BOTH],
    [_C("ok_softmax_ce", be, MC, "", ["Loss falls", "each row of outputs sums to 1", "above the majority rate"],
        _textbook_and(lambda p: _sums_to_one(p) == 1.0, lambda p: f"rows summing to 1 {_sums_to_one(p):.2f}"))
     for be in BOTH],
    [_C("ok_logits", be, B, "activation=linear,from_logits=true", ["Loss falls", "unbounded logits"],
        _textbook_and(lambda p: _outside_01(p) > 0.05, lambda p: f"outside [0, 1] {_outside_01(p):.2f}")) for be in BOTH],
    [_C("ok_multilabel", be, ML, "", ["rows may sum to more than 1"],
        lambda p, c: (float(np.mean(p.out.sum(axis=1) > 1)) > 0 and accuracy(p) > 0.5,
                      f"rows summing above 1 {float(np.mean(p.out.sum(axis=1) > 1)):.2f}, exact match {accuracy(p):.3f}"))
     for be in BOTH],
    [_C("ok_regression", be, R, "", ["MAE falls", "worse than always predicting the mean"], _regression_falls_slowly)
     for be in BOTH],
    [_C("ok_regression", be, R, "learning_rate=0.1", ["learning rate of 0.1"], _regression_reaches) for be in BOTH],
    # ---- units ----
    [_C("softmax_one_unit", TF, B, "activation=softmax",
        ["always outputs 1.0 (to float precision)", "the loss still falls", "positive-class rate"], _softmax_one_unit(True)),
     _C("softmax_one_unit", JAX, B, "activation=softmax",
        ["always outputs 1.0 (to float precision)", "the loss cannot move", "the loss curve is flat"],
        _softmax_one_unit(False))],
    [_C("units_mismatch", be, MC, "units=9,loss=categorical_crossentropy", ["shape mismatch"],
        lambda p, c: refused(p, "shape")) for be in BOTH],
    [_C("units_too_few_sparse", TF, MC, "units=9", ["TensorFlow refuses", "outside the valid range"],
        lambda p, c: refused(p, "outside the valid range")),
     _C("units_too_few_sparse", JAX, MC, "units=9", ["nothing refuses", "a loss of 0", "never be predicted"],
        _units_too_few_jax)],
    [_C("units_extra", be, MC, "units=11", ["small, shrinking probabilities"], _extra_units) for be in BOTH],
    [_C("ce_over_one_unit", be, B, "loss=categorical_crossentropy", ["one-hot targets have two columns"],
        lambda p, c: refused(p, "shape")) for be in BOTH],
    [_C("ce_over_one_unit", TF, B, "loss=categorical_crossentropy,labels=integer",
        ["exactly 0 at every epoch while", "drift to a bound"], _ce_one_unit_moves),
     _C("ce_over_one_unit", JAX, B, "loss=categorical_crossentropy,labels=integer",
        ["its gradient is 0", "outputs never move"], _ce_one_unit_still)],
    [_C("ce_over_one_unit", be, B, "loss=categorical_crossentropy,labels=integer,activation=relu", ["NaN with ReLU"],
        _nan) for be in BOTH],
    [_C("ce_over_one_unit", TF, B, "loss=sparse_categorical_crossentropy", ["out of range on TensorFlow"],
        lambda p, c: refused(p, "outside the valid range")),
     _C("ce_over_one_unit", JAX, B, "loss=sparse_categorical_crossentropy", ["nothing refuses sparse labels"],
        _ce_one_unit_still)],
    [_C("regression_units", be, R, "units=3", ["All outputs track each other"], _tracks_each_other) for be in BOTH],
    # ---- activation vs loss ----
    [_C("linear_probabilities", be, B, "activation=linear", ["the reported loss can fall", "far beyond 0 and 1"],
        _linear_binary) for be in BOTH],
    [_C("linear_probabilities", be, MC, f"activation=linear,loss={loss}", ["far below a probability head's"],
        _far_below_ref(0.2)) for be in BOTH for loss in (SCCE, CCE)],
    [_C("relu_ce", be, B, "activation=relu", ["exactly 0", "can still separate the classes"], _zeros_but_separates)
     for be in BOTH],
    [_C("relu_ce", be, B, "activation=relu,from_logits=true", ["cannot fall below ln 2"], _loss_floor(_relu_logit_floor))
     for be in BOTH],
    [_C("relu_ce", be, MC, "activation=relu", ["far below a softmax head's"], _far_below_ref(0.2)) for be in BOTH],
    [_C("tanh_ce", be, B, "activation=tanh", ["can still separate the classes", "below 0"], _tanh_one_output)
     for be in BOTH],
    [_C("tanh_ce", be, MC, "activation=tanh", ["far below a softmax head's"], _far_below_ref(0.2)) for be in BOTH],
    [_C("tanh_logits", be, sample, "activation=tanh,from_logits=true", ["never fall below"], _loss_floor(_tanh_logit_floor))
     for be in BOTH for sample in (B, MC)],
    [_C("probabilities_as_logits", TF, B, "from_logits=true", ["trains correctly here", "a warning"], _warns("from_logits")),
     _C("probabilities_as_logits", TF, MC, "from_logits=true", ["trains correctly here"], _same_as_ref),
     _C("probabilities_as_logits", JAX, B, "from_logits=true", ["stalls high", "accuracy"], _double_squashed),
     _C("probabilities_as_logits", JAX, MC, "from_logits=true", ["stalls high"], _double_squashed)],
    [_C("sigmoid_with_cce", TF, MC, "activation=sigmoid", ["trains like a softmax head"], _same_as_ref),
     *[_C("sigmoid_with_cce", be, MC, "activation=sigmoid", ["not 1"], _sums_off_acc_close) for be in BOTH]],
    [_C("softmax_with_bce", be, MC, "loss=binary_crossentropy,labels=one_hot", ["Accuracy"], _acc_close) for be in BOTH],
    [_C("softmax_with_bce", JAX, B, "units=2,activation=softmax,loss=binary_crossentropy",
        ["equals softmax + sparse categorical cross-entropy"], _same_as_twin,
        twin="units=2,activation=softmax,loss=sparse_categorical_crossentropy")],
    [_C("sigmoid_one_vs_rest", be, MC, "activation=sigmoid,loss=binary_crossentropy",
        ["Accuracy similar to softmax", "some rows have no output above 0.5"], _one_vs_rest) for be in BOTH],
    [_C("regression_loss_for_classes", be, sample, "loss=mse", ["accuracy is within a few points"], _acc_close)
     for be in BOTH for sample in (B, MC)],
    [_C("from_logits_ignored", be, B, "loss=mse,from_logits=true", ["TypeError", "equals the same head"],
        _mse_from_logits_is_refused, twin="loss=mse") for be in BOTH],
    # ---- multi-label ----
    [_C("softmax_multilabel", be, ML, "activation=softmax", ["Each row of outputs sums to 1", "exact-match"],
        _labels_compete) for be in BOTH],
    [_C("softmax_multilabel", TF, ML, "activation=softmax", ["independent sigmoids"], _same_as_ref)],
    [_C("cce_multilabel", TF, ML, "loss=categorical_crossentropy", ["exactly 1.0"], _pushed_to_one),
     _C("cce_multilabel", JAX, ML, "loss=categorical_crossentropy", ["split its confidence"], _split_confidence),
     *[_C("cce_multilabel", be, ML, "loss=categorical_crossentropy,activation=softmax", ["exact-match"],
          _far_below_ref(0.2)) for be in BOTH]],
    [_C("sparse_multilabel", be, ML, "loss=sparse_categorical_crossentropy", ["shape mismatch"],
        lambda p, c: refused(p, "shape")) for be in BOTH],
    [_C("integer_multilabel", be, ML, "labels=integer", ["Training does not start"], lambda p, c: refused(p, "shape"))
     for be in BOTH],
    # ---- label format ----
    [_C("integer_labels_onehot_loss", be, MC, "loss=categorical_crossentropy,labels=integer", ["refuses the shapes"],
        lambda p, c: refused(p, "shape")) for be in BOTH],
    [_C("onehot_labels_sparse_loss", be, MC, "labels=one_hot", ["refuses the shapes"], lambda p, c: refused(p))
     for be in BOTH],
    [_C("class_index_as_number", be, MC, "units=1,activation=linear,loss=mse,labels=integer",
        ["follows the class index", "near chance"], _index_as_number) for be in BOTH],
    [_C("labels_ignored", be, R, "labels=integer", ["Nothing changes"], _same_as_ref) for be in BOTH],
    # ---- regression ----
    [_C("ce_for_regression", be, R, "loss=binary_crossentropy", ["negative"], _negative_loss) for be in BOTH],
    [_C("sigmoid_regression", be, R, "activation=sigmoid", ["(0, 1)", "MAE stays huge"], _bounded(0, 1)) for be in BOTH],
    [_C("tanh_regression", be, R, "activation=tanh", ["±1", "MAE stays huge"], _bounded(-1, 1)) for be in BOTH],
    [_C("relu_regression", be, R, "activation=relu", ["tracks the target like linear"], _relu_like_linear)
     for be in BOTH],
    [_C("relu_regression", be, R, "activation=relu,bias_initializer=constant(value=-1000)",
        ["exactly 0 for everything with a flat loss"], _dead) for be in BOTH],
    [_C("softmax_regression", be, R, "activation=softmax,units=3", ["below 1", "MAE stays huge"], _bounded(0, 1))
     for be in BOTH],
    # ---- symptoms of a run, as Head Lab's trainer shows them (TensorFlow) ----
    [_C(code, TF, sample, head, [], _symptom(code, also), kind="symptom") for code, sample, head, also in [
        ("refused", MC, "units=9", None),
        ("diverged", B, "loss=categorical_crossentropy,labels=integer,activation=relu", None),
        ("constant_output", B, "activation=softmax", None),
        ("saturated_at_start", B, "kernel_initializer=random_normal(stddev=10)", None),
        ("saturated", MC, "activation=relu", None),
        ("learning_rate", MC, "activation=softmax,learning_rate=10", None),
        ("overfitting", MC, "pooling=flatten,hidden=128:relu", None),
        ("clipped_outputs", B, "activation=linear", None),
        ("flat_loss", R, "activation=sigmoid", _flat),
        ("loss_hides_outputs", B, "activation=softmax", None),
        ("sums_not_one", MC, "activation=sigmoid,loss=binary_crossentropy", None),
        ("majority_rate", B, "activation=softmax", None),
        ("labels_compete", ML, "activation=softmax", None),
        ("pinned_regression", R, "activation=sigmoid", None),
        ("dead_relu", R, "activation=relu,bias_initializer=constant(value=-1000)", None),
        ("no_gradient", B, "loss=categorical_crossentropy,labels=integer,activation=linear", _no_gradient),
        ("zero_loss_moving", B, "loss=categorical_crossentropy,labels=integer", _zero_loss_moving),
    ]],
] for c in group)


def claims_for(backend: str, kind: str | None = None) -> list[Claim]:
    """The claims that speak of one backend (and of one kind, when given)."""
    return [c for c in CLAIMS if c.backend == backend and (kind is None or c.kind == kind)]


# ---- running them ------------------------------------------------------------------------------

def _heads(claims: Sequence[Claim]) -> dict[str, list[str]]:
    """Per sample, every head the claims need (textbook head first, twins included, each once)."""
    out: dict[str, list[str]] = {}
    for c in claims:
        heads = out.setdefault(c.sample, [""])
        for h in (c.head, c.twin):
            if h is not None and h not in heads:
                heads.append(h)
    return out


def probe_datasets(samples: Sequence[str], loaded) -> dict[str, ProbeData]:
    """Pooled MobileNetV2 features of each sample (the backbone `loaded`, TensorFlow), as numpy."""
    from lib.backbones.features import find_cut, get_features
    from lib.data.samples import load_sample

    cut = find_cut(loaded.model, 0)
    out = {}
    for sample in samples:
        name, task = sample.split("/")
        data = load_sample(name, task)
        f = get_features(loaded, cut, data).features.mean(axis=(1, 2)).astype(np.float32)
        out[sample] = ProbeData(task, data.n_outputs, f[~data.is_val], data.y[~data.is_val], f[data.is_val], data.y[data.is_val])
    return out


def run_on_tensorflow(claims: Sequence[Claim], loaded, epochs: int = EPOCHS) -> dict[tuple[str, str], Probe]:
    """Every head the claims need, trained by Head Lab's trainer; keyed by (sample, head string)."""
    from lib.data.samples import load_sample
    from lib.train.diagnostics import annotate
    from lib.train.trainer import MAX_HEADS, train

    probes = {}
    for sample, heads in _heads(claims).items():
        name, task = sample.split("/")
        data = load_sample(name, task)
        for i in range(0, len(heads), MAX_HEADS):
            chunk = heads[i:i + MAX_HEADS]
            sweep = annotate(train([parse_head_string(task, h) for h in chunk], data, epochs=epochs, seed=SEED,
                                   loaded=loaded))
            for h, run in zip(chunk, sweep.runs):
                probes[(sample, h)] = probe_of_run(run, sweep)
    return probes


def probe_of_run(run, sweep) -> Probe:
    """A run of Head Lab's trainer as a `Probe`, so one check reads both engines."""
    last = max(run.snapshots) if run.snapshots else None
    p = Probe(backend=sweep.backend, versions={"keras": sweep.keras_version}, config=run.config.to_dict(),
              seed=SEED, epochs=len(run.history.get("loss", [])), y_val=np.asarray(sweep.y_val))
    p.symptoms = [d["code"] for d in run.diagnostics]
    if run.status == "error":
        p.error = run.error
        return p
    p.loss = [float(v) for v in run.history.get("loss", [])]
    if last is not None:
        p.out_before, p.out = run.snapshots[0], run.snapshots[last]
        p.z_before, p.z = run.pre_activations.get(0), run.pre_activations.get(last)
    p.warnings = list(run.warnings)
    return p


def run_on_jax(claims: Sequence[Claim], datasets: dict[str, ProbeData], epochs: int = EPOCHS,
               timeout: float = 900) -> dict[tuple[str, str], Probe]:
    """Every head the claims need, trained with plain Keras in a `KERAS_BACKEND=jax` subprocess, each
    from the starting weights Head Lab's TensorFlow trainer gives it (so only the backend differs)."""
    from lib.heads.build import initial_weights

    jobs, keys = [], []
    for sample, heads in _heads(claims).items():
        d = datasets[sample]
        for h in heads:
            config = parse_head_string(d.task, h)
            start = initial_weights(config, d.x_train.shape[1], d.n_outputs, d.y_train, SEED)
            jobs.append({"dataset": sample, "config": config.to_dict(), "epochs": epochs, "seed": SEED,
                         "start": [[k.tolist(), b.tolist()] for k, b in start]})
            keys.append((sample, h))
    with tempfile.TemporaryDirectory(prefix="headlab-claims-") as tmp:
        data_path, jobs_path, out_path = (os.path.join(tmp, f) for f in ("data.npz", "jobs.json", "out.json"))
        save_probe_data(data_path, datasets)
        with open(jobs_path, "w") as f:
            json.dump(jobs, f)
        env = {**os.environ, "KERAS_BACKEND": JAX, "JAX_PLATFORMS": "cpu"}
        done = subprocess.run([sys.executable, "-m", "lib.train.probe", data_path, jobs_path, out_path], env=env,
                              capture_output=True, text=True, timeout=timeout,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        if done.returncode != 0:
            raise RuntimeError(f"the JAX probe failed:\n{done.stderr[-3000:]}")
        with open(out_path) as f:
            probes = [Probe.from_json(d) for d in json.load(f)]
    return dict(zip(keys, probes))


def evaluate(claim: Claim, probes: dict[tuple[str, str], Probe]) -> tuple[bool, str]:
    """Whether the claim holds on the runs measured for its backend, and what was measured."""
    twin = probes.get((claim.sample, claim.twin)) if claim.twin is not None else None
    return claim.check(probes[(claim.sample, claim.head)], Context(ref=probes[(claim.sample, "")], twin=twin))


def main(argv: list[str] | None = None) -> int:
    """`python -m lib.train.claims [--backend tensorflow|jax]`: run every claim and print a Markdown table of
    what was measured (exit 1 when one does not hold)."""
    import argparse

    from lib.backbones.registry import load_backbone

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--backend", choices=MEASURED_BACKENDS, action="append")
    parser.add_argument("--size", type=int, default=64, help="MobileNetV2 input size (the tests use 64)")
    args = parser.parse_args(argv)
    loaded = load_backbone("mobilenet_v2", args.size)
    failed = 0
    print("| backend | row or symptom | head | holds | measured |\n|---|---|---|---|---|")
    for backend in args.backend or MEASURED_BACKENDS:
        claims = claims_for(backend)
        probes = (run_on_tensorflow(claims, loaded) if backend == TF else
                  run_on_jax(claims, probe_datasets(sorted({c.sample for c in claims}), loaded)))
        for c in claims:
            holds, evidence = evaluate(c, probes)
            failed += not holds
            print(f"| {backend} | {c.code} | {c.sample} {c.head or 'textbook'} | {'yes' if holds else 'NO'} | "
                  f"{evidence.replace('|', '/')[:160]} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
