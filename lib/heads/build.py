"""Build the trainable part of a configuration: backbone layers above the cut (cloned) plus the head."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lib.heads.config import HeadConfig

_KERNEL_CLASSES = {
    "glorot_uniform": "GlorotUniform", "glorot_normal": "GlorotNormal", "he_normal": "HeNormal",
    "he_uniform": "HeUniform", "lecun_normal": "LecunNormal", "lecun_uniform": "LecunUniform",
    "orthogonal": "Orthogonal", "random_normal": "RandomNormal", "random_uniform": "RandomUniform",
    "truncated_normal": "TruncatedNormal", "zeros": "Zeros", "ones": "Ones", "constant": "Constant",
}
_UNSEEDED = {"Zeros", "Ones", "Constant"}
DROPOUT_SEED_OFFSET = 7  # a head's Dropout layer draws its masks from seed + 7


def pooling_layer(pooling: str, name: str = "pool"):
    """The Keras layer for a config's pooling (gap, max or flatten)."""
    import keras

    return {"gap": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D,
            "flatten": keras.layers.Flatten}[pooling](name=name)


def make_initializer(name: str, params: dict[str, float], seed: int):
    """A Keras initializer with explicit parameters and seed, so a config + seed always starts the same."""
    import keras

    cls_name = _KERNEL_CLASSES[name]
    cls = getattr(keras.initializers, cls_name)
    kwargs = dict(params)
    if cls_name not in _UNSEEDED:
        kwargs["seed"] = seed
    return cls(**kwargs)


def log_prior_bias(task: str, activation: str, units: int, y_train: np.ndarray) -> np.ndarray | None:
    """Bias that makes the untrained head predict the training base rates (None when it can't apply).

    Sigmoid outputs: log(p / (1 - p)) per output; softmax: log of class frequencies;
    regression: the target mean (a linear output then starts at the average).
    """
    eps = 1e-3
    if task == "regression":
        return np.full(units, float(np.mean(y_train)), np.float32)
    if task == "multilabel":
        if units != y_train.shape[1]:
            return None
        p = np.clip(y_train.mean(axis=0), eps, 1 - eps)
        return np.log(p / (1 - p)).astype(np.float32)
    n_classes = 2 if task == "binary" else int(y_train.max()) + 1
    freq = np.bincount(y_train.astype(int), minlength=n_classes) / len(y_train)
    freq = np.clip(freq, eps, 1 - eps)
    if units == 1:
        p = freq[1] if task == "binary" else freq[0]
        return np.array([math.log(p / (1 - p))], np.float32)
    if units != n_classes:
        return None
    if activation == "softmax":
        return np.log(freq).astype(np.float32)
    return np.log(freq / (1 - freq)).astype(np.float32)


@dataclass(frozen=True)
class DenseSpec:
    """One Dense layer of a head: its size, activation and seeded initializers (the one place they are set)."""

    name: str
    units: int
    activation: str
    kernel_initializer: object
    bias_initializer: object
    bias_value: np.ndarray | None = None  # assigned after building (the log-prior bias), else None


def dense_layers(config: HeadConfig, n_outputs: int, y_train: np.ndarray, seed: int) -> tuple[list[DenseSpec], list[str]]:
    """The head's Dense layers in order (hidden ones, then "output"), and notes about the choices made.

    Dropout, when configured, sits just before the output layer (seed `seed + DROPOUT_SEED_OFFSET`)."""
    notes: list[str] = []
    units = config.resolved_units(n_outputs)
    k_name, k_params = config.kernel_init()
    specs = [DenseSpec(f"hidden_{i}", h_units, h_act, make_initializer(k_name, k_params, seed + 101 + i), "zeros")
             for i, (h_units, h_act) in enumerate(config.hidden)]
    b_name, b_params = config.bias_init()
    bias_value = None
    if b_name == "log_prior":
        bias_value = log_prior_bias(config.task, config.activation, units, y_train)
        if bias_value is None:
            notes.append("log-prior bias does not fit this many units; used zeros")
        bias_init = make_initializer("zeros", {}, seed)
    else:
        bias_init = make_initializer(b_name, b_params, seed + 202)
    specs.append(DenseSpec("output", units, config.activation, make_initializer(k_name, k_params, seed + 303),
                           bias_init, bias_value))
    return specs, notes


def initial_weights(config: HeadConfig, in_dim: int, n_outputs: int, y_train: np.ndarray,
                    seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of every Dense layer as `build_head` starts them, for a head on pooled features of
    width `in_dim`, without building a Keras model (the stacked trainer starts many heads at once)."""
    import keras

    weights, d_in = [], in_dim
    for spec in dense_layers(config, n_outputs, y_train, seed)[0]:
        kernel = keras.ops.convert_to_numpy(spec.kernel_initializer((d_in, spec.units), dtype="float32"))
        init = keras.initializers.get(spec.bias_initializer)
        bias = (spec.bias_value if spec.bias_value is not None
                else keras.ops.convert_to_numpy(init((spec.units,), dtype="float32")))
        weights.append((kernel.astype(np.float32), np.asarray(bias, np.float32)))
        d_in = spec.units
    return weights


def _clone_top(backbone, cut_index: int, x, freeze_batchnorm: bool = False):
    """Re-apply fresh copies of backbone layers after the cut to tensor x (weights copied, not shared),
    so fine-tuning never changes the backbone other sessions use.

    freeze_batchnorm: the copies of BatchNormalization layers are frozen, which in Keras 3 also runs them
    in inference mode (their ImageNet statistics are kept), as the Keras guide's fine-tuning phase wants.
    Passing training=False when building the graph would not do it: Keras 3.15's fit() — and this
    trainer — call the model with training=True, which overrides it (measured)."""
    import keras

    layers = backbone.layers
    tensors = {id(layers[cut_index].output): x}
    for layer in layers[cut_index + 1:]:
        # trainable=True whatever the shared layer's flag says: these copies are the part that trains
        trainable = not (freeze_batchnorm and isinstance(layer, keras.layers.BatchNormalization))
        clone = layer.__class__.from_config({**layer.get_config(), "trainable": trainable})
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        args = [tensors[id(t)] for t in inputs]
        out = clone(args if len(args) > 1 else args[0])
        clone.set_weights(layer.get_weights())
        tensors[id(layer.output)] = out
    return tensors[id(layers[-1].output)]


def build_head(config: HeadConfig, feature_shape: tuple[int, ...], n_outputs: int, y_train: np.ndarray,
               seed: int, backbone=None, cut_index: int | None = None, pooled: bool = False,
               freeze_batchnorm: bool = False):
    """The trainable model from cached features to outputs. Returns (model, final Dense layer, notes).

    freeze_batchnorm: BatchNorm layers above the cut stay frozen in inference mode (a two-phase head's
    phase 2; see _clone_top).

    pooled=True: the features were already pooled the config's way (a frozen base: pooling has no
    weights, so it is done once for all epochs instead of on every batch) and the model starts after it.
    """
    import keras

    inp = keras.Input(shape=feature_shape, name="features")
    x = inp
    if backbone is not None and cut_index is not None and cut_index < len(backbone.layers) - 1:
        x = _clone_top(backbone, cut_index, x, freeze_batchnorm)
    if not pooled:
        x = pooling_layer(config.pooling)(x)
    specs, notes = dense_layers(config, n_outputs, y_train, seed)
    for spec in specs:
        if spec.name == "output" and config.dropout > 0:
            x = keras.layers.Dropout(config.dropout, seed=seed + DROPOUT_SEED_OFFSET, name="dropout")(x)
        layer = keras.layers.Dense(spec.units, activation=spec.activation, name=spec.name,
                                   kernel_initializer=spec.kernel_initializer, bias_initializer=spec.bias_initializer)
        x = layer(x)
        if spec.bias_value is not None:
            layer.bias.assign(spec.bias_value)
    out_layer = layer
    return keras.Model(inp, x, name="head"), out_layer, notes
