"""Train many frozen-base heads of one structure as one graph: weights stacked on a leading head axis.

A small head's epoch costs far more in per-call and per-op overhead than in arithmetic, so heads that
share a structure (layers, activation, loss, optimizer, learning rate, data) are trained together:
kernels of shape [H, in, out], each head with its own batch order, and a chunk of epochs (batches
and the validation pass included) in one graph call. Everything numerical is Keras's own: the layer
activations (so outputs carry their pre-activation values as a Dense layer's do, and TensorFlow's
cross-entropy reads them), the head's loss object (rebuilt with reduction=None, then averaged per head
exactly as its "sum over batch size" reduction does), its optimizer object applied to the stacked
variables (Adam, SGD, RMSprop and AdamW update element by element with scalar hyper-parameters, so a
head's slice moves exactly as it would alone), and its Dropout masks (one seed generator per head).
Heads never mix: each head's loss, gradient and update touch its own slice only, and a head whose
weights or figures stop being finite is frozen from the next epoch on (`alive`), so a NaN in one
head cannot reach another.

Stacks are padded to a few capacities (STACK_SIZES) so a traced graph is reused whatever the number
of heads; padding heads are never alive.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

from lib.heads.build import DROPOUT_SEED_OFFSET, initial_weights
from lib.heads.config import HeadConfig
from lib.train.keras_objects import make_loss, make_optimizer

STACK_SIZES = (1, 2, 4, 8, 16, 32, 64)


def capacity(n_heads: int) -> int:
    """The padded stack size for n_heads (at most the largest STACK_SIZES; more heads need more stacks)."""
    return next((c for c in STACK_SIZES if c >= n_heads), STACK_SIZES[-1])


def stack_key(config: HeadConfig, x_tr, x_va, y_tr, batch_size: int) -> tuple:
    """What heads must share to be trained in one stack: everything but their initial values and seed
    (initializers, the head's name), plus the data's shapes and the batch size. The learning rate and
    optimizer stay in the key: Keras applies them as one scalar per optimizer object."""
    c = config.with_(kernel_initializer="zeros", bias_initializer="zeros", name="")
    return (c, tuple(x_tr.shape), tuple(x_va.shape), tuple(y_tr.shape), str(y_tr.dtype), int(batch_size))


@dataclass(frozen=True)
class Member:
    """One head in a stack: its configuration, seed and training targets (for the log-prior bias)."""

    config: HeadConfig
    seed: int
    y_train_raw: np.ndarray  # the task's raw training labels, as build_head receives them
    n_outputs: int


def _per_sample(loss_fn):
    """The same Keras loss with reduction=None: one value per sample, to be averaged per head."""
    return type(loss_fn).from_config({**loss_fn.get_config(), "reduction": None})


class Stack:
    """Stacked variables, optimizer and traced graphs for up to `cap` heads of one stack key."""

    def __init__(self, template: HeadConfig, in_dim: int, n_outputs: int, cap: int, n_train: int, batch_size: int):
        import keras
        import tensorflow as tf

        self.cap, self.template = cap, template
        dims = [in_dim] + [u for u, _ in template.hidden] + [template.resolved_units(n_outputs)]
        self.kernels = [keras.Variable(np.zeros((cap, a, b), np.float32), name=f"kernel_{i}")
                        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))]
        self.biases = [keras.Variable(np.zeros((cap, 1, b), np.float32), name=f"bias_{i}")
                       for i, b in enumerate(dims[1:])]
        tvars = [v for kb in zip(self.kernels, self.biases) for v in kb]
        self.variables = tvars
        opt = make_optimizer(template)
        opt.build(tvars)
        # As in trainer._Compiled: with one replica there is nothing to sum, and the identity keeps the
        # traced graph from being held forever by TensorFlow's custom-gradient table.
        opt._all_reduce_sum_gradients = lambda grads_and_vars: grads_and_vars
        self.opt = opt
        self._opt_start = [v.numpy() for v in opt.variables]  # a fresh optimizer's state, restored per use
        self.loss_fn = make_loss(template)
        per_sample = _per_sample(self.loss_fn)
        acts = [keras.activations.get(a) for _, a in template.hidden] + [keras.activations.get(template.activation)]
        rate = template.dropout
        self.gens = [keras.random.SeedGenerator(0) for _ in range(cap)] if rate > 0 else []
        self.nbytes = sum(int(np.prod(v.shape)) * 4 for v in [*tvars, *opt.variables])
        self.warnings: list[str] = []  # Keras's warnings when the graphs were traced, repeated for every use
        n_batches = -(-n_train // batch_size)
        last = len(self.kernels) - 1

        def forward(a, training: bool):
            # What each head's Dense layers (and Dropout) compute, on a leading head axis; also the output
            # layer's values before its activation.
            for i, (k, b) in enumerate(zip(self.kernels, self.biases)):
                if i == last and rate > 0 and training:
                    a = tf.stack([keras.random.dropout(a[h], rate, seed=self.gens[h]) for h in range(cap)])
                z = tf.matmul(a, k) + b
                a = acts[i](z)
            return a, z

        def per_head_loss(y, out):  # Keras's "sum over batch size", head by head
            values = per_sample(y, out)
            return tf.reduce_sum(values, axis=1) / tf.cast(tf.shape(values)[1], values.dtype)

        def step(x, y, idx, alive):
            xb, yb = tf.gather(x, idx), tf.gather(y, idx)
            with tf.GradientTape() as tape:
                losses = per_head_loss(yb, forward(xb, True)[0])
                total = tf.reduce_sum(tf.where(alive, losses, tf.zeros_like(losses)))
            grads = tape.gradient(total, tvars)
            grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, tvars)]
            before = [tf.identity(v) for v in tvars]
            opt.apply(grads, tvars)
            for v, old in zip(tvars, before):  # a head that is not alive is not updated
                v.assign(tf.where(tf.reshape(alive, (cap, 1, 1)), v, old))
            g_out = grads[-2:]  # the output layer's, as the per-head trainer reports
            gnorm = tf.sqrt(sum(tf.reduce_sum(tf.square(g), axis=[1, 2]) for g in g_out))
            return losses, gnorm

        def evaluate(x_va, y_va):
            out, z = forward(x_va[None], False)
            y = tf.broadcast_to(y_va[None], tf.concat([[cap], tf.shape(y_va)], 0))
            return out, z, per_head_loss(y, out)

        def run(x, y, x_va, y_va, orders, alive):
            # orders [C, cap, n]: C epochs, each head's own batch order. Returns per epoch and head: training
            # loss, mean gradient norm, validation outputs (and their pre-activation values) and loss, whether
            # all were finite; and `alive`.
            epochs = tf.shape(orders)[0]
            ta = {k: tf.TensorArray(tf.float32, size=epochs) for k in ("loss", "gnorm", "val_loss", "out", "z")}
            ta_finite = tf.TensorArray(tf.bool, size=epochs)
            for e in tf.range(epochs):
                loss_sum, gnorm_sum = tf.zeros((cap,)), tf.zeros((cap,))
                # One step of dynamic batch size for every batch, the smaller last one too: a second step for
                # it was traced too (measured 0.49 → 0.43 s per new 32-head stack, same speed after), and a
                # class's first batch waits for every trace.
                for b in tf.range(n_batches):
                    size = tf.minimum(batch_size, n_train - b * batch_size)
                    losses, gnorm = step(x, y, orders[e, :, b * batch_size:b * batch_size + size], alive)
                    loss_sum += losses * tf.cast(size, tf.float32)  # Keras's epoch loss: weighted by batch size
                    gnorm_sum += gnorm
                loss, gnorm = loss_sum / n_train, gnorm_sum / n_batches
                out, z, val_loss = evaluate(x_va, y_va)
                finite = tf.math.is_finite(loss) & tf.math.is_finite(val_loss)
                finite &= tf.reduce_all(tf.math.is_finite(tf.reshape(out, (cap, -1))), axis=1)
                for v in tvars:
                    finite &= tf.reduce_all(tf.math.is_finite(tf.reshape(v, (cap, -1))), axis=1)
                alive &= finite  # recorded this epoch, frozen from the next
                ta["loss"] = ta["loss"].write(e, loss)
                ta["gnorm"] = ta["gnorm"].write(e, gnorm)
                ta["val_loss"] = ta["val_loss"].write(e, val_loss)
                ta["out"] = ta["out"].write(e, tf.cast(out, tf.float32))
                ta["z"] = ta["z"].write(e, tf.cast(z, tf.float32))
                ta_finite = ta_finite.write(e, finite)
            return {**{k: v.stack() for k, v in ta.items()}, "finite": ta_finite.stack(), "alive": alive}

        self._run_py, self._run, self._evaluate = run, None, tf.function(evaluate)
        self._members: list[Member] = []
        self._seen: set[str] = set()

    def load(self, members: list[Member]) -> None:
        """Start every head as build_head would (initial weights, fresh optimizer, its Dropout seed)."""
        assert 0 < len(members) <= self.cap
        self._members = list(members)
        in_dim = int(self.kernels[0].shape[1])
        stacked = [np.zeros(v.shape, np.float32) for v in self.variables]  # padding heads: zeros
        for h, m in enumerate(members):
            weights = initial_weights(m.config, in_dim, m.n_outputs, m.y_train_raw, m.seed)
            for i, array in enumerate(a for kernel_bias in weights for a in kernel_bias):
                stacked[i][h] = array.reshape(stacked[i].shape[1:])
        for v, array in zip(self.variables, stacked):
            v.assign(array)
        for v, start in zip(self.opt.variables, self._opt_start):
            v.assign(start)
        for h, gen in enumerate(self.gens):
            seed = members[h].seed + DROPOUT_SEED_OFFSET if h < len(members) else 0
            gen.state.assign(np.array([seed, 0], dtype=gen.state.dtype))

    def _traced(self, name: str, *args):
        """Call a graph; its first call traces it, and Keras's warnings then are kept for every later use."""
        if name == "run" and self._run is None:
            import tensorflow as tf

            # One trace for every chunk length: the epoch axis of `orders` is left unknown (a new length
            # would otherwise retrace the whole graph: 4 traces for a 20-epoch run's chunks 1, 1, 2, 4, 8, 4).
            spec = [tf.TensorSpec.from_tensor(tf.convert_to_tensor(a)) for a in args]
            spec[4] = tf.TensorSpec([None, *spec[4].shape[1:]], spec[4].dtype)
            self._run = tf.function(self._run_py, input_signature=spec)
        fn = {"run": self._run, "evaluate": self._evaluate}[name]
        if name in self._seen:
            return fn(*args)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn(*args)
        self._seen.add(name)
        for w in caught:
            text = str(w.message).strip()
            # Keras describes the stacked tensor; a head alone has no leading head axis in its shapes
            text = re.sub(r"shape \(\d+, ", "shape (", text)
            if text and text not in self.warnings and "is deprecated" not in text:
                self.warnings.append(text[:400])
        return result

    def evaluate(self, x_va, y_va) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validation outputs [H, m, u], their pre-activation values [H, m, u] and losses [H] of the loaded
        heads, before training."""
        out, z, loss = self._traced("evaluate", x_va, y_va)
        n = len(self._members)
        return out.numpy()[:n], z.numpy()[:n], loss.numpy()[:n]

    def train(self, x, y, x_va, y_va, orders: np.ndarray, alive: np.ndarray) -> dict[str, np.ndarray]:
        """Train the loaded heads for orders.shape[0] epochs; orders [C, H, n] (H = loaded heads), alive [H].

        Returns arrays with a leading epoch axis (loss, gnorm, val_loss [C, H]; out, z [C, H, m, u]; finite)
        and the heads still alive after the chunk."""
        import tensorflow as tf

        n = len(self._members)
        c, _, n_train = orders.shape
        padded = np.zeros((c, self.cap, n_train), np.int32)
        padded[:, :n] = orders
        live = np.zeros(self.cap, bool)
        live[:n] = alive
        result = self._traced("run", x, y, x_va, y_va, tf.constant(padded), tf.constant(live))
        return {k: v.numpy()[:, :n] if k != "alive" else v.numpy()[:n] for k, v in result.items()}
