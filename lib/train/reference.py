"""The seed articles' way of training a head: backbone + head in one model, `model.fit` per configuration.

Head Lab does not train this way (it re-runs the backbone every epoch); it exists as the baseline
the benchmark times and the tests compare against, so the fast path is checked against Keras itself.
"""

from __future__ import annotations

import numpy as np

from lib.backbones.features import find_cut
from lib.backbones.registry import LoadedBackbone
from lib.data.taskdata import TaskData
from lib.heads.build import build_head
from lib.heads.config import HeadConfig
from lib.heads.pairings import encode_targets
from lib.train.keras_objects import make_loss, make_optimizer


def preprocessed_images(bb: LoadedBackbone, images: np.ndarray) -> np.ndarray:
    """Resize and preprocess images as the backbone expects (done once, outside the model)."""
    import tensorflow as tf

    x = tf.image.resize(tf.cast(images, tf.float32), (bb.size, bb.size))
    return np.asarray(bb.preprocess(x))


def fit_full_model(config: HeadConfig, data: TaskData, bb: LoadedBackbone, *, epochs: int, seed: int,
                   batch_size: int = 32, x: np.ndarray | None = None) -> dict[str, list[float]]:
    """Build backbone (bottom frozen) + head and `model.fit` it without shuffling; returns Keras's history."""
    import keras

    keras.utils.set_random_seed(seed)
    cut = find_cut(bb.model, config.unfrozen)
    bottom = keras.Model(bb.model.input, bb.model.layers[cut.index].output, name="frozen_bottom")
    # `bottom` shares its layers with the cached backbone every other run uses, and freezing it sets
    # their flags: put them back afterwards, or later fine-tuning clones would start out frozen.
    flags = [layer.trainable for layer in bb.model.layers]
    try:
        bottom.trainable = False
        return _fit(config, data, bb, bottom, cut, epochs, seed, batch_size, x)
    finally:
        for layer, flag in zip(bb.model.layers, flags, strict=True):
            layer.trainable = flag


def _fit(config, data, bb, bottom, cut, epochs, seed, batch_size, x) -> dict[str, list[float]]:
    import keras

    tr, va = ~data.is_val, data.is_val
    head, _, _ = build_head(config, tuple(bottom.output.shape[1:]), data.n_outputs, data.y[tr], seed,
                            bb.model, cut.index)
    inp = keras.Input(shape=(bb.size, bb.size, 3))
    model = keras.Model(inp, head(bottom(inp, training=False)))
    model.compile(optimizer=make_optimizer(config), loss=make_loss(config))
    x = preprocessed_images(bb, data.images) if x is None else x
    y_tr = encode_targets(config, data.y[tr], data.n_outputs)
    y_va = encode_targets(config, data.y[va], data.n_outputs)
    hist = model.fit(x[tr], y_tr, validation_data=(x[va], y_va), epochs=epochs, batch_size=batch_size,
                     shuffle=False, verbose=0)
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def fit_two_phase(config: HeadConfig, data: TaskData, bb: LoadedBackbone, *, epochs: int, seed: int,
                  batch_size: int = 32, x: np.ndarray | None = None) -> dict[str, list[float]]:
    """The Keras transfer-learning guide's two phases with plain `model.fit` (no shuffling), on one model:
    `epochs` with the whole base frozen, then — top `config.unfrozen` layers unfrozen except their
    BatchNorm layers, recompiled with a new optimizer at `config.fine_tune_learning_rate` — its
    `config.fine_tune_epochs` more. Returns both fits' histories end to end, and "phase"."""
    import keras

    keras.utils.set_random_seed(seed)
    cut = find_cut(bb.model, config.unfrozen)
    bottom = keras.Model(bb.model.input, bb.model.layers[cut.index].output, name="frozen_bottom")
    flags = [layer.trainable for layer in bb.model.layers]  # shared with every other run: put back after
    try:
        bottom.trainable = False
        tr, va = ~data.is_val, data.is_val
        head, _, _ = build_head(config.phase2(), tuple(bottom.output.shape[1:]), data.n_outputs, data.y[tr], seed,
                                bb.model, cut.index)
        names = {layer.name for layer in bb.model.layers}
        top = [layer for layer in head.layers if layer.name in names]  # the head's copies of the layers above the cut
        inp = keras.Input(shape=(bb.size, bb.size, 3))
        model = keras.Model(inp, head(bottom(inp, training=False)))
        x = preprocessed_images(bb, data.images) if x is None else x
        y_tr = encode_targets(config, data.y[tr], data.n_outputs)
        y_va = encode_targets(config, data.y[va], data.n_outputs)
        history: dict[str, list[float]] = {"phase": []}
        for phase, (lr, first, last) in enumerate(((config.learning_rate, 0, epochs),
                                                   (config.fine_tune_learning_rate, epochs,
                                                    epochs + config.fine_tune_epochs)), 1):
            for layer in top:  # phase 1: all frozen; phase 2: all but BatchNorm (frozen = inference mode)
                layer.trainable = phase == 2 and not isinstance(layer, keras.layers.BatchNormalization)
            model.compile(optimizer=make_optimizer(config.with_(learning_rate=lr)), loss=make_loss(config))
            hist = model.fit(x[tr], y_tr, validation_data=(x[va], y_va), initial_epoch=first, epochs=last,
                             batch_size=batch_size, shuffle=False, verbose=0)
            for k, vals in hist.history.items():
                history.setdefault(k, []).extend(float(v) for v in vals)
            history["phase"] += [phase] * (last - first)
        return history
    finally:
        for layer, flag in zip(bb.model.layers, flags, strict=True):
            layer.trainable = flag
