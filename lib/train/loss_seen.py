"""What a head's loss was computed on — measured from a run, not assumed — and which images it gets most wrong.

On TensorFlow, Keras's cross-entropy losses read the values a sigmoid/softmax output was computed from
(`_keras_logits`, or the op's input in a graph) instead of the outputs, and clip other outputs into
[ε, 1−ε]. Which of these happened in a run is measured here: the reported validation loss of every kept
epoch is recomputed from each candidate reading of the head's numbers —

  pre_activation   Keras's own loss with from_logits=True on the output layer's values before its activation
  outputs          Keras's own loss, as configured, on what predict() returned (NumPy: nothing to fall back on)

— and the readings that reproduce it are kept. When more than one does (sigmoid + BCE away from
saturation: the two agree to float precision), the loss is recomputed per image in a graph, exactly as
training applied it (the head's activation, then its loss), and the readings are compared on the images
where they differ most. `clarity` says how clear that evidence was.
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from lib.heads.config import CE_LOSSES, HeadConfig
from lib.train.keras_objects import make_loss
from lib.train.metrics import float_equal, predicted_classes, probability_view

# The reported loss (a float32 mean in the training graph) and a recomputation of it (a float32 mean
# outside it, over the same values) differ by summation order and by kernel (a CPU without AVX-512 rounds
# softmax one float32 step differently): a few 1e-6 relative for a few thousand images. A reading is
# taken to reproduce the reported loss within 1e-3 relative (plus 1e-6 absolute for losses near 0), a
# margin of >10x over that noise; readings that differ by less are told apart per image instead.
MEAN_REL_TOL = 1e-3
MEAN_ABS_TOL = 1e-6
DECISIVE_IMAGES = 20  # the images (of every kept epoch) where the readings differ most decide a tie
CLEAR_RATIO = 100.0  # the losing reading is off by >= 100x the winner's error there: "clear"
TOP_LOSSES = 16  # validation images kept per head for the top-losses gallery, worst first
CONFIDENT = 0.9  # "confidently wrong": a wrong prediction with probability >= 0.9 (or <= 0.1 for one unit)

_EPS32 = float(np.finfo(np.float32).eps)
LABELS = ("pre_activation", "outputs", "clipped_outputs", "unknown")


@dataclass(frozen=True)
class LossUsed:
    """Which tensor a head's loss consumed, with the numbers that show it."""

    label: str  # one of LABELS
    # clear | weak | none (the readings are equal on every image) | single (a linear output: one reading) |
    # "" (unknown)
    clarity: str
    statement: str  # one sentence for the panel
    epoch: int  # the last epoch checked (its numbers are in `reported` and `candidates`)
    reported: float | None  # the validation loss training reported at `epoch`
    candidates: dict[str, float | None]  # each reading's recomputed loss at `epoch`
    epochs_checked: int

    def to_dict(self) -> dict:
        return asdict(self)


def _epsilon() -> float:
    import keras

    return float(keras.config.epsilon())


def _per_sample(config: HeadConfig, from_logits: bool | None = None):
    """Keras's own loss object for this head, one value per image (reduction=None)."""
    loss = make_loss(config)
    cfg = {**loss.get_config(), "reduction": None}
    if from_logits is not None and "from_logits" in cfg:
        cfg["from_logits"] = from_logits
    return type(loss).from_config(cfg)


_GRAPHS: dict[tuple, object] = {}
_GRAPHS_LOCK = threading.Lock()


def _as_trained(config: HeadConfig):
    """A graph that applies the head's activation to its pre-activation values and then its loss, per
    image: what training computed (on TensorFlow the loss may find the activation's input in the graph)."""
    import keras
    import tensorflow as tf

    key = (config.activation, config.loss, config.from_logits)
    with _GRAPHS_LOCK:
        fn = _GRAPHS.get(key)
        if fn is None:
            act, loss = keras.activations.get(config.activation), _per_sample(config)
            fn = _GRAPHS[key] = tf.function(lambda y, z: loss(y, act(z)), reduce_retracing=True)
    return fn


def _call(fn, *args) -> np.ndarray | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(fn(*args), dtype=np.float64).reshape(-1)
    except Exception:  # a loss Keras refuses on these values (e.g. labels out of range): no reading
        return None


def clipped(config: HeadConfig, outputs: np.ndarray) -> bool:
    """Whether Keras's loss (not from logits) clips any of these outputs into [ε, 1−ε]."""
    if config.loss not in CE_LOSSES or config.from_logits:
        return False
    out = np.asarray(outputs, dtype=np.float64)
    eps = _epsilon()
    if config.loss == "categorical_crossentropy":  # Keras divides by the row sum first
        with np.errstate(divide="ignore", invalid="ignore"):
            out = out / out.sum(axis=-1, keepdims=True)
    finite = out[np.isfinite(out)]
    # float32's 1 - 1e-7 is 0.99999988: an output of 1.0 (or 0.99999994) is above it, so clipped
    return bool(np.any(finite < eps) or np.any(finite > np.float32(1 - eps)))


def loss_view(config: HeadConfig, label: str, outputs: np.ndarray, pre_activations: np.ndarray) -> np.ndarray:
    """The values the loss was computed on, for the panel beside predict()'s: the pre-activation values,
    the outputs, or the outputs as Keras clipped them (after dividing by the row sum, for CCE)."""
    if label == "pre_activation":
        return np.asarray(pre_activations)
    out = np.asarray(outputs, dtype=np.float64)
    if label != "clipped_outputs":
        return out
    if config.loss == "categorical_crossentropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            out = out / out.sum(axis=-1, keepdims=True)
    eps = _epsilon()
    return np.clip(out, eps, float(np.float32(1 - eps)))


def measure_loss_used(config: HeadConfig, y_encoded: np.ndarray, snapshots: dict[int, np.ndarray],
                      pre_activations: dict[int, np.ndarray], reported: dict[int, float]) -> LossUsed:
    """Which tensor the loss consumed in this run, from every epoch with a snapshot, its pre-activation
    values and a finite reported validation loss (see the module's docstring)."""
    epochs = [e for e in sorted(snapshots) if e in pre_activations and e in reported
              and reported[e] is not None and math.isfinite(reported[e])
              and np.all(np.isfinite(snapshots[e])) and np.all(np.isfinite(pre_activations[e]))]
    if not epochs:
        return LossUsed("unknown", "", "No epoch has finite outputs and a finite reported loss to check the loss "
                        "against (the head diverged before its first epoch).", -1, None, {}, 0)
    last = epochs[-1]
    m = len(y_encoded)
    y = np.concatenate([y_encoded] * len(epochs))
    out = np.concatenate([np.asarray(snapshots[e], np.float32) for e in epochs])
    z = np.concatenate([np.asarray(pre_activations[e], np.float32) for e in epochs])
    rep = np.array([reported[e] for e in epochs], dtype=np.float64)

    readings: dict[str, np.ndarray | None] = {}
    if config.activation != "linear":  # a linear output's values are its pre-activation values
        logits_loss = _per_sample(config, from_logits=True) if config.loss in CE_LOSSES else _per_sample(config)
        readings["pre_activation"] = _call(logits_loss, y, z)
    readings["outputs"] = _call(_per_sample(config), y, out)
    means = {k: None if v is None else v.reshape(len(epochs), m).mean(axis=1) for k, v in readings.items()}
    tol = MEAN_REL_TOL * np.abs(rep) + MEAN_ABS_TOL
    reproduce = [k for k, v in means.items() if v is not None and np.all(np.abs(v - rep) <= tol)]
    at_last = {k: None if v is None else float(v[-1]) for k, v in means.items()}

    def result(label: str, clarity: str, statement: str, widest: float = 0.0, err: float = 0.0) -> LossUsed:
        if label == "outputs" and clipped(config, out):
            label = "clipped_outputs"
        text = statement or _statement(config, label, clarity, at_last, float(rep[-1]), last, widest, err)
        return LossUsed(label, clarity, text, last, float(rep[-1]), at_last, len(epochs))

    if not reproduce:
        shown = ", ".join(f"from the {k.replace('_', '-')} values {v:.4g}" for k, v in at_last.items() if v is not None)
        return result("unknown", "", f"Neither reading reproduces the reported validation loss "
                      f"{rep[-1]:.4g} at epoch {last}{': ' + shown if shown else ''}.")
    if len(reproduce) == 1:
        return result(reproduce[0], "clear" if len(readings) > 1 else "single", "")
    # Several readings reproduce the mean: decide per image, against the loss recomputed as training did.
    truth = _call(_as_trained(config), y, z)
    a, b = readings["pre_activation"], readings["outputs"]
    if truth is None or not np.allclose(truth.reshape(len(epochs), m).mean(axis=1), rep, rtol=MEAN_REL_TOL,
                                        atol=MEAN_ABS_TOL):
        best = min(reproduce, key=lambda k: float(np.max(np.abs(means[k] - rep))))
        return result(best, "weak", "")
    spread = np.abs(a - b)
    decisive = np.argsort(-spread, kind="stable")[:DECISIVE_IMAGES]
    widest = float(np.max(spread[decisive]))
    if widest == 0.0:
        return result("outputs", "none", "")
    err = {k: float(np.max(np.abs(readings[k][decisive] - truth[decisive]))) for k in reproduce}
    best, other = sorted(reproduce, key=lambda k: err[k])
    # A gap of a few float32 steps could come from the kernels alone (the graph may fuse or reorder what
    # eager mode computes): evidence, but weak.
    precision = 4 * _EPS32 * (1.0 + float(np.max(np.abs(truth[decisive]))))
    clear = err[other] >= CLEAR_RATIO * max(err[best], 1e-30) and widest > precision
    return result(best, "clear" if clear else "weak", "", widest=widest, err=err[best])


def _statement(config: HeadConfig, label: str, clarity: str, at_last: dict, reported: float, epoch: int,
               widest: float, err: float) -> str:
    """The panel's sentences: which values the loss used, the numbers that show it, how clear that is."""
    act = config.activation
    if label == "pre_activation":
        text = f"The loss used the pre-{act} values, not what predict() returns"
        if config.from_logits:
            text += ", although from_logits=True said the outputs were already logits"
    elif label == "clipped_outputs":
        text = "The loss used the outputs, clipped to [ε, 1−ε]"
        if config.loss == "categorical_crossentropy":
            text += " after dividing each row by its sum"
    elif config.activation == "linear":
        text = "The loss used the outputs (a linear output has no activation: they are its pre-activation values)"
    else:
        text = "The loss used the outputs that predict() returns"
    text += f". Reported validation loss at epoch {epoch}: {reported:.4g}"
    recomputed = [f"from the {'pre-' + act + ' values' if k == 'pre_activation' else 'outputs'}: {v:.4g}"
                  for k, v in at_last.items() if v is not None]
    if recomputed:
        text += "; recomputed " + ", ".join(recomputed)
    text += "."
    if clarity == "weak":
        text += (f" The evidence is weak: both readings give this loss to float precision; on the images where they "
                 f"differ most (by up to {widest:.2g}) this one matched the loss as training computed it"
                 f"{f' to {err:.2g}' if err else ' exactly'}.")
    elif clarity == "none":
        text += " Both readings give exactly the same loss on every image, so which one was used makes no difference here."
    return text


def sample_losses(config: HeadConfig, y_encoded: np.ndarray, y_raw: np.ndarray, outputs: np.ndarray) -> np.ndarray | None:
    """Per validation image, how wrong what predict() returned is: the head's own loss on its outputs
    (regression: the absolute error, in the target's units). None when it cannot be computed."""
    out = np.asarray(outputs, np.float32)
    if not np.all(np.isfinite(out)):
        return None
    if config.task == "regression":
        return np.abs(out[:, 0].astype(np.float64) - np.asarray(y_raw, np.float64))
    values = _call(_per_sample(config), y_encoded, out)
    return values if values is not None and np.all(np.isfinite(values)) else None


def top_losses(losses: np.ndarray | None, k: int = TOP_LOSSES) -> list[tuple[int, float]]:
    """The k validation images with the highest loss, worst first (ties: the lower index first)."""
    if losses is None:
        return []
    order = np.lexsort((np.arange(len(losses)), -np.asarray(losses)))[:k]
    return [(int(i), float(losses[i])) for i in order]


def confidently_wrong(config: HeadConfig, outputs: np.ndarray, y_raw: np.ndarray) -> int | None:
    """How many validation predictions are wrong with a probability of >= 0.9 (one unit: >= 0.9 or <= 0.1;
    several: the predicted class's; multi-label: per image and label). None for regression heads and for
    outputs that are not all finite. Outputs are read as probabilities the way the app reads them."""
    if config.task == "regression":
        return None
    view = probability_view(config, np.asarray(outputs, np.float64))
    if not np.all(np.isfinite(view)):
        return None
    hi = float_equal(view, CONFIDENT) | (view >= CONFIDENT)  # 0.9 itself, to float precision, counts
    lo = float_equal(view, 1 - CONFIDENT) | (view <= 1 - CONFIDENT)
    if config.task == "multilabel":
        if view.shape != np.shape(y_raw):
            return None
        wrong = (view > 0.5) != (np.asarray(y_raw) > 0.5)
        return int(np.sum(wrong & (hi | lo)))
    pred = predicted_classes(config, view)
    wrong = pred != np.asarray(y_raw).astype(int)
    if view.shape[1] == 1:
        return int(np.sum(wrong & (hi[:, 0] | lo[:, 0])))
    return int(np.sum(wrong & hi[np.arange(len(view)), pred]))
