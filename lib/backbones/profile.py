"""A backbone's cost, layer by layer, from its shapes alone (multiply-adds, outputs, weights; computed
once per model), and the feature-extraction batch that keeps one batch's activations within
`EXTRACTION_BATCH_BYTES`. `lib.train.cost` estimates a whole sweep from the same profile.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass

BYTES_PER_FLOAT = 4  # features, weights and optimizer slots are all float32

# Activations of one extraction batch. At 299 px MobileNetV2's widest layer holds 8.6 MB per image, so
# the old fixed batch of 64 took 1.7 GB for a moment; batches that fit 512 MB (19 images at 299 px, 64
# from 128 px down, so the lessons' extraction is unchanged) give the same features (measured: equal
# to the bit) about 10% slower at 299 px, and only once: sample features are then cached.
EXTRACTION_BATCH_BYTES = 512 * 2**20
MAX_EXTRACTION_BATCH = 64
# An inference pass holds a layer's input, its output and at most one residual branch at a time.
LIVE_TENSORS = 3


def extraction_batch(model, cut_index: int) -> int:
    """Images per batch when extracting features up to layers[cut_index], so a batch's activations
    stay within EXTRACTION_BATCH_BYTES."""
    widest = max((layer.out for layer in layer_costs(model)[:cut_index + 1]), default=1)
    per_image = LIVE_TENSORS * widest * BYTES_PER_FLOAT
    return max(1, min(MAX_EXTRACTION_BATCH, EXTRACTION_BATCH_BYTES // per_image))


@dataclass(frozen=True)
class LayerCost:
    """One layer's cost per image, and its weights."""

    macs: int  # multiply-adds per image
    out: int  # output elements per image
    params: int
    trainable: int  # weights a fresh (trainable) copy of the layer trains: not BatchNorm's moving stats


def elements(shape) -> int:
    return math.prod(int(d) for d in shape)


def _layer_cost(layer) -> LayerCost:
    kind = type(layer).__name__
    out = elements(layer.output.shape[1:])
    if kind == "InputLayer":
        return LayerCost(0, out, 0, 0)
    params = sum(elements(w.shape) for w in layer.weights)
    trainable = sum(elements(w.shape) for w in layer.weights if w.trainable)
    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    in_shape = tuple(inputs[0].shape[1:])
    if kind == "DepthwiseConv2D":  # before Conv2D: Keras makes it a subclass of a conv base
        macs = out * elements(layer.kernel_size)
    elif kind in ("Conv2D", "Conv1D", "Conv3D"):
        macs = out * elements(layer.kernel_size) * int(in_shape[-1]) // int(getattr(layer, "groups", 1) or 1)
    elif kind == "Dense":
        macs = out * int(in_shape[-1])
    elif kind in ("MaxPooling2D", "AveragePooling2D"):
        macs = out * elements(layer.pool_size)
    elif kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        macs = elements(in_shape)
    else:  # BatchNorm, activations, Add, padding, ...: about one operation per output element
        macs = out * max(1, len(inputs))
    return LayerCost(int(macs), out, params, trainable)


_PROFILES: dict[int, tuple[weakref.ref, tuple[LayerCost, ...]]] = {}
_PROFILES_LOCK = threading.Lock()


def layer_costs(model) -> tuple[LayerCost, ...]:
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
