"""What one Train may cost on a shared server, and an estimate of that cost made before training.

One participant's link could otherwise hold the only training slot for hours and fill the server's
memory (a Flatten head of 2048 units at 299 px has 262 M weights: 4 GB with Adam's state). The limits
live in `Budget` (lib.common.budget: a teacher sets them with environment variables); `estimate`
predicts parameters, memory and multiply-adds of a sweep from layer shapes alone
(lib.backbones.profile), in milliseconds, and `check` turns what is over a limit into one line a
participant can act on. `lib.train.trainer.train` refuses before extracting anything.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from lib.backbones.features import find_cut
from lib.backbones.profile import (
    BYTES_PER_FLOAT,
    LIVE_TENSORS,
    elements,
    extraction_batch,
    layer_costs,
)
from lib.common.budget import ENV, Budget, count_text
from lib.data.taskdata import TaskData
from lib.heads.config import HeadConfig

# Optimizer slots per trainable weight, as Keras 3 builds them with Head Lab's settings (momentum 0
# for SGD and RMSprop): Adam/AdamW keep two moments, RMSprop one average, plain SGD none.
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 0}
# Multiply-adds per trainable weight per optimizer step (Adam: two moment updates and the scaled
# step). Matters only for huge heads, where the update of every weight per batch rivals the matmuls.
OPTIMIZER_MACS_PER_WEIGHT = 4
# A backward pass costs about twice the forward one (gradients with respect to inputs and weights).
TRAIN_PASS_FACTOR = 3

# Tracing a head's training graph takes memory per backbone layer it trains: fitted to the first
# Train's RSS growth on MobileNetV2 (whole base at 64 px: 954 MB measured, 553 MB without this term).
TRACE_BYTES_PER_LAYER = 2 * 2**20


def parallel_heads(n_heads: int) -> int:
    """How many heads of one sweep advance at once (threads): one per core, at most 4."""
    return max(1, min(os.cpu_count() or 1, 4, n_heads))


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
    model = backbone.model
    layers = layer_costs(model)
    top = len(layers) - 1
    n = int(len(data.images))
    n_val = int(data.is_val.sum())
    n_train = n - n_val
    steps = math.ceil(n_train / batch_size) if n_train else 0
    # A two-phase head trains phase 1 on the frozen base's features and phase 2 above its cut: both are
    # extracted, and it costs what a frozen head of `epochs` plus a one-phase head of its fine-tuning
    # epochs would (its state: both models, phase 1's being returned to the pool as phase 2 starts).
    staged = [*heads, *(h.phase1() for h in heads if h.two_phase)]
    cut_of = {u: find_cut(model, u).index for u in sorted({h.unfrozen for h in staged})}

    feature_bytes = extraction = extraction_bytes = 0
    for index in sorted(set(cut_of.values())):
        size = elements(model.layers[index].output.shape[1:])
        extraction += n * sum(layer.macs for layer in layers[1:index + 1])
        widest = max(layer.out for layer in layers[:index + 1])
        extraction_bytes = max(extraction_bytes,
                               min(n, extraction_batch(model, index)) * LIVE_TENSORS * widest * BYTES_PER_FLOAT)
        # compute_features concatenates its batches (two copies at the peak); train() then copies the
        # array into tensors, so two copies of the raw features exist at once.
        feature_bytes += 2 * n * size * BYTES_PER_FLOAT
        if index == top:  # a frozen base's heads train on features pooled once, per pooling
            channels = int(model.layers[index].output.shape[-1])
            pooled = {h.pooling for h in staged if cut_of[h.unfrozen] == top} - {"flatten"}  # a reshape: no copy
            feature_bytes += len(pooled) * n * channels * BYTES_PER_FLOAT
            extraction += len(pooled) * n * size

    def one(h: HeadConfig, epochs: int) -> HeadEstimate:
        index = cut_of[h.unfrozen]
        above = layers[index + 1:]
        feature_shape = tuple(model.layers[top].output.shape[1:])
        pool_in = elements(feature_shape)
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
        return HeadEstimate(h.label(), params, trainable, sum(layer.params for layer in above), largest,
                            h.pooling, len(h.hidden), state, activation, int(macs))

    per_head = []
    for h in heads:
        if not h.two_phase:
            per_head.append(one(h, epochs))
            continue
        first, second = one(h.phase1(), epochs), one(h.phase2(), h.fine_tune_epochs)
        per_head.append(replace(second, label=h.label(), state_bytes=first.state_bytes + second.state_bytes,
                                activation_bytes=max(first.activation_bytes, second.activation_bytes),
                                macs=first.macs + second.macs))
    return Estimate(tuple(per_head), int(feature_bytes), int(extraction_bytes), int(extraction),
                    len(set(cut_of.values())),
                    int(backbone.size), n)


def check(est: Estimate, budget: Budget) -> list[str]:
    """One line per limit the sweep would exceed: what it needs, the limit and why, what to change."""
    lines = []
    for i, h in enumerate(est.heads, 1):
        if h.params > budget.max_params:
            lines.append(f"Head {i} ({_clip(h.label)}) has {count_text(h.params)} parameters; this server allows "
                         f"{count_text(budget.max_params)} per head ({ENV['max_params']}) so that one Train cannot "
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


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def _gmacs(n: int) -> str:
    return f"{n / 1e9:,.0f}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"
