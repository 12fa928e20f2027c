"""The one pairing table: every task × units × activation × loss × from_logits × label format gets a verdict.

This module is the single source of these facts. The UI's badges, the diagnostics and the tests
all read it. Texts describe what Keras 3 actually does on each backend, as measured (lib/train/claims.py holds the
run that checks each sentence): on TensorFlow the cross-entropy losses take the pre-activation values that
softmax/sigmoid outputs carry (`_keras_logits`), which hides several mismatches from the loss curve.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import numpy as np

from lib.heads.config import (
    ACTIVATIONS,
    CE_LOSSES,
    LABEL_FORMATS,
    LOSSES,
    REGRESSION_LOSSES,
    HeadConfig,
)

LEVELS = ("ok", "warning", "error")
BCE, CCE, SCCE = CE_LOSSES


def backend_name() -> str:
    """The Keras backend that will run (read from the environment, so no Keras import here)."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


MEASURED_BACKENDS = ("tensorflow", "jax")  # every sentence below is checked on these (lib/train/claims.py)


@dataclass(frozen=True)
class Problem:
    """One row of the code table: what is wrong (or right), what a learner sees, which knob to turn.

    `message` and `symptom` are what happens on TensorFlow (the backend Head Lab trains on); `message_jax`
    and `symptom_jax` say what happens on JAX where it differs ("" = the same). Each sentence is measured
    by a claim in lib/train/claims.py on the backend it speaks of."""

    code: str
    level: str
    message: str
    symptom: str
    knob: str
    message_jax: str = ""
    symptom_jax: str = ""
    # A sentence that holds only on a frozen base with pretrained weights (appended only then).
    if_frozen_pretrained: str = ""

    def text(self, backend: str, setup: Setup | None = None) -> tuple[str, str]:
        """(message, symptom) on `backend`. A backend Head Lab has not measured gets JAX's wording (the
        backend without TensorFlow's fused kernels), marked as not measured there."""
        setup = setup or Setup()
        if backend == "tensorflow":
            message, symptom = self.message, self.symptom
        else:
            message, symptom = self.message_jax or self.message, self.symptom_jax or self.symptom
            if backend not in MEASURED_BACKENDS:
                message = f"{message} (Head Lab has not measured this on {backend}; this is what JAX does.)"
        if self.if_frozen_pretrained and setup.frozen and setup.pretrained:
            message = f"{message} {self.if_frozen_pretrained}"
        return message, symptom

    def differs_by_backend(self) -> bool:
        return bool(self.message_jax or self.symptom_jax)


@dataclass(frozen=True)
class Setup:
    """What the verdict texts may assume about the run: a frozen base (unfrozen == 0), pretrained weights."""

    frozen: bool = True
    pretrained: bool = True


_FUSED = ("TensorFlow's fused softmax cross-entropy uses softmax(z) − y as its gradient, which is the gradient of "
          "the reported loss only when each target row sums to 1")

_P = Problem
PROBLEMS: dict[str, Problem] = {p.code: p for p in [
    # ---- correct pairings -------------------------------------------------------------
    _P("ok_sigmoid_bce", "ok",
       "One sigmoid unit with binary cross-entropy is the textbook binary head.",
       "Loss falls, outputs spread towards 0 and 1 by true label, accuracy rises above the majority rate.",
       "—",
       if_frozen_pretrained="On a frozen pretrained base it trains well (the claim that it 'performs very "
       "poorly' does not survive measurement)."),
    _P("ok_softmax_ce", "ok",
       "Softmax over one unit per class with (sparse) categorical cross-entropy is the textbook single-label head.",
       "Loss falls, each row of outputs sums to 1, accuracy rises above the majority rate.",
       "—"),
    _P("ok_logits", "ok",
       "A linear output with from_logits=True lets the loss apply sigmoid/softmax itself (the numerically "
       "stable way); predict() returns logits, so apply sigmoid/softmax to read probabilities.",
       "Loss falls; raw outputs are unbounded logits — Head Lab converts them to probabilities for the plots.",
       "—"),
    _P("ok_multilabel", "ok",
       "One sigmoid per label with binary cross-entropy lets several labels be on at once.",
       "Each label's output moves towards 0 or 1 independently; rows may sum to more than 1.",
       "—"),
    _P("ok_regression", "ok",
       "A linear output with a regression loss can reach any value the target takes — given steps large "
       "enough to get there.",
       "MAE falls in the target's units. With Adam at 0.001, a few epochs can leave it worse than always "
       "predicting the mean (a target in the hundreds is far from where the head starts); a learning rate of "
       "0.1 brings the points to the diagonal.",
       "—"),
    # ---- units ------------------------------------------------------------------------
    _P("softmax_one_unit", "error",
       "Softmax over one unit always outputs 1.0 (to float precision), so the head can say nothing; on TensorFlow the "
       "loss still falls because Keras feeds the pre-softmax value to the loss.",
       "Every prediction is 1.0 (to float precision) and accuracy sits at the positive-class rate, even though the loss curve falls.",
       "activation (use sigmoid for one unit) or units (2 with softmax)",
       message_jax="Softmax over one unit always outputs 1.0 (to float precision), so the head can say nothing and "
       "the loss cannot move.",
       symptom_jax="Every prediction is 1.0 (to float precision); the loss curve is flat."),
    _P("units_mismatch", "error",
       "The number of output units does not match the width of the targets this loss gets, so Keras refuses "
       "to compute the loss.",
       "Training does not start: Keras reports a shape mismatch between targets and outputs.",
       "units (use the task's natural count) or labels"),
    _P("units_too_few_sparse", "error",
       "Sparse categorical cross-entropy needs one output unit per class; with fewer units some labels point "
       "past the last unit and TensorFlow refuses them.",
       "Training stops at once: 'Received a label value of 9 which is outside the valid range of [0, 9)'.",
       "units",
       message_jax="Sparse categorical cross-entropy needs one output unit per class; with fewer units some "
       "labels point past the last unit. On JAX nothing refuses them: each such image gets a loss of 0, so it "
       "teaches nothing and its class can never be predicted.",
       symptom_jax="Training runs and the loss falls; every image of the classes past the last unit is wrong, "
       "and its loss is 0."),
    _P("units_extra", "warning",
       "More output units than classes: the extra units can never be the right answer and just take probability mass.",
       "Extra classes appear in the output histograms with small, shrinking probabilities.",
       "units"),
    _P("ce_over_one_unit", "error",
       "Cross-entropy over a single unit is a softmax over one value, which is always 1, so the reported loss is "
       "0 — or Keras refuses the targets: one-hot targets have two columns, and a sparse label of 1 is out of "
       "range on TensorFlow. Nothing useful is learned, yet on TensorFlow the output still moves: "
       f"{_FUSED}, so with 0/1 targets in one column it pushes the weights while the loss stays at 0.",
       "Training refuses the targets, or the loss is exactly 0 at every epoch while the outputs drift to a "
       "bound (a sigmoid towards 0) — NaN with ReLU.",
       "loss (binary_crossentropy for one unit) or units (2)",
       message_jax="Cross-entropy over a single unit is a softmax over one value, which is always 1, so the loss "
       "is 0 and its gradient is 0: nothing is learned. Keras refuses one-hot targets (one-hot targets have two "
       "columns); on JAX nothing refuses sparse labels past unit 0 (their loss is 0 too).",
       symptom_jax="The loss is 0 (to float precision) from the first epoch and the outputs never move — NaN with "
       "ReLU; or training refuses one-hot targets."),
    _P("regression_units", "warning",
       "A regression target is one number, but this head has several outputs; Keras broadcasts the target "
       "to each, so they all learn the same thing and Head Lab reads the first.",
       "All outputs track each other; nothing is gained from the extra units.",
       "units (1)"),
    # ---- activation vs loss -------------------------------------------------------------
    _P("linear_probabilities", "error",
       "A linear output is not a probability, but this loss (from_logits=False) treats it as one. One output is "
       "clipped into (0, 1) first, so the reported loss can fall towards 0 while the raw outputs wander far "
       "outside [0, 1]; several outputs are divided by their row sum, which negative values make meaningless.",
       "One output: the loss falls suspiciously low while the raw outputs spread far beyond 0 and 1. Several: "
       "accuracy stays far below a probability head's.",
       "from_logits (set True) or activation (sigmoid/softmax)"),
    _P("relu_ce", "error",
       "ReLU outputs are neither probabilities nor logits: they cannot go below 0. As a probability (one output) "
       "0 is clipped to 1e-7, so the head can still separate the classes but its outputs are no probabilities; "
       "as logits (from_logits=True) no output can say 'no' with confidence (a logit of 0 is a probability of "
       "0.5), so the loss cannot fall below ln 2 × the share of negatives; over several outputs a row can sum "
       "to 0.",
       "Many outputs are exactly 0. One output: accuracy can be fine while the outputs are no probabilities. "
       "Several: accuracy stays far below a softmax head's (or the loss turns NaN).",
       "activation"),
    _P("tanh_ce", "error",
       "tanh outputs lie in (-1, 1) and this loss reads them as probabilities. One output: everything below 0 is "
       "clipped to 1e-7, so the head can still separate the classes, but half its range means nothing. Several: "
       "each row is divided by its sum, which negative values make meaningless.",
       "One output: the loss keeps falling and accuracy can be fine, while many outputs lie below 0. Several: "
       "accuracy stays far below a softmax head's.",
       "activation"),
    _P("tanh_logits", "warning",
       "tanh squeezes the logits into (-1, 1), so the probabilities the loss sees stay far from 0 and 1 (0.27–0.73 "
       "for one output; at most 0.45 of 10 classes): ranking can still be right, but confidence can never be.",
       "The loss can never fall below its floor (0.313 for one output, 0.797 for 10 classes); accuracy can be "
       "fine while probabilities cluster in the middle.",
       "activation (linear with from_logits=True)"),
    _P("probabilities_as_logits", "warning",
       "from_logits=True says the outputs are logits, but they are already probabilities. On TensorFlow Keras "
       "notices the activation and quietly uses the pre-activation values, so it trains correctly here — "
       "the same code double-applies the activation on JAX.",
       "On TensorFlow nothing looks wrong (Keras prints a warning to the console only); the code is not portable.",
       "from_logits (set False) or activation (linear)",
       message_jax="from_logits=True says the outputs are logits, but they are already probabilities: "
       "the loss applies sigmoid/softmax a second time, so it sees a squashed copy of them (the sigmoid of a value "
       "in [0, 1] lies in [0.5, 0.73]) and cannot fall far. predict() returns the layer's own outputs, which "
       "still train: only the loss's view is squashed.",
       symptom_jax="The loss falls a little and stalls high, yet accuracy rises as the textbook head's does — "
       "the loss curve looks broken while the predictions are fine."),
    _P("sigmoid_with_cce", "warning",
       "Sigmoid outputs with categorical cross-entropy: on TensorFlow Keras feeds the pre-sigmoid values to a "
       "softmax loss, so it trains like a softmax head — but predict() returns sigmoids whose rows do not sum to 1.",
       "Loss and accuracy look normal; the per-sample sum of outputs is not 1 (often well above or below).",
       "activation (softmax)",
       message_jax="Sigmoid outputs with categorical cross-entropy: the loss renormalises independent "
       "sigmoids into a distribution, which trains but leaves outputs that do not sum to 1.",
       symptom_jax="Accuracy is close to a softmax head's; per-sample sums of outputs are not 1, so "
       "probabilities are hard to read."),
    _P("softmax_with_bce", "warning",
       "Softmax outputs with binary cross-entropy: on TensorFlow Keras trains the pre-softmax values as independent "
       "yes/no logits, while predict() returns a softmax, so the probabilities are not the ones the loss optimised.",
       "Accuracy is fine but the loss and the predicted probabilities disagree; calibration is off.",
       "loss ((sparse) categorical cross-entropy) or activation (sigmoid)",
       message_jax="Softmax outputs with binary cross-entropy score each class as an independent yes/no "
       "while softmax makes them compete: it trains, and with two units its loss equals softmax + sparse "
       "categorical cross-entropy exactly (the two yes/no terms are the same number). Its loss is averaged over "
       "the classes' yes/no terms, a smaller scale than categorical cross-entropy's, so the two curves cannot be "
       "compared.",
       symptom_jax="Accuracy is fine (as the softmax/CCE head's); the loss curve sits lower only because of its scale."),
    _P("sigmoid_one_vs_rest", "warning",
       "One sigmoid per class with binary cross-entropy is one-vs-rest: it works, but the classes are exclusive "
       "and nothing makes a row sum to 1.",
       "Accuracy similar to softmax; per-sample output sums drift away from 1; some rows have no output above 0.5.",
       "activation (softmax) with (sparse) categorical cross-entropy"),
    _P("regression_loss_for_classes", "warning",
       "A regression loss on class targets trains, but it does not fit probabilities as likelihoods: its gradient "
       "through a sigmoid/softmax is multiplied by p(1 − p), which vanishes when an output is confidently wrong.",
       "On the sample data its accuracy is within a few points of the cross-entropy head's; the difference is in "
       "calibration, not in accuracy.",
       "loss (cross-entropy)"),
    _P("from_logits_ignored", "warning",
       "from_logits only means something for cross-entropy losses: Keras's regression losses take no such "
       "argument (MeanSquaredError(from_logits=True) is a TypeError), so Head Lab leaves it out.",
       "The run equals the same head with from_logits=False; the setting is just misleading.",
       "from_logits (set False)"),
    # ---- multi-label ---------------------------------------------------------------------
    _P("softmax_multilabel", "error",
       "Softmax makes the labels compete for one unit of probability, but an image can carry several labels: "
       "with two labels present neither can pass 0.5. On TensorFlow the loss even trains the pre-softmax values "
       "as independent sigmoids, so the loss curve looks healthy.",
       "Each row of outputs sums to 1; images with several labels miss all but one; exact-match stalls.",
       "activation (sigmoid)",
       message_jax="Softmax makes the labels compete for one unit of probability, but an image can carry "
       "several labels: with two labels present neither can pass 0.5.",
       symptom_jax="Each row of outputs sums to 1; images with several labels miss all but one; exact-match stalls."),
    _P("cce_multilabel", "error",
       "Categorical cross-entropy assumes exactly one true label per image; with several, the labels compete. "
       f"With sigmoid outputs on TensorFlow it is worse: {_FUSED}; with several labels the gradient sums to a "
       "negative number, every pre-sigmoid value is pushed up, and the outputs end at exactly 1.0.",
       "Sigmoid outputs: nearly every output is exactly 1.0 and exact-match is near 0. Softmax outputs: "
       "exact-match stalls far below a sigmoid/BCE head's.",
       "loss (binary_crossentropy)",
       message_jax="Categorical cross-entropy assumes exactly one true label per image; with several, the labels "
       "compete and the head learns to split its confidence between them.",
       symptom_jax="Outputs of images with several labels stay low for each; exact-match stalls far below a "
       "sigmoid/BCE head's."),
    _P("sparse_multilabel", "error",
       "Sparse categorical cross-entropy takes one class index per image; a multi-label target has several "
       "labels, so there is no index to give it.",
       "Training does not start: Keras reports a shape mismatch.",
       "loss (binary_crossentropy)"),
    _P("integer_multilabel", "error",
       "Multi-label targets cannot be written as one integer per image.",
       "Training does not start.",
       "labels (auto or one_hot)"),
    # ---- label format --------------------------------------------------------------------
    _P("integer_labels_onehot_loss", "error",
       "Categorical cross-entropy expects one-hot targets (one column per class), but the labels are integers "
       "(one column); Keras refuses the shapes.",
       "Training does not start: a shape mismatch between targets and outputs.",
       "loss (sparse_categorical_crossentropy) or labels (one_hot)"),
    _P("onehot_labels_sparse_loss", "error",
       "Sparse categorical cross-entropy expects integer class indices, but the labels are one-hot; Keras "
       "refuses the shapes.",
       "Training does not start: a rank/shape mismatch between targets and outputs.",
       "loss (categorical_crossentropy) or labels (integer)"),
    _P("class_index_as_number", "error",
       "Integer class indices fed to a regression loss treat class 3 as 'more' than class 1; the head "
       "regresses the index instead of classifying.",
       "The output follows the class index (it correlates with it), but read as a class it is right near chance: "
       "neighbouring indices are not similar classes.",
       "labels (one_hot) or loss (cross-entropy)"),
    _P("labels_ignored", "warning",
       "A regression target is a number; the label format setting does not apply.",
       "Nothing changes on the plots.",
       "labels (auto)"),
    # ---- regression --------------------------------------------------------------------
    _P("ce_for_regression", "error",
       "Cross-entropy treats the target as a probability or class, but a regression target is a number in "
       "natural units.",
       "The loss is meaningless: with targets above 1 binary cross-entropy turns negative and keeps falling, "
       "while predictions do not track the target.",
       "loss (mse, mae or huber)"),
    _P("sigmoid_regression", "error",
       "A sigmoid output lies in (0, 1), but the target is in natural units beyond that range.",
       "Predicted-vs-true points are pinned near 1.0 for every large target; MAE stays huge.",
       "activation (linear)"),
    _P("tanh_regression", "error",
       "A tanh output lies in (-1, 1), but the target is in natural units beyond that range.",
       "Predictions are pinned within ±1; MAE stays huge.",
       "activation (linear)"),
    _P("relu_regression", "warning",
       "A ReLU output cannot go below 0 and, if it starts negative for every image, never moves (a 'dead' unit); "
       "it works only for non-negative targets and a lucky start.",
       "Either tracks the target like linear, or predicts exactly 0 for everything with a flat loss.",
       "activation (linear)"),
    _P("softmax_regression", "error",
       "Softmax outputs sum to 1 and each lies in (0, 1): they cannot express a number in natural units.",
       "Predictions stay below 1 whatever the target; MAE stays huge.",
       "activation (linear)"),
]}

_OK_FALLBACK = {
    "binary": "ok_sigmoid_bce",
    "multiclass": "ok_softmax_ce",
    "multilabel": "ok_multilabel",
    "regression": "ok_regression",
}


@dataclass(frozen=True)
class Verdict:
    """The table's answer for one head: the worst level, every code that applies, and their texts."""

    level: str
    codes: tuple[str, ...]
    message: str
    symptoms: tuple[str, ...]
    knobs: tuple[str, ...]
    backend: str

    def to_dict(self) -> dict:
        return {"level": self.level, "codes": list(self.codes), "message": self.message,
                "symptoms": list(self.symptoms), "knobs": list(self.knobs), "backend": self.backend}


def backend_title(backend: str) -> str:
    """A Keras backend's name as people write it ("jax" → "JAX")."""
    return {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}.get(backend, backend)


def on_other_backend(verdict: Verdict, backend: str = "jax", setup: Setup | None = None) -> str:
    """What the table says the same head does on `backend` where that differs from the verdict's own
    backend: its rows' wording there, sentence by sentence, or that every row reads the same."""
    if backend == verdict.backend:
        return ""
    title = backend_title(backend)
    rows = [PROBLEMS[c] for c in verdict.codes]
    differing = [p for p in rows if p.differs_by_backend()]
    if not differing:
        return f"On {title}: the same (every sentence above was measured on TensorFlow and JAX)."
    texts = [" ".join(p.text(backend, setup)) for p in differing]
    return f"On {title} this head would differ: " + " ".join(texts)


def target_format(task: str, units: int, loss: str, labels: str) -> str:
    """How targets are fed to the loss: 'binary01', 'integer', 'one_hot', 'multi_hot', 'value' or 'invalid'.

    'auto' picks what the loss expects; an explicit 'integer' / 'one_hot' is honoured even when it is wrong,
    so that a mismatch can be shown rather than silently fixed.
    """
    if task == "regression":
        return "value"
    if task == "multilabel":
        return "invalid" if labels == "integer" else "multi_hot"
    if labels == "integer":
        return "integer"
    if labels == "one_hot":
        return "one_hot"
    if loss == SCCE:
        return "integer"
    if loss == CCE:
        return "one_hot"
    if task == "binary" and units == 1:
        return "binary01"
    return "one_hot"


def target_width(task: str, fmt: str, n_outputs: int) -> int:
    """Columns of the target array the loss receives."""
    if fmt in ("one_hot",):
        return 2 if task == "binary" else n_outputs
    if fmt == "multi_hot":
        return n_outputs
    return 1


def encode_targets(config: HeadConfig, y: np.ndarray, n_outputs: int) -> np.ndarray:
    """Targets in the format this head's loss will receive (see pairings.target_format)."""
    units = config.resolved_units(n_outputs)
    fmt = target_format(config.task, units, config.loss, config.labels)
    if fmt == "value":
        return y.astype(np.float32).reshape(-1, 1)
    if fmt == "multi_hot":
        return y.astype(np.float32)
    if fmt == "invalid":  # integer multi-label targets: the first positive label, as a user might try
        return np.argmax(y, axis=1).astype(np.int32).reshape(-1, 1)
    if fmt == "integer":
        dtype = np.int32 if config.loss == "sparse_categorical_crossentropy" else np.float32
        return y.astype(dtype).reshape(-1, 1)
    if fmt == "binary01":
        return y.astype(np.float32).reshape(-1, 1)
    n_classes = 2 if config.task == "binary" else n_outputs
    return np.eye(n_classes, dtype=np.float32)[y.astype(int)]


def judge(task: str, units: int, n_outputs: int, activation: str, loss: str, from_logits: bool,
          labels: str = "auto", backend: str | None = None, setup: Setup | None = None) -> Verdict:
    """The verdict for one combination. n_outputs is the task's natural unit count (classes/labels, or 1);
    setup (default: a frozen pretrained base) decides the sentences that hold only for some set-ups."""
    backend = backend or backend_name()
    codes = _codes(task, units, n_outputs, activation, loss, from_logits, labels)
    problems = [PROBLEMS[c] for c in codes]
    level = max((p.level for p in problems), key=LEVELS.index)
    texts = [p.text(backend, setup) for p in problems]
    message = " ".join(t[0] for p, t in zip(problems, texts) if p.level == level)
    return Verdict(level=level, codes=tuple(codes), message=message,
                   symptoms=tuple(t[1] for t in texts), knobs=tuple(p.knob for p in problems),
                   backend=backend)


def verdict_for(config: HeadConfig, n_outputs: int, backend: str | None = None, pretrained: bool = True) -> Verdict:
    """The table's verdict on a head configuration for a dataset with n_outputs natural outputs; its texts
    assume the config's own base (frozen when unfrozen == 0) and, unless told otherwise, pretrained weights."""
    setup = Setup(frozen=config.unfrozen == 0, pretrained=pretrained)
    return judge(config.task, config.resolved_units(n_outputs), n_outputs, config.activation, config.loss,
                 config.from_logits, config.labels, backend, setup)


def _codes(task: str, units: int, n: int, act: str, loss: str, logits: bool, labels: str) -> list[str]:
    codes: list[str] = []
    ce = loss in CE_LOSSES
    if act == "softmax" and units == 1:
        codes.append("softmax_one_unit")

    if task == "regression":
        if ce:
            codes.append("ce_for_regression")
        codes += {"sigmoid": ["sigmoid_regression"], "tanh": ["tanh_regression"],
                  "relu": ["relu_regression"]}.get(act, [])
        if act == "softmax" and units > 1:
            codes.append("softmax_regression")
        if units > 1:
            codes.append("regression_units")
        if logits and not ce:
            codes.append("from_logits_ignored")
        if labels != "auto":
            codes.append("labels_ignored")
        return codes or [_OK_FALLBACK[task]]

    fmt = target_format(task, units, loss, labels)
    n_classes = 2 if task == "binary" else n
    # Targets vs loss vs units: the problems that stop Keras before the first step.
    shape_codes: list[str] = []
    if fmt == "invalid":
        shape_codes.append("integer_multilabel")
    elif task == "multilabel" and loss == SCCE:
        shape_codes.append("sparse_multilabel")
    elif loss == SCCE and fmt == "one_hot":
        shape_codes.append("onehot_labels_sparse_loss")
    elif loss == CCE and fmt == "integer" and units > 1:
        shape_codes.append("integer_labels_onehot_loss")
    elif loss in REGRESSION_LOSSES and fmt == "integer" and task == "multiclass":
        shape_codes.append("class_index_as_number")
    if units == 1 and loss in (CCE, SCCE) and not shape_codes and task != "multilabel":
        shape_codes.append("ce_over_one_unit")
    elif loss == SCCE and not shape_codes:
        if units < n_classes:
            shape_codes.append("units_too_few_sparse")
        elif units > n_classes:
            shape_codes.append("units_extra")
    elif loss != SCCE and not shape_codes and target_width(task, fmt, n) != units:
        shape_codes.append("units_mismatch")
    codes += shape_codes

    if ce:
        if act == "linear" and not logits:
            codes.append("linear_probabilities")
        elif act == "relu":
            codes.append("relu_ce")
        elif act == "tanh":
            codes.append("tanh_logits" if logits else "tanh_ce")
        elif act in ("softmax", "sigmoid") and logits:
            codes.append("probabilities_as_logits")
    else:
        codes.append("regression_loss_for_classes")
        if logits:
            codes.append("from_logits_ignored")

    if task == "multilabel":
        if act == "softmax" and units > 1:
            codes.append("softmax_multilabel")
        if loss == CCE:
            codes.append("cce_multilabel")
    elif units > 1:
        if act == "sigmoid" and loss in (CCE, SCCE):
            codes.append("sigmoid_with_cce")
        elif act == "softmax" and loss == BCE:
            codes.append("softmax_with_bce")
        elif act == "sigmoid" and loss == BCE:
            codes.append("sigmoid_one_vs_rest")

    if not codes:
        if act == "linear" and logits:
            codes.append("ok_logits")
        elif task == "binary" and units == 1:
            codes.append("ok_sigmoid_bce")
        elif task == "binary":
            codes.append("ok_softmax_ce")
        else:
            codes.append(_OK_FALLBACK[task])
    return codes


def unit_choices(task: str, n_outputs: int) -> tuple[int, ...]:
    """Unit counts worth distinguishing for a task: 1, one too few, the natural count(s), one too many."""
    natural = {1, n_outputs, 2 if task == "binary" else n_outputs}
    fewer = {n_outputs - 1} if n_outputs > 2 else set()
    return tuple(sorted(natural | fewer | {max(natural) + 1}))


def all_combinations(task: str, n_outputs: int):
    """Every (units, activation, loss, from_logits, labels) the table answers for this task."""
    return itertools.product(unit_choices(task, n_outputs), ACTIVATIONS, LOSSES, (False, True), LABEL_FORMATS)


def table_rows(task: str, n_outputs: int, backend: str | None = None) -> list[dict]:
    """The whole table for one task as rows (for the UI's table view and for tests)."""
    rows = []
    for units, act, loss, logits, labels in all_combinations(task, n_outputs):
        v = judge(task, units, n_outputs, act, loss, logits, labels, backend)
        rows.append({"task": task, "units": units, "activation": act, "loss": loss, "from_logits": logits,
                     "labels": labels, "level": v.level, "codes": ", ".join(v.codes), "message": v.message})
    return rows
