"""What one Train may cost on a shared server, and an estimate of that cost made before training.

One participant's link could otherwise hold the only training slot for hours and fill the server's
memory (a Flatten head of 2048 units at 299 px has 262 M weights: 4 GB with Adam's state). The limits
live in `Budget` (a teacher sets them with environment variables); `estimate` predicts parameters,
memory and multiply-adds of a sweep from layer shapes alone, in milliseconds, and `check` turns what
is over a limit into one line a participant can act on. `lib.training.train` refuses before
extracting anything.

The defaults were chosen against measurements on the project's 2-core server (see each field).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from lib.data.taskdata import TaskData
from lib.heads.config import HeadConfig

log = logging.getLogger(__name__)

BYTES_PER_FLOAT = 4  # features, weights and optimizer slots are all float32
# Optimizer slots per trainable weight, as Keras 3 builds them with Head Lab's settings (momentum 0
# for SGD and RMSprop): Adam/AdamW keep two moments, RMSprop one average, plain SGD none.
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 0}
# Multiply-adds per trainable weight per optimizer step (Adam: two moment updates and the scaled
# step). Matters only for huge heads, where the update of every weight per batch rivals the matmuls.
OPTIMIZER_MACS_PER_WEIGHT = 4
# A backward pass costs about twice the forward one (gradients with respect to inputs and weights).
TRAIN_PASS_FACTOR = 3
# Activations of one extraction batch. At 299 px MobileNetV2's widest layer holds 8.6 MB per image, so
# the old fixed batch of 64 took 1.7 GB for a moment; batches that fit 512 MB (19 images at 299 px, 64
# from 128 px down, so the lessons' extraction is unchanged) give the same features (measured: equal
# to the bit) about 10% slower at 299 px, and only once: sample features are then cached.
EXTRACTION_BATCH_BYTES = 512 * 2**20
MAX_EXTRACTION_BATCH = 64
# An inference pass holds a layer's input, its output and at most one residual branch at a time.
LIVE_TENSORS = 3
# Tracing a head's training graph takes memory per backbone layer it trains: fitted to the first
# Train's RSS growth on MobileNetV2 (whole base at 64 px: 954 MB measured, 553 MB without this term).
TRACE_BYTES_PER_LAYER = 2 * 2**20

ENV = {
    "max_train_seconds": "HEADLAB_MAX_TRAIN_SECONDS",
    "max_params": "HEADLAB_MAX_PARAMS",
    "max_memory_mb": "HEADLAB_MAX_MEMORY_MB",
    "max_gmacs": "HEADLAB_MAX_GMACS",
    "pool_mb": "HEADLAB_POOL_MB",
    "feature_memory_mb": "HEADLAB_FEATURE_MEMORY_MB",
    "feature_cache_mb": "HEADLAB_FEATURE_CACHE_MB",
}


@dataclass(frozen=True)
class Budget:
    """The server's limits. `Budget.from_env()` reads a teacher's overrides (see `ENV`)."""

    # Training time of one Train, checked between epochs. The slowest lesson (fine-tuning, the whole
    # MobileNetV2 trainable at 64 px) trains in 43 s cold, 12 s warm, on the 2-core server: 180 s
    # leaves it 4x headroom on a busier machine, and a 200-epoch link stops after 3 minutes, not 12 h.
    max_train_seconds: float = 180.0
    # Weights of one head (backbone layers it trains included). 25 M fits every backbone of the
    # registry trained whole (ResNet50: 23.6 M) and Flatten + Dense(128) on MobileNetV2 at every size
    # (16.4 M at 299 px), ten times the largest lesson head (2.3 M); it refuses Flatten + 2048 at
    # 299 px (262 M) and four hidden layers of 4096 (55 M and more).
    max_params: int = 25_000_000
    # Peak memory of one Train: features, every head's weights, gradients and optimizer slots, the
    # activations of the heads training at once. The server idles at 1.2 GB after 600 sessions
    # (bench/soak.py), so one sweep at this limit keeps it near the 4 GB the README promises. The
    # largest sweep that must pass, the default head on ResNet50 at 299 px on `fashion`, is estimated
    # at 1.8 GB; the fine-tuning lesson at 1.0 GB (0.95 GB measured); the whole MobileNetV2 trained
    # at 96 px at 1.5 GB (1.4 GB measured) passes, at 128 px (2.3 GB measured) it is refused.
    max_memory_mb: float = 2048.0
    # Multiply-adds of one Train, extraction and training, in billions. The largest sweep that must
    # pass, the default head on VGG16 at 299 px on `fashion` (800 images), needs 21,500 G, nearly all
    # of it extraction (7 minutes here, once: then it is cached). 30,000 G leaves it room to train
    # and refuses links that would hold the only slot for an hour (this CPU does 10-50 G a second).
    max_gmacs: float = 30_000.0
    # Traced heads kept for reuse between Trains (weights + optimizer slots). The fine-tuning
    # lesson's whole-backbone head is 27 MB, a frozen-base head a few kB: 256 MB keeps the lessons'
    # heads warm and no longer lets three big heads hold 9 GB while the server idles.
    pool_mb: float = 256.0
    # Feature tensors kept in memory between Trains (every lesson's fit at 96 px in about 40 MB).
    feature_memory_mb: float = 512.0
    # Sample-data features cached on disk (uploads never are). Every lesson's entries take 190 MB,
    # the largest single entry (ResNet50 at 299 px on `fashion`) 655 MB.
    feature_cache_mb: float = 2048.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Budget:
        """The defaults, overridden by positive numbers in the environment; bad values are logged, not fatal."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(ENV[f.name])
            if raw is None or not raw.strip():
                continue
            try:
                value = float(raw.replace("_", ""))
            except ValueError:
                value = float("nan")
            if not math.isfinite(value) or value <= 0:
                log.warning("%s=%r is not a positive number; using the default %s", ENV[f.name], raw[:40], f.default)
                continue
            values[f.name] = value if f.type == "float" else int(value)
        return cls(**values)

    @property
    def max_memory_bytes(self) -> int:
        return int(self.max_memory_mb * 2**20)

    @property
    def pool_bytes(self) -> int:
        return int(self.pool_mb * 2**20)

    @property
    def feature_memory_bytes(self) -> int:
        return int(self.feature_memory_mb * 2**20)

    @property
    def feature_cache_bytes(self) -> int:
        return int(self.feature_cache_mb * 2**20)

    def describe(self) -> str:
        """The limits in plain words, one per line, each with the variable that sets it."""
        return "\n".join([
            f"Each Train trains for at most {self.max_train_seconds:g} s ({ENV['max_train_seconds']}); "
            "then it stops between epochs and keeps what it trained.",
            f"Each head has at most {_count(self.max_params)} parameters ({ENV['max_params']}).",
            f"Each Train uses at most {self.max_memory_mb:,g} MB of memory for features, heads and optimizer "
            f"state ({ENV['max_memory_mb']}).",
            f"Each Train computes at most {self.max_gmacs:,.0f} billion multiply-adds, feature extraction "
            f"included ({ENV['max_gmacs']}).",
            f"Between Trains the server keeps at most {self.pool_mb:,g} MB of traced heads ({ENV['pool_mb']}) "
            f"and {self.feature_memory_mb:,g} MB of features in memory ({ENV['feature_memory_mb']}), and "
            f"{self.feature_cache_mb:,g} MB of sample-data features on disk ({ENV['feature_cache_mb']}); "
            "uploads are never written to disk.",
        ])


def parallel_heads(n_heads: int) -> int:
    """How many heads of one sweep advance at once (threads): one per core, at most 4."""
    return max(1, min(os.cpu_count() or 1, 4, n_heads))


def extraction_batch(model, cut_index: int) -> int:
    """Images per batch when extracting features up to layers[cut_index], so a batch's activations
    stay within EXTRACTION_BATCH_BYTES."""
    widest = max((layer.out for layer in _profile(model)[:cut_index + 1]), default=1)
    per_image = LIVE_TENSORS * widest * BYTES_PER_FLOAT
    return max(1, min(MAX_EXTRACTION_BATCH, EXTRACTION_BATCH_BYTES // per_image))


# ---- per-layer costs of a backbone, from its shapes -------------------------------------------------

@dataclass(frozen=True)
class _Layer:
    macs: int  # multiply-adds per image
    out: int  # output elements per image
    params: int
    trainable: int  # weights a fresh (trainable) copy of the layer trains: not BatchNorm's moving stats


def _prod(shape) -> int:
    return math.prod(int(d) for d in shape)


def _layer_cost(layer) -> _Layer:
    kind = type(layer).__name__
    out = _prod(layer.output.shape[1:])
    if kind == "InputLayer":
        return _Layer(0, out, 0, 0)
    params = sum(_prod(w.shape) for w in layer.weights)
    trainable = sum(_prod(w.shape) for w in layer.weights if w.trainable)
    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    in_shape = tuple(inputs[0].shape[1:])
    if kind == "DepthwiseConv2D":  # before Conv2D: Keras makes it a subclass of a conv base
        macs = out * _prod(layer.kernel_size)
    elif kind in ("Conv2D", "Conv1D", "Conv3D"):
        macs = out * _prod(layer.kernel_size) * int(in_shape[-1]) // int(getattr(layer, "groups", 1) or 1)
    elif kind == "Dense":
        macs = out * int(in_shape[-1])
    elif kind in ("MaxPooling2D", "AveragePooling2D"):
        macs = out * _prod(layer.pool_size)
    elif kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        macs = _prod(in_shape)
    else:  # BatchNorm, activations, Add, padding, ...: about one operation per output element
        macs = out * max(1, len(inputs))
    return _Layer(int(macs), out, params, trainable)


_PROFILES: dict[int, tuple[weakref.ref, tuple[_Layer, ...]]] = {}
_PROFILES_LOCK = threading.Lock()


def _profile(model) -> tuple[_Layer, ...]:
    """Per-layer costs of a backbone, computed once per model object (it is shared and never changes)."""
    with _PROFILES_LOCK:
        hit = _PROFILES.get(id(model))
        if hit is not None and hit[0]() is model:
            return hit[1]
    costs = tuple(_layer_cost(layer) for layer in model.layers)
    with _PROFILES_LOCK:
        for key in [k for k, (ref, _) in _PROFILES.items() if ref() is None]:
            del _PROFILES[key]
        _PROFILES[id(model)] = (weakref.ref(model), costs)
    return costs


# ---- the estimate ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeadEstimate:
    """One head's share of a sweep."""

    label: str
    params: int  # every weight of the trained model (what model.count_params() reports)
    trainable: int
    backbone_params: int  # of those, in backbone layers above the cut
    largest_dense: tuple[str, int]  # (which Dense layer, its parameters): where the weights are
    pooling: str
    hidden_layers: int
    state_bytes: int  # weights, gradients and optimizer slots, held for the whole sweep
    activation_bytes: int  # a training batch's activations or the validation pass, while it runs
    macs: int  # every epoch's training and validation passes plus optimizer updates


@dataclass(frozen=True)
class Estimate:
    """What a sweep will cost, before anything is extracted or built."""

    heads: tuple[HeadEstimate, ...]
    feature_bytes: int  # features of every distinct cut (array and tensors) and their pooled copies
    extraction_bytes: int  # activations of one extraction batch (extraction runs before any head exists)
    extraction_macs: int  # the frozen part of the backbone over every image, per distinct cut
    cuts: int  # distinct cut points: each one is a separate extraction
    input_size: int
    n_images: int

    @property
    def training_macs(self) -> int:
        return sum(h.macs for h in self.heads)

    @property
    def total_macs(self) -> int:
        return self.extraction_macs + self.training_macs

    @property
    def state_bytes(self) -> int:
        return sum(h.state_bytes for h in self.heads)

    @property
    def activation_bytes(self) -> int:
        """The heads training at the same time each hold their activations."""
        largest = sorted((h.activation_bytes for h in self.heads), reverse=True)
        return sum(largest[:parallel_heads(len(self.heads))])

    @property
    def memory_bytes(self) -> int:
        return self.feature_bytes + max(self.extraction_bytes, self.state_bytes + self.activation_bytes)


def estimate(heads: Sequence[HeadConfig], data: TaskData, backbone, epochs: int,
             batch_size: int = 32) -> Estimate:
    """Parameters, memory and multiply-adds of training `heads` on `data` with `backbone` (a
    LoadedBackbone), from the backbone's layer shapes and the heads' configs: nothing is built or run."""
    from lib.backbones.features import (
        find_cut,  # here: lib.features imports this module for the disk budget
    )

    model = backbone.model
    layers = _profile(model)
    top = len(layers) - 1
    n = int(len(data.images))
    n_val = int(data.is_val.sum())
    n_train = n - n_val
    steps = math.ceil(n_train / batch_size) if n_train else 0
    cut_of = {u: find_cut(model, u).index for u in sorted({h.unfrozen for h in heads})}

    feature_bytes = extraction = extraction_bytes = 0
    for index in sorted(set(cut_of.values())):
        size = _prod(model.layers[index].output.shape[1:])
        extraction += n * sum(layer.macs for layer in layers[1:index + 1])
        widest = max(layer.out for layer in layers[:index + 1])
        extraction_bytes = max(extraction_bytes,
                               min(n, extraction_batch(model, index)) * LIVE_TENSORS * widest * BYTES_PER_FLOAT)
        # compute_features concatenates its batches (two copies at the peak); train() then copies the
        # array into tensors, so two copies of the raw features exist at once.
        feature_bytes += 2 * n * size * BYTES_PER_FLOAT
        if index == top:  # a frozen base's heads train on features pooled once, per pooling
            channels = int(model.layers[index].output.shape[-1])
            pooled = {h.pooling for h in heads if cut_of[h.unfrozen] == top} - {"flatten"}  # a reshape: no copy
            feature_bytes += len(pooled) * n * channels * BYTES_PER_FLOAT
            extraction += len(pooled) * n * size

    per_head = []
    for h in heads:
        index = cut_of[h.unfrozen]
        above = layers[index + 1:]
        feature_shape = tuple(model.layers[top].output.shape[1:])
        pool_in = _prod(feature_shape)
        dense_in = pool_in if h.pooling == "flatten" else int(feature_shape[-1])
        fwd = sum(layer.macs for layer in above) + (pool_in if above and h.pooling != "flatten" else 0)
        params = sum(layer.params for layer in above)
        trainable = sum(layer.trainable for layer in above)
        outs = [layer.out for layer in above] + [dense_in]
        largest = ("", 0)
        widths = [u for u, _ in h.hidden] + [h.resolved_units(data.n_outputs)]
        names = [f"hidden layer {i + 1}" for i in range(len(h.hidden))] + ["the output layer"]
        width_in = dense_in
        for name, units in zip(names, widths):
            weights = width_in * units + units
            params += weights
            trainable += weights
            fwd += width_in * units
            outs.append(units)
            largest = max(largest, (name, weights), key=lambda t: t[1])
            width_in = units
        state = (params + trainable * (1 + OPTIMIZER_SLOTS[h.optimizer])) * BYTES_PER_FLOAT
        # Training keeps every layer's output of a batch for the backward pass, and their gradients;
        # the validation pass runs on all validation images at once but frees each output once used.
        train_act = 2 * batch_size * sum(outs)
        val_act = n_val * LIVE_TENSORS * max(outs + [1])
        activation = max(train_act, val_act) * BYTES_PER_FLOAT + len(above) * TRACE_BYTES_PER_LAYER
        macs = (epochs * (TRAIN_PASS_FACTOR * fwd * n_train + fwd * n_val) + fwd * n_val
                + epochs * steps * trainable * OPTIMIZER_MACS_PER_WEIGHT)
        per_head.append(HeadEstimate(h.label(), params, trainable, sum(layer.params for layer in above), largest,
                                     h.pooling, len(h.hidden), state, activation, int(macs)))
    return Estimate(tuple(per_head), int(feature_bytes), int(extraction_bytes), int(extraction),
                    len(set(cut_of.values())),
                    int(backbone.size), n)


# ---- the check --------------------------------------------------------------------------------------

def check(est: Estimate, budget: Budget) -> list[str]:
    """One line per limit the sweep would exceed: what it needs, the limit and why, what to change."""
    lines = []
    for i, h in enumerate(est.heads, 1):
        if h.params > budget.max_params:
            lines.append(f"Head {i} ({_clip(h.label)}) has {_count(h.params)} parameters; this server allows "
                         f"{_count(budget.max_params)} per head ({ENV['max_params']}) so that one Train cannot "
                         f"fill its memory. {_params_advice(h)}")
    mem = est.memory_bytes
    if mem > budget.max_memory_bytes:
        lines.append(f"This Train needs about {_mb(mem)} of memory ({_mb(est.feature_bytes)} of features, "
                     f"{_mb(est.state_bytes + est.activation_bytes)} for {_plural(len(est.heads), 'head')}); this "
                     f"server allows {budget.max_memory_mb:,g} MB per Train ({ENV['max_memory_mb']}) so the other "
                     f"sessions keep theirs. {_memory_advice(est)}")
    total = est.total_macs
    if total > budget.max_gmacs * 1e9:
        lines.append(f"This Train needs about {_gmacs(total)} billion multiply-adds ({_gmacs(est.extraction_macs)} to "
                     f"extract features, {_gmacs(est.training_macs)} to train); this server allows "
                     f"{budget.max_gmacs:,.0f} billion per Train ({ENV['max_gmacs']}) so that no Train holds "
                     f"the shared training slot for long. {_compute_advice(est, budget)}")
    return lines


def _params_advice(h: HeadEstimate) -> str:
    name, weights = h.largest_dense
    if h.backbone_params > weights:
        return "Unfreeze fewer backbone layers."
    first = "hidden layer 1" if h.hidden_layers else "the output layer"
    if h.pooling == "flatten" and name == first:
        return f"Use global average pooling instead of Flatten, a smaller input size, or fewer units in {name}."
    if name == first:
        return f"Use fewer units in {name}."
    return f"Use fewer units in {name} or in the layer before it."


def _memory_advice(est: Estimate) -> str:
    if est.feature_bytes >= est.state_bytes + est.activation_bytes:
        return (f"Choose a smaller input size than {est.input_size} px (features grow with its square)"
                + (" or fewer different 'unfrozen' values" if est.cuts > 1 else "") + ".")
    return "Train fewer heads at once, or smaller ones (fewer hidden units, global average pooling)."


def _compute_advice(est: Estimate, budget: Budget) -> str:
    if est.extraction_macs > budget.max_gmacs * 1e9 / 2:
        return (f"Choose a smaller input size than {est.input_size} px or a lighter backbone (MobileNetV2)"
                + (", and fewer different 'unfrozen' values (each is one more extraction)" if est.cuts > 1 else "")
                + ".")
    return "Train fewer epochs, fewer heads, or smaller ones (fewer hidden units, fewer unfrozen layers)."


def _count(n: int) -> str:
    return f"{n / 1e6:,.1f} M" if n >= 1e6 else f"{n:,}"


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def _gmacs(n: int) -> str:
    return f"{n / 1e9:,.0f}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"
