"""Prototype benchmark: would training many sessions' heads as one stacked graph pay off?

Not used by the app. Under load, 30 sessions training 30 different sweeps queue for the training
slot one sweep after another; the only way to beat that on 2 cores is to share work between
sessions. This measures the idea on the `fashion` sample (GAP features of the bundled MobileNetV2
at 96 px, cached): K sigmoid heads, each with its own weights and batch order, trained 20 epochs as
one graph (batched einsum, Keras's own loss and Adam on the stacked variables), against the app's
engine (`lib.train.trainer.train`) training the same K heads one graph per head, in the same run. The
engine's time includes its per-epoch metrics and bookkeeping for every head, which a stacked version
in the app would still pay and this prototype leaves out: read the ratio as an upper bound.

    python bench/bench_stacked_heads.py [--heads 30] [--epochs 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def stacked_epoch_fn(x_tr, y_tr, x_va, k: int, batch_size: int):
    """A tf.function training k stacked Dense(1, sigmoid) + BCE heads for one epoch each."""
    import keras
    import tensorflow as tf

    n, f = x_tr.shape
    w = tf.Variable(tf.random.normal((k, f, 1), stddev=0.05, seed=1))
    b = tf.Variable(tf.zeros((k, 1)))
    opt = keras.optimizers.Adam(1e-3)
    opt.build([w, b])
    loss_fn = keras.losses.BinaryCrossentropy(reduction=None)
    n_full, rem = divmod(n, batch_size)

    def outputs(xb):  # xb [k, m, f] -> sigmoid outputs [k*m, 1] that carry their logits, as Dense's do
        return keras.activations.sigmoid(tf.reshape(tf.einsum("kbf,kfu->kbu", xb, w) + b[:, None, :], (-1, 1)))

    def step(idx):  # idx [k, m]: each head's own batch
        m = tf.cast(tf.shape(idx)[1], tf.float32)
        with tf.GradientTape() as tape:
            per_sample = tf.reshape(loss_fn(tf.reshape(tf.gather(y_tr, idx), (-1, 1)), outputs(tf.gather(x_tr, idx))),
                                    (k, -1))
            losses = tf.reduce_sum(per_sample, axis=1) / m
            total = tf.reduce_sum(losses)  # each head's gradient is its own loss's
        opt.apply(tape.gradient(total, [w, b]), [w, b])
        return losses

    @tf.function
    def epoch(orders):  # [k, n]
        losses = tf.zeros((k,))
        for i in tf.range(n_full):
            losses += step(orders[:, i * batch_size:(i + 1) * batch_size]) * batch_size
        if rem:
            losses += step(orders[:, n_full * batch_size:]) * rem
        val = keras.activations.sigmoid(tf.einsum("vf,kfu->kvu", x_va, w) + b[:, None, :])
        return losses / n, val

    return epoch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--heads", type=int, default=30)
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args()

    import numpy as np
    import tensorflow as tf

    from lib.backbones.registry import load_backbone
    from lib.data.samples import load_sample
    from lib.heads.config import parse_head_string
    from lib.train.trainer import MAX_HEADS, train

    data = load_sample("fashion", "binary")
    bb = load_backbone("mobilenet_v2", 96, "auto")
    heads = [parse_head_string("binary", f"activation=sigmoid,name=h{i}") for i in range(args.heads)]
    for i in range(0, len(heads), MAX_HEADS):  # features cached, one traced graph per head in the pool
        train(heads[i:i + MAX_HEADS], data, epochs=1, loaded=bb)
    engine = sum(train(heads[i:i + MAX_HEADS], data, epochs=args.epochs, seed=1, loaded=bb).timing["training_seconds"]
                 for i in range(0, len(heads), MAX_HEADS))  # a sweep holds at most MAX_HEADS

    from lib.backbones.features import find_cut, get_features

    feats = get_features(bb, find_cut(bb.model, 0), data).features.mean(axis=(1, 2))
    x_tr, x_va = tf.constant(feats[~data.is_val]), tf.constant(feats[data.is_val])
    y_tr = tf.constant(data.y[~data.is_val].astype(np.float32).reshape(-1, 1))
    epoch = stacked_epoch_fn(x_tr, y_tr, x_va, args.heads, 32)
    rng = np.random.default_rng(0)
    orders = tf.constant(np.stack([rng.permutation(x_tr.shape[0]) for _ in range(args.heads)]).astype(np.int32))
    epoch(orders)  # trace
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        losses, _ = epoch(orders)
        losses.numpy()
    stacked = time.perf_counter() - t0

    print(f"{args.heads} sigmoid heads × {args.epochs} epochs on {x_tr.shape[0]} training images "
          f"({x_tr.shape[1]} features)")
    print(f"engine, one graph per head (baseline): {engine:.3f} s ({engine / args.heads * 1000:.1f} ms per head)")
    print(f"stacked, one graph for all heads:      {stacked:.3f} s ({stacked / args.heads * 1000:.1f} ms per head)")
    print(f"ratio: {engine / stacked:.2f}× less time per head stacked (an upper bound: no per-head bookkeeping)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
