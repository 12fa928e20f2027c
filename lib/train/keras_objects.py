"""The Keras loss and optimizer objects a head configuration names (the only place they are made)."""

from __future__ import annotations

from lib.heads.config import HeadConfig


def make_loss(config: HeadConfig):
    import keras

    if config.loss == "binary_crossentropy":
        return keras.losses.BinaryCrossentropy(from_logits=config.from_logits)
    if config.loss == "categorical_crossentropy":
        return keras.losses.CategoricalCrossentropy(from_logits=config.from_logits)
    if config.loss == "sparse_categorical_crossentropy":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=config.from_logits)
    return {"mse": keras.losses.MeanSquaredError, "mae": keras.losses.MeanAbsoluteError,
            "huber": keras.losses.Huber}[config.loss]()


def make_optimizer(config: HeadConfig):
    import keras

    cls = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop,
           "adamw": keras.optimizers.AdamW}[config.optimizer]
    return cls(learning_rate=config.learning_rate)
