"""Guided workshop scenarios: a question, preset heads, what to look for, and what the measurement showed.

Each lesson's `finding` was measured on the bundled data with the bundled backbone, and its `check`
re-tests that statement against a real run (tests/test_lessons.py), so the text cannot drift from
what the app actually shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lib.experiment import Experiment
from lib.heads.config import HeadConfig, parse_head_string
from lib.train.metrics import float_equal, probability_view
from lib.train.trainer import SweepResult


@dataclass(frozen=True)
class Lesson:
    """One scenario. `check(sweep)` returns the parts of `finding` the run did not bear out (empty = holds)."""

    id: str
    title: str
    question: str
    look_for: str
    finding: str
    experiment: Experiment
    check: Callable[[SweepResult], list[str]]


def _heads(task: str, *specs: str) -> tuple[HeadConfig, ...]:
    return tuple(parse_head_string(task, s) for s in specs)


def _final(sweep: SweepResult, i: int, key: str) -> float:
    v = sweep.runs[i].final.get(key)
    return float("nan") if v is None else float(v)


def _last_outputs(sweep: SweepResult, i: int) -> np.ndarray:
    run = sweep.runs[i]
    return probability_view(run.config, run.snapshots[max(run.snapshots)])


def _expect(cond: bool, text: str, failures: list[str]) -> None:
    if not cond:
        failures.append(text)


# ---- the checks (each mirrors its lesson's finding) ---------------------------------------------

def _check_sigmoid_vs_softmax(s: SweepResult) -> list[str]:
    f: list[str] = []
    sig, soft = _final(s, 0, "val_accuracy"), _final(s, 1, "val_accuracy")
    _expect(sig >= 0.9, f"sigmoid head reaches ≥ 90% accuracy (got {sig:.1%})", f)
    _expect(abs(sig - soft) <= 0.03, f"sigmoid and softmax×2 within 3 points (got {sig:.1%} vs {soft:.1%})", f)
    return f


def _check_softmax_one_unit(s: SweepResult) -> list[str]:
    f: list[str] = []
    sig, one = s.runs[0], s.runs[1]
    _expect(np.allclose(sig.history["loss"], one.history["loss"], rtol=1e-4),
            "softmax×1 + BCE shows the same training-loss curve as sigmoid + BCE", f)
    _expect(one.history["loss"][-1] < one.history["loss"][0], "its loss falls", f)
    _expect(bool(np.all(float_equal(_last_outputs(s, 1), 1.0))), "every softmax×1 prediction is 1.0 (to float precision)", f)
    pos_rate = float(np.mean(s.y_val == 1))
    _expect(abs(_final(s, 1, "val_accuracy") - pos_rate) < 1e-9, "its accuracy equals the positive-class rate", f)
    _expect(_final(s, 0, "val_accuracy") >= 0.9, "the sigmoid head is ≥ 90% accurate", f)
    return f


def _check_sigmoid_cce(s: SweepResult) -> list[str]:
    f: list[str] = []
    soft, sig = _final(s, 0, "val_accuracy"), _final(s, 1, "val_accuracy")
    _expect(abs(soft - sig) <= 0.03, f"sigmoid + CCE is as accurate as softmax + CCE (got {sig:.1%} vs {soft:.1%})", f)
    sums_soft = _last_outputs(s, 0).sum(axis=1)
    sums_sig = _last_outputs(s, 1).sum(axis=1)
    _expect(bool(np.allclose(sums_soft, 1, atol=1e-4)), "softmax rows sum to 1", f)
    _expect(float(np.mean(np.abs(sums_sig - 1) > 0.05)) > 0.5, "most sigmoid rows do not sum to 1", f)
    return f


def _check_softmax_multilabel(s: SweepResult) -> list[str]:
    f: list[str] = []
    sig, soft = _final(s, 0, "val_exact_match"), _final(s, 1, "val_exact_match")
    multi = s.y_val.sum(axis=1) >= 2
    _expect(sig >= soft + 0.3, f"sigmoid exact-match beats softmax by ≥ 30 points (got {sig:.1%} vs {soft:.1%})", f)
    out = _last_outputs(s, 1)
    hits = (out > 0.5).sum(axis=1)
    _expect(bool(np.all(hits[multi] <= 1)), "softmax never marks two labels on a multi-label image", f)
    _expect(soft <= 1 - float(np.mean(multi)) + 1e-9, "softmax exact-match cannot exceed the single-label share", f)
    return f


def _check_logits(s: SweepResult) -> list[str]:
    f: list[str] = []
    logits, probs_told_logits = _final(s, 0, "val_accuracy"), _final(s, 1, "val_accuracy")
    base = _final(s, 3, "val_accuracy")
    _expect(np.allclose(s.runs[0].history["loss"], s.runs[3].history["loss"], rtol=1e-4),
            "linear + from_logits=True has sigmoid + BCE's loss curve", f)
    _expect(np.allclose(s.runs[1].history["loss"], s.runs[3].history["loss"], rtol=1e-4),
            "sigmoid + from_logits=True has sigmoid + BCE's loss curve on TensorFlow", f)
    _expect(abs(logits - base) <= 0.01 and abs(probs_told_logits - base) <= 0.01, "and the same accuracy", f)
    raw = s.runs[2].snapshots[max(s.runs[2].snapshots)]
    _expect(float(np.mean((raw < 0) | (raw > 1))) > 0.2,
            "the linear head told from_logits=False outputs mostly outside [0, 1]", f)
    _expect(_final(s, 2, "val_loss") > 5 * _final(s, 3, "val_loss"), "its loss stays > 5× higher", f)
    _expect(_final(s, 2, "val_accuracy") >= 0.9, "while its ranking still separates the classes (≥ 90%)", f)
    return f


def _check_regression(s: SweepResult) -> list[str]:
    f: list[str] = []
    lin, relu, sig = (_final(s, i, "val_mae") for i in range(3))
    _expect(sig > 4 * lin, f"sigmoid's MAE is > 4× linear's (got {sig:.0f} vs {lin:.0f})", f)
    pred = s.runs[2].snapshots[max(s.runs[2].snapshots)][:, 0]
    _expect(float(pred.max()) <= 1.0, "sigmoid predictions never exceed 1", f)
    _expect(abs(sig - float(np.mean(s.y_val))) < 0.01 * float(np.mean(s.y_val)),
            "so sigmoid's MAE is simply the mean target", f)
    _expect(relu <= 1.1 * lin, "relu (targets are positive) does as well as linear", f)
    return f


def _check_initializers(s: SweepResult) -> list[str]:
    f: list[str] = []
    glorot, zeros, huge, zeros_hidden = (_final(s, i, "val_accuracy") for i in range(4))
    floor = float(np.bincount(s.y_val).max() / len(s.y_val))
    _expect(abs(glorot - zeros) <= 0.03, "a single Dense layer trains fine from zeros", f)
    _expect(zeros_hidden <= floor + 0.02, "zeros with a ReLU hidden layer never leaves the majority rate", f)
    start = s.runs[2].snapshots[0]
    _expect(float(np.mean((start < 1e-3) | (start > 1 - 1e-3))) > 0.5, "a huge random normal starts saturated", f)
    _expect(huge < glorot, "and ends less accurate than glorot", f)
    return f


def _check_pooling(s: SweepResult) -> list[str]:
    f: list[str] = []
    gap, flat = _final(s, 0, "val_accuracy"), _final(s, 1, "val_accuracy")
    _expect(abs(gap - flat) <= 0.05, f"GAP and Flatten end within 5 points (got {gap:.1%} vs {flat:.1%})", f)
    return f


# The fine-tuning lesson's cost: 32 px (the fashion photos are 28 px, so nothing is lost) and 3 epochs keep
# its first, cold run near 20 s on 2 cores (Example 3's whole base dominates: tracing its training graph,
# then ~1.3 s per epoch). Measured with bench/bench_fine_tuning.py.
FT_EPOCHS, FT_SIZE, FT_UNFROZEN, FT_PHASE2_EPOCHS = 3, 32, 20, 2
# Example 3's epoch over the frozen head's: measured 250-780× at 32 px on 2 cores (quiet to busy) (the frozen head's epoch
# is a few ms of per-call overhead). A ratio, not seconds, so a 3× slower machine changes little; 20× leaves
# over 10× room for a machine whose overhead is relatively larger (issue 15 measured 42× on one at 64 px).
FT_MIN_TIME_RATIO = 20
SHOWS_EPOCH_TIMES = ("fine-tuning",)  # lessons whose page shows the seconds per epoch (epoch_time_text)


def epoch_time_text(sweep: SweepResult) -> str:
    """Seconds per epoch of every head of a sweep (phase 1, then phase 2 of a two-phase head), and how
    many times the first head's each one takes: the time the fine-tuning lesson's finding is about."""
    base = sweep.runs[0].seconds_per_epoch() if sweep.runs else None
    parts = []
    for i, run in enumerate(sweep.runs, 1):
        secs = [run.seconds_per_epoch(p) for p in ((1, 2) if run.phase_boundary is not None else (None,))]
        if secs[0] is None:
            continue
        shown = " then ".join(_seconds(t) for t in secs if t is not None)
        ratio = max(t for t in secs if t is not None) / base if base and i > 1 else None
        parts.append(f"{i}. {run.label}: {shown}" + (f" ({ratio:,.0f}× head 1's)" if ratio and ratio >= 2 else ""))
    return "Seconds per epoch (training + validation): " + " · ".join(parts) if parts else ""


def _seconds(t: float) -> str:
    return f"{t:.3f} s" if t < 0.1 else f"{t:.2f} s"


def _check_fine_tuning(s: SweepResult) -> list[str]:
    f: list[str] = []
    frozen, two, top, whole = s.runs
    acc = [_final(s, i, "val_accuracy") for i in range(4)]
    _expect(whole.cut.startswith("whole backbone"), "Example 3's set-up trains the whole backbone", f)
    _expect(acc[0] >= 0.93, f"the frozen base is ≥ 93% accurate after {FT_EPOCHS} epochs (got {acc[0]:.1%})", f)
    n1 = len(frozen.history["loss"])
    _expect(two.phase_boundary == n1 and np.allclose(two.history["loss"][:n1], frozen.history["loss"], rtol=1e-6),
            "the two-phase head's first phase is the frozen head's run, epoch for epoch", f)
    start = two.final.get("fine_tune_start_val_loss")
    _expect(start is not None and abs(start - frozen.history["val_loss"][-1]) <= 1e-3 * frozen.history["val_loss"][-1],
            "phase 2 starts from phase 1's head (the same validation loss before its first step)", f)
    _expect(acc[1] >= acc[0] - 0.005, f"the two-phase head matches or beats the frozen one ({acc[1]:.1%} vs {acc[0]:.1%})", f)
    _expect(_final(s, 1, "val_loss") < 0.5 * _final(s, 0, "val_loss"),
            "fine-tuning at least halves the frozen head's validation loss", f)
    _expect(min(acc[2], acc[3]) >= acc[0] - 0.005,
            f"the one-phase heads end at least as accurate as the frozen head (got {acc[2]:.1%}, {acc[3]:.1%})", f)
    t_frozen, t_whole = frozen.seconds_per_epoch(), whole.seconds_per_epoch()
    ratio = t_whole / t_frozen if t_frozen and t_whole else 0.0
    _expect(ratio >= FT_MIN_TIME_RATIO,
            f"each of Example 3's epochs takes over {FT_MIN_TIME_RATIO}× the frozen head's (got {ratio:.0f}×)", f)
    return f


_BIN, _MC = "fashion", "fashion"

LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "sigmoid-vs-softmax", "Sigmoid or softmax for a binary head?",
        "A seed article claims a sigmoid head on a frozen pretrained base 'will result in very poor performance'. Does it?",
        "Compare the validation accuracy curves and the output histograms: do both heads separate footwear from clothing?",
        "Measured: one sigmoid unit with binary cross-entropy is as accurate as two softmax units (within 3 points, "
        "≥ 90%) — the claim is wrong; sigmoid + BCE is the textbook binary head.",
        Experiment(task="binary", dataset=_BIN, heads=_heads(
            "binary", "units=1,activation=sigmoid,loss=binary_crossentropy",
            "units=2,activation=softmax,loss=sparse_categorical_crossentropy")),
        _check_sigmoid_vs_softmax),
    Lesson(
        "softmax-one-unit", "Softmax over one unit",
        "What does Dense(1, activation='softmax') with binary cross-entropy learn?",
        "Put the loss curves side by side, then look at the output histogram and the accuracy.",
        "Measured: the loss curve is identical to sigmoid's — on TensorFlow Keras hands the pre-softmax value to the "
        "loss — yet every prediction is 1.0 (to float precision) and accuracy equals the share of footwear.",
        Experiment(task="binary", dataset=_BIN, heads=_heads(
            "binary", "units=1,activation=sigmoid", "units=1,activation=softmax")),
        _check_softmax_one_unit),
    Lesson(
        "sigmoid-cce", "Sigmoid outputs with categorical cross-entropy",
        "Ten clothing classes, one label each: what if the last layer is sigmoid but the loss is categorical cross-entropy?",
        "Accuracy curves, then the per-sample sum of outputs.",
        "Measured: on TensorFlow it trains like softmax (Keras feeds the pre-sigmoid values to a softmax "
        "loss), so accuracy matches — but the outputs of most images do not sum to 1.",
        Experiment(task="multiclass", dataset=_MC, heads=_heads(
            "multiclass", "activation=softmax,loss=categorical_crossentropy",
            "activation=sigmoid,loss=categorical_crossentropy")),
        _check_sigmoid_cce),
    Lesson(
        "softmax-multilabel", "Softmax for multi-label",
        "Shapes come in several colours at once. What if the head uses softmax?",
        "Exact-match accuracy, and the output histogram of images with two or more colours.",
        "Measured: softmax rows sum to 1, so on an image with two colours at most one can pass 0.5; sigmoid's "
        "exact-match is at least 30 points higher.",
        Experiment(task="multilabel", dataset="shapes", heads=_heads(
            "multilabel", "activation=sigmoid,loss=binary_crossentropy",
            "activation=softmax,loss=binary_crossentropy")),
        _check_softmax_multilabel),
    Lesson(
        "from-logits", "Logits or probabilities? (from_logits both ways)",
        "What happens when from_logits does not describe what the layer outputs?",
        "Accuracy, and the range of the raw outputs in the histogram.",
        "Measured: linear + from_logits=True and sigmoid + from_logits=True both show sigmoid + BCE's loss "
        "curve on TensorFlow, equal to float precision (Keras quietly un-doubles the sigmoid; other backends would not). A linear output told "
        "from_logits=False is clipped into (0, 1) inside the loss: most raw outputs lie outside [0, 1] and its loss "
        "stays over 5× higher — yet its ranking still separates the classes (≥ 90% accuracy), which is why this bug "
        "survives in real code.",
        Experiment(task="binary", dataset=_BIN, heads=_heads(
            "binary", "activation=linear,from_logits=true", "activation=sigmoid,from_logits=true",
            "activation=linear,from_logits=false", "activation=sigmoid")),
        _check_logits),
    Lesson(
        "regression-activations", "Linear, ReLU or sigmoid for regression?",
        "The target is the total shape area in pixels (about 100 to 1,700). Which output activation can reach it?",
        "The predicted-vs-true scatter and the MAE curve.",
        "Measured: sigmoid can never output more than 1, so its MAE is simply the mean target (≈ 620 px, over 4× "
        "the linear head's); ReLU, with all-positive targets, does as well as linear. All three start from the "
        "target mean (log-prior bias).",
        Experiment(task="regression", dataset="shapes", heads=_heads(
            "regression", "activation=linear,learning_rate=0.1,bias_initializer=log_prior",
            "activation=relu,learning_rate=0.1,bias_initializer=log_prior",
            "activation=sigmoid,learning_rate=0.1,bias_initializer=log_prior")),
        _check_regression),
    Lesson(
        "initializers", "Initializers: glorot, zeros, or a huge random normal",
        "Does the starting point of the head matter, with and without a hidden layer?",
        "The 'before training' histograms, then the accuracy curves.",
        "Measured: a single Dense layer trains fine from zeros; with a ReLU hidden layer, zeros never leave the "
        "majority rate (every hidden unit is identical and dead); random_normal(stddev=10) starts with most "
        "outputs saturated at 0 or 1 and ends less accurate than glorot.",
        Experiment(task="binary", dataset=_BIN, heads=_heads(
            "binary", "kernel_initializer=glorot_uniform", "kernel_initializer=zeros",
            "kernel_initializer=random_normal(stddev=10)", "kernel_initializer=zeros,hidden=64:relu")),
        _check_initializers),
    Lesson(
        "flatten-vs-gap", "Flatten or global average pooling?",
        "The seed articles use both. Does it matter on a frozen base?",
        "Accuracy curves and the gap between train and validation loss.",
        "Measured: on this data GAP and Flatten end within 5 points of each other; Flatten has 9× more weights "
        "in the head to fit the same data.",
        Experiment(task="multiclass", dataset=_MC, heads=_heads(
            "multiclass", "pooling=gap", "pooling=flatten", "pooling=max")),
        _check_pooling),
    Lesson(
        "fine-tuning", "Fine-tuning: the Keras guide's two phases (and the seed article's Example 3)",
        "Example 3 'unfreezes the top 20%' of a base it never froze — so everything trains. The Keras guide "
        "instead trains the head on the frozen base first, then unfreezes the top with a low learning rate. What "
        "does each buy on a small dataset, and what does it cost?",
        f"The accuracy and loss curves — for {FT_EPOCHS} epochs the frozen head's lies under the two-phase head's (the same "
        "numbers), which then goes on past the dashed 'fine-tuning →' line — and the seconds per epoch under "
        "the results.",
        f"Measured: over 3 seeds, the two-phase head's first {FT_EPOCHS} epochs are the frozen head's, number "
        f"for number; fine-tuning the top {FT_UNFROZEN} layers at 1e-5 (BatchNorm kept in inference mode) then cuts "
        "its validation loss from ≈ 0.25 to ≈ 0.07 and matches or beats its accuracy (≈ 95–96%). On this easy task "
        "the one-phase heads, unfrozen with a random head from the first step, do not show the damage the guide "
        "warns about: they end at 98–100%. Example 3's set-up trains all 154 layers, and each of its epochs takes "
        "hundreds of times the frozen head's (250–780× at 32 px on 2 cores, more when the server is busy; this "
        "run's seconds per epoch are under the results).",
        Experiment(task="binary", dataset="fashion", epochs=FT_EPOCHS, input_size=FT_SIZE, heads=_heads(
            "binary", "unfrozen=0,name=frozen base",
            f"unfrozen={FT_UNFROZEN},fine_tune_epochs={FT_PHASE2_EPOCHS},fine_tune_learning_rate=1e-5,"
            "name=two phases (Keras guide)",
            f"unfrozen={FT_UNFROZEN},name=top {FT_UNFROZEN} unfrozen (one phase)",
            "unfrozen=2000,name=Example 3: whole base")),
        _check_fine_tuning),
)


def get_lesson(lesson_id: str) -> Lesson:
    for lesson in LESSONS:
        if lesson.id == lesson_id:
            return lesson
    raise KeyError(lesson_id)
