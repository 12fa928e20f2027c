"""Train several head configurations on cached backbone features, side by side.

Each head trains in its own tf.function that runs a whole epoch (no per-step Python, no fit()
callbacks), so a sweep costs a few graph traces plus tiny matmuls. Losses are Keras's own loss
objects applied inside the graph, so every quirk of Keras on this backend (e.g. cross-entropy
reading the pre-activation logits) is reproduced exactly as model.fit would show it.
"""

from __future__ import annotations

import gc
import math
import re
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from lib.backbones.features import Cut, cache_path, find_cut, get_features
from lib.backbones.registry import DEFAULT_BACKBONE, LoadedBackbone, load_backbone
from lib.common.budget import ENV, Budget
from lib.common.errors import ConfigError
from lib.data.taskdata import TaskData
from lib.heads.build import build_head, pooling_layer
from lib.heads.config import HeadConfig
from lib.heads.naming import distinct_labels
from lib.heads.pairings import Verdict, encode_targets, verdict_for
from lib.train import metrics as M
from lib.train.cost import check, estimate, parallel_heads
from lib.train.keras_objects import make_loss, make_optimizer
from lib.train.loss_seen import (
    LossUsed,
    confidently_wrong,
    measure_loss_used,
    sample_losses,
    top_losses,
)
from lib.train.stacked import STACK_SIZES, Member, Stack, capacity, stack_key

MAX_EPOCHS = 500
MAX_HEADS = 12

ProgressFn = Callable[[dict], None]
_clock = time.monotonic  # the time budget's clock (tests replace it with a fake one)


@dataclass
class RunResult:
    """One configuration's run: what was asked, what happened, and what predict() returned."""

    config: HeadConfig
    verdict: Verdict
    status: str = "ok"  # ok | diverged | error
    history: dict[str, list] = field(default_factory=dict)
    final: dict[str, float | None] = field(default_factory=dict)
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)  # epoch -> raw val outputs
    # epoch -> the output layer's values before its activation (what TF's cross-entropy may read instead)
    pre_activations: dict[int, np.ndarray] = field(default_factory=dict)
    diverged_epoch: int | None = None
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cut: str = "frozen backbone"
    seconds: float = 0.0
    diagnostics: list[dict] = field(default_factory=list)
    name: str = ""  # what tells it apart from the sweep's other heads (`name_runs`)
    # Wall-clock seconds of each epoch in history["epoch"] (training pass + validation predict()). Kept out
    # of `history`, whose numbers are the same for the same config and seed; these are not.
    epoch_seconds: list[float] = field(default_factory=list)
    # Measured after training (lib.train.loss_seen): which tensor the loss consumed, each validation image's
    # loss on what predict() returned last (regression: absolute error), and how many predictions are wrong
    # with a probability >= 0.9 (None for regression; both None for errors and diverged heads).
    loss_used: LossUsed | None = None
    sample_losses: np.ndarray | None = None
    confidently_wrong: int | None = None

    @property
    def label(self) -> str:
        return self.name or self.config.label()

    @property
    def top_losses(self) -> list[tuple[int, float]]:
        """The validation images with the highest loss on predict()'s outputs: (index, loss), worst first."""
        return top_losses(self.sample_losses)

    @property
    def phase_boundary(self) -> int | None:
        """The last epoch of phase 1 when phase 2 (fine-tuning) ran after it (history["phase"]), else None."""
        phases = self.history.get("phase", [])
        if 2 not in phases:
            return None
        return self.history["epoch"][phases.index(2) - 1] if phases.index(2) else 0

    def seconds_per_epoch(self, phase: int | None = None) -> float | None:
        """Typical wall-clock seconds of one epoch (of one phase, or of all): the median, leaving out the
        first epoch of each phase when that phase has others, since the first one also traces its graph."""
        phases = self.history.get("phase", [1] * len(self.epoch_seconds))
        mine = [(k, t) for k, (t, p) in enumerate(zip(self.epoch_seconds, phases)) if phase in (None, p)]
        later = [t for k, t in mine if k > 0 and phases[k - 1] == phases[k]]
        chosen = later or [t for _, t in mine]
        return float(np.median(chosen)) if chosen else None


def name_runs(runs: list[RunResult]) -> list[RunResult]:
    """Name every run of one comparison by what differs between their heads (in place; returned)."""
    for run, label in zip(runs, distinct_labels([r.config for r in runs]), strict=True):
        run.name = label
    return runs


@dataclass
class SweepResult:
    """Every run of one Train click, plus what they shared (data, backbone, timing)."""

    runs: list[RunResult]
    task: str
    dataset: str
    label_names: tuple[str, ...]
    unit: str
    y_val: np.ndarray
    y_train: np.ndarray
    backbone: str
    input_size: int
    weights: str
    epochs: int
    seed: int
    batch_size: int
    timing: dict[str, float]
    backend: str
    keras_version: str
    notes: list[str] = field(default_factory=list)
    stopped: str = ""  # why training ended before `epochs` (time budget, cancelled); "" when it did not

    @property
    def n_outputs(self) -> int:
        return 1 if self.task in ("binary", "regression") else len(self.label_names)


# The memory bound of a run's snapshots: before training plus at most this many epochs (every epoch of a
# run this long or shorter; longer runs evenly thinned, the last epoch always kept). Each snapshot holds
# the validation outputs and their pre-activation values: 2 x n_val x units float32 (a 200-image,
# 10-class sample: 16 kB), so a 12-head sweep's snapshots stay under 12 x 51 x 16 kB = 10 MB.
MAX_SNAPSHOT_EPOCHS = 50


def snapshot_epochs(epochs: int) -> list[int]:
    """Epochs whose validation outputs are kept: 0 and every epoch up to MAX_SNAPSHOT_EPOCHS, evenly
    thinned beyond (always ending with the last)."""
    if epochs <= MAX_SNAPSHOT_EPOCHS:
        return list(range(epochs + 1))
    picks = np.round(np.linspace(epochs / MAX_SNAPSHOT_EPOCHS, epochs, MAX_SNAPSHOT_EPOCHS)).astype(int)
    return [0, *sorted(set(picks.tolist()))]


def _structure_key(config: HeadConfig, *shapes) -> tuple:
    """What decides a head's graph: everything but the values (initializers, learning rate, name),
    which enter the graph as state, so heads that differ only in those share one traced graph."""
    c = config.with_(kernel_initializer="zeros", bias_initializer="zeros", learning_rate=1.0, name="")
    return (c, *shapes)


class _Compiled:
    """A head model, its optimizer and their traced epoch/evaluation graphs, for one head structure.

    Tracing costs more than training a small head, so compiled heads are pooled and reused: a new
    head of the same structure copies its starting weights and optimizer state into a free one.
    """

    def __init__(self, model, out_layer, loss_fn, opt, n: int, batch_size: int, one_trace: bool = False):
        import tensorflow as tf

        if getattr(opt, "_distribution_strategy", None) is not None and opt._distribution_strategy.num_replicas_in_sync == 1:
            # Keras's TF optimizer sums gradients over replicas (here one: the identity) through a
            # tf.custom_gradient, which TensorFlow registers in a process-wide table that is never
            # emptied; traced in a tf.function, that entry keeps the graph — and every weight and
            # optimizer slot it captured — alive for good (measured: +240 MB per Train of a 20 M-weight
            # head, garbage collection or not). With one replica there is nothing to sum.
            opt._all_reduce_sum_gradients = lambda grads_and_vars: grads_and_vars
        self.model, self.loss_fn, self.opt = model, loss_fn, opt
        # What keeping it in the pool costs: its weights and optimizer slots (the traced graphs are small).
        self.nbytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in [*model.variables, *opt.variables])
        tvars = model.trainable_variables
        head_ids = {id(v) for v in out_layer.trainable_variables}
        head_idx = [i for i, v in enumerate(tvars) if id(v) in head_ids]
        n_full, rem = divmod(n, batch_size)

        def step(xb, yb):
            with tf.GradientTape() as tape:
                out = model(xb, training=True)
                loss = loss_fn(yb, out)
            grads = tape.gradient(loss, tvars)
            grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, tvars)]
            opt.apply(grads, tvars)
            return tf.cast(loss, tf.float32), tf.linalg.global_norm([grads[i] for i in head_idx])

        n_batches = n_full + (1 if rem else 0)

        @tf.function
        def train_epoch_one_trace(x, y, order):
            # Every batch, the smaller last one too, through one traced step of dynamic batch size: for a
            # head that trains backbone layers, tracing its step costs seconds (MobileNetV2's whole base:
            # ~6 s each on 2 cores), far more than the static-size loop saves.
            loss_sum, gnorm_sum = tf.constant(0.0), tf.constant(0.0)
            for b in tf.range(n_batches):
                size = tf.minimum(batch_size, n - b * batch_size)
                idx = tf.slice(order, [b * batch_size], [size])
                loss, gnorm = step(tf.gather(x, idx), tf.gather(y, idx))
                loss_sum += loss * tf.cast(size, tf.float32)
                gnorm_sum += gnorm
            return loss_sum / n, gnorm_sum / n_batches

        @tf.function
        def train_epoch(x, y, order):
            if one_trace:
                return train_epoch_one_trace(x, y, order)
            loss_sum, gnorm_sum = tf.constant(0.0), tf.constant(0.0)
            # Full batches have a static size (a cheaper loop); the smaller last batch runs once after.
            for b in tf.range(n_full):
                idx = tf.slice(order, [b * batch_size], [batch_size])
                loss, gnorm = step(tf.gather(x, idx), tf.gather(y, idx))
                loss_sum += loss * batch_size  # Keras's epoch loss: batch losses weighted by batch size
                gnorm_sum += gnorm
            if rem:
                idx = order[n_full * batch_size:]
                loss, gnorm = step(tf.gather(x, idx), tf.gather(y, idx))
                loss_sum += loss * rem
                gnorm_sum += gnorm
            return loss_sum / n, gnorm_sum / (n_full + (1 if rem else 0))

        import keras

        # The same forward pass, also returning the output layer's input, so the values before its
        # activation (z = input @ kernel + bias, as Dense computes them) come with every predict().
        both = keras.Model(model.inputs, [model.outputs[0], out_layer.input])

        def evaluate(x, y):
            out, before = both(x, training=False)
            z = keras.ops.add(keras.ops.matmul(before, out_layer.kernel), out_layer.bias)
            return out, z, loss_fn(y, out)

        @tf.function
        def epoch_and_evaluate(x, y, order, x_va, y_va):
            # One graph call per head and epoch: training, the validation pass and the check that every
            # weight is still finite (three calls and a copy of every weight to NumPy, before).
            loss, gnorm = train_epoch(x, y, order)
            out, z, val_loss = evaluate(x_va, y_va)
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in tvars])
            return loss, gnorm, out, z, val_loss, finite

        self.epoch_and_evaluate, self.evaluate = epoch_and_evaluate, tf.function(evaluate)

    def load_state(self, model, opt) -> None:
        """Start from another (freshly built) head's weights, RNG state and optimizer state."""
        for mine, theirs in zip(self.model.variables, model.variables, strict=True):
            mine.assign(theirs.value)
        for mine, theirs in zip(self.opt.variables, opt.variables, strict=True):
            mine.assign(theirs.value)


_POOL: OrderedDict[tuple, list[_Compiled]] = OrderedDict()  # structure -> idle compiled heads
_POOL_MAX = 64  # heads, whatever their size (each traced graph costs some memory of its own)
_POOL_BYTES = Budget.from_env().pool_bytes  # and their weights and optimizer slots, in bytes
_POOL_LOCK = threading.Lock()
# Keras models hold reference cycles, so a compiled head let go of is freed only by Python's cyclic
# collector, whose full passes are rare: three dropped 20 M-weight heads held 1.1 GB more for minutes.
# Once this much has been let go, collect at once; a full collection costs a few hundred ms on a busy
# server, so small heads (a few kB each) are left to Python's own schedule.
_COLLECT_AFTER_BYTES = 64 * 2**20
_DROPPED = [0]  # bytes let go since the last collection (under _POOL_LOCK)


def _collect_if_due() -> None:
    """A full garbage collection once enough compiled heads have been let go (see _COLLECT_AFTER_BYTES)."""
    with _POOL_LOCK:
        due = _DROPPED[0] >= _COLLECT_AFTER_BYTES
        if due:
            _DROPPED[0] = 0
    if due:
        gc.collect()


def pool_bytes() -> int:
    """Bytes of weights and optimizer slots held by the idle compiled heads."""
    with _POOL_LOCK:
        return sum(c.nbytes for idle in _POOL.values() for c in idle)


class _HeadRunner:
    """One head during a sweep: a compiled head checked out of the pool, started from this config's
    own initial weights, learning rate and seeds."""

    def __init__(self, config, x_tr, x_va, y_tr_raw, y_va_raw, n_outputs, seed, batch_size,
                 backbone, cut: Cut, backbone_id: tuple, pooled: bool, freeze_batchnorm: bool = False):
        import tensorflow as tf

        self.config = config
        model, out_layer, self.notes = build_head(
            config, x_tr.shape[1:], n_outputs, y_tr_raw, seed, backbone, cut.index, pooled=pooled,
            freeze_batchnorm=freeze_batchnorm)
        opt = make_optimizer(config)
        opt.build(model.trainable_variables)
        self.x_tr, self.x_va = x_tr, x_va  # tensors shared by every head on the same cut
        self.y_tr = tf.constant(encode_targets(config, y_tr_raw, n_outputs))
        self.y_va = tf.constant(encode_targets(config, y_va_raw, n_outputs))
        self.key = _structure_key(config, x_tr.shape, x_va.shape, self.y_tr.shape, self.y_tr.dtype.name,
                                  batch_size, cut.index, backbone_id, pooled, freeze_batchnorm)
        compiled = _pool_take(self.key)
        if compiled is None:
            compiled = _Compiled(model, out_layer, make_loss(config), opt, int(x_tr.shape[0]), batch_size,
                                 one_trace=cut.index < len(backbone.layers) - 1)
        else:
            compiled.load_state(model, opt)
        self.compiled = compiled
        self.loss_fn = compiled.loss_fn

    def start_from(self, other: _HeadRunner) -> None:
        """Phase 2 of a two-phase head: take over phase 1's head weights (its Dense layers, by name), so
        fine-tuning continues from the trained head rather than from a random one."""
        mine = {layer.name: layer for layer in self.compiled.model.layers if layer.weights}
        for layer in other.compiled.model.layers:
            if layer.weights:
                for v, w in zip(mine[layer.name].weights, layer.weights, strict=True):
                    v.assign(w.value)

    def release(self) -> None:
        """Return the compiled head to the pool for the next head of this structure, least recently
        used out first (see _pool_put)."""
        _pool_put(self.key, self.compiled)
        self.compiled = None  # this runner is done with it: a dropped head is now garbage

    def epoch(self, order: np.ndarray) -> dict:
        """Train one epoch, then predict() on the validation images: the figures of that epoch."""
        loss, gnorm, out, z, val_loss, finite = self.compiled.epoch_and_evaluate(
            self.x_tr, self.y_tr, order, self.x_va, self.y_va)
        return {"loss": float(loss), "gnorm": float(gnorm), "out": out.numpy(), "z": z.numpy(),
                "val_loss": float(val_loss), "finite": bool(finite)}

    def evaluate(self):
        return self.compiled.evaluate(self.x_va, self.y_va)


def _pool_take(key: tuple):
    """An idle compiled head (or stack) of this key from the pool, or None."""
    with _POOL_LOCK:
        idle = _POOL.get(key)
        if not idle:
            return None
        compiled = idle.pop()
        if not idle:  # no empty lists: eviction takes the oldest key's first head
            del _POOL[key]
        return compiled


def _pool_put(key: tuple, compiled) -> None:
    """Return a compiled head (or stack) to the pool, least recently used out first, within the pool's
    count and byte budget; one bigger than the whole budget is let go (and its memory with it)."""
    with _POOL_LOCK:
        if compiled.nbytes > _POOL_BYTES:
            _DROPPED[0] += compiled.nbytes
        else:
            _POOL.setdefault(key, []).append(compiled)
            _POOL.move_to_end(key)
        count = sum(len(v) for v in _POOL.values())
        total = sum(c.nbytes for v in _POOL.values() for c in v)
        while count > _POOL_MAX or total > _POOL_BYTES:
            oldest = next(iter(_POOL))
            dropped = _POOL[oldest].pop(0).nbytes
            total -= dropped
            _DROPPED[0] += dropped
            count -= 1
            if not _POOL[oldest]:
                del _POOL[oldest]


def chunk_length(epoch: int) -> int:
    """How many epochs a stack trains in the call that starts at `epoch`: 1, 1, 2, 4, … up to 32, so the
    first results come at once and the time budget and a cancel are checked at least every 32 epochs."""
    return min(32, 1 << max(0, (epoch - 1).bit_length() - 1)) if epoch > 1 else 1


class _StackGroup:
    """Runs of one sweep trained together in one Stack: chunks of epochs, and each epoch's figures per run."""

    def __init__(self, stack: Stack, key: tuple, indices: list[int], tensors, y_tr, y_va,
                 orders: list[list[np.ndarray]], end: int):
        self.stack, self.key, self.indices = stack, key, indices
        self.x_tr, self.x_va = tensors
        self.y_tr, self.y_va = y_tr, y_va
        self.loss_fn = stack.loss_fn
        self.orders, self.end = orders, end
        self.alive = np.ones(len(indices), bool)
        self.next, self.start_epoch, self.result, self.seconds, self.error = 1, 1, None, 0.0, ""

    @classmethod
    def start(cls, runs: list[RunResult], indices: list[int], tensors, y_tr_raw, y_va_raw, n_out: int,
              seeds: list[int], batch_size: int, orders: list[list[np.ndarray]], end: int) -> _StackGroup | None:
        """Load the runs into a stack (pooled, or built) and measure their epoch 0; None when Keras refuses.

        seeds and orders are per run (runs of several sessions' sweeps share a stack): its seed, and its
        batch order of every epoch."""
        import tensorflow as tf

        config = runs[0].config
        x_tr, x_va = tensors
        y_tr = tf.constant(encode_targets(config, y_tr_raw, n_out))
        y_va = tf.constant(encode_targets(config, y_va_raw, n_out))
        cap = capacity(len(runs))
        key = ("stack", stack_key(config, x_tr, x_va, y_tr, batch_size), cap)
        t0 = time.perf_counter()
        stack = _pool_take(key)
        try:
            if stack is None:
                stack = Stack(config, int(x_tr.shape[1]), n_out, cap, int(x_tr.shape[0]), batch_size)
            stack.load([Member(r.config, s, y_tr_raw, n_out) for r, s in zip(runs, seeds, strict=True)])
            outs, zs, losses = stack.evaluate(x_va, y_va)
        except Exception:
            return None
        share = (time.perf_counter() - t0) / len(runs)
        for h, run in enumerate(runs):
            run.snapshots[0], run.pre_activations[0] = outs[h], zs[h]
            run.final["initial_val_loss"] = float(losses[h])
            run.warnings += [w for w in stack.warnings if w not in run.warnings]
            run.seconds += share
        return cls(stack, key, indices, tensors, y_tr, y_va, orders, end)

    def due(self, epoch: int) -> bool:
        return epoch == self.next and epoch <= self.end and not self.error and self.alive.any()

    def advance(self, epoch: int) -> None:
        """Train the chunk of epochs that starts at `epoch` (exceptions kept as `error`, not raised)."""
        length = min(chunk_length(epoch), self.end - epoch + 1)
        orders = np.array([[mine[e - 1] for mine in self.orders] for e in range(epoch, epoch + length)], np.int32)
        t0 = time.perf_counter()
        try:
            self.result = self.stack.train(self.x_tr, self.y_tr, self.x_va, self.y_va, orders, self.alive)
            self.alive = self.result["alive"]
        except Exception as e:
            self.error = _first_line(e)
        self.seconds = (time.perf_counter() - t0) / length
        self.start_epoch, self.next = epoch, epoch + length

    def has(self, epoch: int) -> bool:
        return self.start_epoch <= epoch < self.next

    def step(self, i: int, epoch: int) -> dict:
        """Run i's figures of `epoch`, in the form trainer._step returns them."""
        if self.error:
            return {"error": self.error, "warnings": [], "seconds": self.seconds}
        h, k, r = self.indices.index(i), epoch - self.start_epoch, self.result
        return {"loss": float(r["loss"][k, h]), "gnorm": float(r["gnorm"][k, h]), "out": r["out"][k, h],
                "z": r["z"][k, h], "val_loss": float(r["val_loss"][k, h]), "finite": bool(r["finite"][k, h]),
                "warnings": list(self.stack.warnings), "seconds": self.seconds}

    def release(self) -> None:
        if self.stack is not None:
            _pool_put(self.key, self.stack)
            self.stack = None


def _first_line(e: BaseException) -> str:
    """The sentence that says what went wrong, without the graph-tracing preamble TF wraps it in."""
    text = str(e).strip()
    found = re.findall(r"^\s*(?:\w+\.)*(\w*(?:Error|Exception)): (.+)$", text, flags=re.M)
    if found:
        return f"{found[-1][0]}: {found[-1][1]}"[:300]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("Graph execution error"):
        # TensorFlow's op errors: a traceback of the graph's construction, then the op's own sentence
        # ("Received a label value of 9 which is outside the valid range of [0, 9)."), then the node.
        said = [line for line in lines if not line.startswith(("File ", "[[", "Detected at node"))
                and not line.endswith(":")]
        if said:
            return f"{type(e).__name__}: {said[-1]}"[:300]
    msg = lines[0] if lines else type(e).__name__
    return f"{type(e).__name__}: {msg}"[:300]


@dataclass(frozen=True)
class SweepPart:
    """One session's sweep in a batch trained together (`train_together`): its heads, seed and progress."""

    configs: tuple[HeadConfig, ...]
    seed: int = 0
    progress: ProgressFn | None = None


def train(configs: Sequence[HeadConfig], data: TaskData, *, epochs: int = 20, seed: int = 0,
          backbone: str = DEFAULT_BACKBONE, input_size: int | None = None, weights: str = "auto",
          batch_size: int = 32, shuffle: bool = True, use_cache: bool = True,
          progress: ProgressFn | None = None, loaded: LoadedBackbone | None = None,
          budget: Budget | None = None, max_seconds: float | None = None,
          cancelled: Callable[[], bool] | None = None, stacked: bool = True) -> SweepResult:
    """Train every configuration on `data` with the same seed, batches and validation split.

    progress (optional) receives dicts: {"stage": "features", "fraction": f} while features are
    computed, then {"stage": "epoch", "epoch": k, "epochs": E, "run": i, "history": {...}} per run and epoch.

    budget (default: Budget.from_env()) is checked before anything is extracted: a sweep over the
    server's parameter, memory or compute limits raises ConfigError saying what to change. Training
    stops between epochs once it has taken max_seconds (default: the budget's) or `cancelled()` says
    so; the runs then keep what they trained and `stopped` (and a note) says why. Epochs that ran are
    the same numbers a full run would show.

    stacked (default): frozen-base heads that share a structure train together in one graph per chunk of
    epochs (lib.train.stacked); False trains every head on its own graph, one call per epoch (the
    reference the stacked path is tested against).
    """
    return train_together([SweepPart(tuple(configs), seed, progress)], data, epochs=epochs, backbone=backbone,
                          input_size=input_size, weights=weights, batch_size=batch_size, shuffle=shuffle,
                          use_cache=use_cache, loaded=loaded, budget=budget, max_seconds=max_seconds,
                          cancelled=cancelled, stacked=stacked)[0]


def check_part(configs: Sequence[HeadConfig], data: TaskData, seed: int) -> None:
    """Raise ConfigError when one sweep's heads or seed cannot be trained on `data` (before any work)."""
    if not configs:
        raise ConfigError("add at least one head configuration")
    if len(configs) > MAX_HEADS:
        raise ConfigError(f"at most {MAX_HEADS} head configurations per run; got {len(configs)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= 2**31 - 1:
        raise ConfigError(f"seed must be a whole number from 0 to {2**31 - 1}; got {str(seed)[:40]}")
    for c in configs:
        if c.task != data.task:
            raise ConfigError(f"head '{c.label()}' is for {c.task} but the data is for {data.task}")


def train_together(parts: Sequence[SweepPart], data: TaskData, *, epochs: int = 20,
                   backbone: str = DEFAULT_BACKBONE, input_size: int | None = None, weights: str = "auto",
                   batch_size: int = 32, shuffle: bool = True, use_cache: bool = True,
                   loaded: LoadedBackbone | None = None, budget: Budget | None = None,
                   max_seconds: float | None = None, cancelled: Callable[[], bool] | None = None,
                   stacked: bool = True) -> list[SweepResult]:
    """Several sessions' sweeps on the same data, backbone and epochs, trained as one: one SweepResult per
    part, each what `train` gives that part alone (its seed's initial weights, batch orders and Dropout
    masks), while heads of one structure share stacks across parts. Each part's progress gets only its
    own runs' events (numbered within the part). Arguments as for `train`; each part is checked against
    the budget as if alone (the caller decides how many parts one batch may hold).
    """
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # per-head graphs are traced on purpose; the retracing notice is noise
    parts = list(parts)
    if not parts:
        raise ConfigError("add at least one head configuration")
    if not isinstance(epochs, int) or not 1 <= epochs <= MAX_EPOCHS:
        raise ConfigError(f"epochs must be a whole number from 1 to {MAX_EPOCHS}; got {epochs!r}")
    for part in parts:
        check_part(part.configs, data, part.seed)
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 4096:
        raise ConfigError(f"batch size must be from 1 to 4096; got {batch_size!r}")
    budget = budget or Budget.from_env()
    bb = loaded or load_backbone(backbone, input_size or 96, weights)
    for part in parts:
        check_budget(part.configs, data, bb, epochs, batch_size, budget)
    limit = budget.max_train_seconds if max_seconds is None else float(max_seconds)
    configs = [c for part in parts for c in part.configs]
    seeds = [int(part.seed) for part in parts for _ in part.configs]
    part_of = [(p, j) for p, part in enumerate(parts) for j in range(len(part.configs))]  # run -> (part, index)
    emitters = [part.progress or (lambda event: None) for part in parts]

    def emit_all(event: dict) -> None:
        for fn in emitters:
            fn(event)

    def emit_run(i: int, event: dict) -> None:  # "together": how many sweeps share this training
        p, j = part_of[i]
        emitters[p]({**event, "run": j, "together": len(parts)})

    notes = [bb.note] if bb.note else []

    # Features: one extraction per distinct cut point, shared by every head that uses it. A two-phase
    # head needs two: the frozen base's for phase 1 (the fast path, pooled once) and its cut's for phase 2.
    t0 = time.perf_counter()
    staged = configs + [c.phase1() for c in configs if c.two_phase]
    cuts = {c.unfrozen: find_cut(bb.model, c.unfrozen) for c in staged}
    top = len(bb.model.layers) - 1
    features, all_cached, cache_notes = _feature_tensors(bb, cuts, staged, data, use_cache, emit_all)
    notes += [n for n in cache_notes if n not in notes]
    t_features = time.perf_counter() - t0

    tr, va = ~data.is_val, data.is_val
    y_tr, y_va = data.y[tr], data.y[va]
    n_out = data.n_outputs
    total = max(c.total_epochs(epochs) for c in configs)  # two-phase heads go on after the others
    keep = set(snapshot_epochs(total)) | {epochs}  # and the end of phase 1
    orders_of: dict[int, list[np.ndarray]] = {}  # seed -> every epoch's batch order
    for s in sorted(set(seeds)):
        rng = np.random.default_rng(s)  # the first `epochs` orders are the same whatever `total` is
        orders_of[s] = [(rng.permutation(int(tr.sum())) if shuffle else np.arange(int(tr.sum()))).astype(np.int32)
                        for _ in range(total)]

    t1 = time.perf_counter()
    started = _clock()  # the time budget counts training only: extraction is bounded by the estimate
    runs: list[RunResult] = []
    runners: list[_HeadRunner | None] = []
    bb_id = (bb.name, bb.size, bb.weights_id)
    def start_alone(i: int) -> None:  # a head on its own compiled graph (runners[i]), its epoch 0 measured
        run, first = runs[i], configs[i].phase1()  # a two-phase head starts as a frozen-base head
        cut = cuts[first.unfrozen]
        feature_key = _feature_key(first, cut, top)
        x_tr, x_va = features[feature_key]
        t_run = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                runner = _HeadRunner(first, x_tr, x_va, y_tr, y_va, n_out, seeds[i], batch_size,
                                     bb.model, cut, bb_id, feature_key != cut.index)
                out, z, val_loss = runner.evaluate()
                run.snapshots[0], run.pre_activations[0] = out.numpy(), z.numpy()
                run.final["initial_val_loss"] = float(val_loss)
                run.notes += runner.notes
            except Exception as e:  # a head Keras refuses must not stop the others
                runner = None
                run.status, run.error = "error", _first_line(e)
        run.warnings += _unique_warnings(caught)
        run.seconds += time.perf_counter() - t_run
        runners[i] = runner

    stackable: dict[tuple, list[int]] = {}  # stack key -> runs trained together in stacks
    for i, config in enumerate(configs):
        described = cuts[config.unfrozen].describe()
        if config.two_phase:
            described = f"frozen backbone for {epochs} epochs, then {described} for {config.fine_tune_epochs}"
        run = RunResult(config=config, verdict=verdict_for(config, n_out), cut=described)
        run.history = {"epoch": [], "phase": [], "loss": [], "val_loss": [], "grad_norm": [],
                       **{m: [] for m in M.metric_names(data.task)}}
        runs.append(run)
        runners.append(None)
        cut = cuts[config.unfrozen]
        feature_key = _feature_key(config, cut, top)
        if stacked and not config.two_phase and feature_key != cut.index:  # a frozen base's pooled features
            x_tr, x_va = features[feature_key]
            key = (stack_key(config, x_tr, x_va, encode_targets(config, y_tr, n_out), batch_size), feature_key)
            stackable.setdefault(key, []).append(i)
        else:
            start_alone(i)
    groups: list[_StackGroup] = []
    for (_, feature_key), members in stackable.items():
        for k in range(0, len(members), STACK_SIZES[-1]):
            part = members[k:k + STACK_SIZES[-1]]
            group = _StackGroup.start([runs[i] for i in part], part, features[feature_key], y_tr, y_va, n_out,
                                      [seeds[i] for i in part], batch_size, [orders_of[seeds[i]] for i in part],
                                      epochs)
            if group is None:  # Keras refused the stack: each head on its own, where its error is its own
                for i in part:
                    start_alone(i)
            else:
                groups.append(group)
    in_stack = {i: g for g in groups for i in g.indices}

    # Heads are independent, so after epoch 1 (which traces each graph in this thread, where Keras's
    # warnings can be caught) they advance in parallel threads: TF releases the GIL while it runs.
    workers = parallel_heads(len(configs))
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 and total > 1 else None
    stopped = ""
    try:
        for epoch in range(1, total + 1):
            if epoch == epochs + 1:  # phase 2 of the two-phase heads: their partly unfrozen models
                for i, run in enumerate(runs):
                    if run.config.two_phase and runners[i] is not None and run.status == "ok":
                        runners[i] = _start_phase2(run, runners[i], cuts, features, y_tr, y_va, n_out, seeds[i],
                                                   batch_size, bb, bb_id)
            live = [i for i, (run, runner) in enumerate(zip(runs, runners))
                    if runner is not None and run.status == "ok" and epoch <= run.config.total_epochs(epochs)]
            due = [g for g in groups if g.due(epoch)]  # stacks that start a chunk of epochs now
            if pool is None or epoch in (1, epochs + 1):  # epochs that trace a graph: here, warnings caught
                for g in due:
                    g.advance(epoch)
                    if g.error and epoch == 1:  # Keras refused the stack: each head alone, its error its own
                        groups.remove(g)
                        for i in g.indices:
                            del in_stack[i]
                            runs[i].snapshots.clear()
                            runs[i].pre_activations.clear()
                            runs[i].final.clear()
                            start_alone(i)
                        g.release()
                live = [i for i, (run, runner) in enumerate(zip(runs, runners))
                        if runner is not None and run.status == "ok" and epoch <= run.config.total_epochs(epochs)]
                steps = [_step(runs[i], runners[i], orders_of[seeds[i]][epoch - 1], capture=True) for i in live]
            else:
                jobs = [pool.submit(g.advance, epoch) for g in due]
                steps = list(pool.map(_step, [runs[i] for i in live], [runners[i] for i in live],
                                      [orders_of[seeds[i]][epoch - 1] for i in live], [False] * len(live)))
                for job in jobs:
                    job.result()
            stacked_live = [i for i, g in in_stack.items() if runs[i].status == "ok" and g.has(epoch)]
            live, steps = live + stacked_live, steps + [in_stack[i].step(i, epoch) for i in stacked_live]
            order_of = sorted(range(len(live)), key=lambda k: live[k])
            live, steps = [live[k] for k in order_of], [steps[k] for k in order_of]
            for i, step in zip(live, steps):  # record in column order, in this thread
                _record(runs[i], runners[i], step, epoch, keep, y_va, phase=1 if epoch <= epochs else 2)
                emit_run(i, {"stage": "epoch", "epoch": epoch, "epochs": total, "status": runs[i].status,
                             "history": {k: v[-1] for k, v in runs[i].history.items() if v}})
            if epoch < total and live:
                stopped = _stop_reason(epoch, total, started, limit, cancelled)
                if stopped:
                    for i, step in zip(live, steps):
                        if runs[i].status == "ok" and "out" in step:
                            runs[i].snapshots[epoch] = step["out"]  # "after training" is this epoch
                            runs[i].pre_activations[epoch] = step["z"]
                            runs[i].notes.append(stopped)
                    notes.append(stopped)
                    break
    finally:
        if pool is not None:
            pool.shutdown(wait=True)

    for i, (run, runner) in enumerate(zip(runs, runners)):
        loss_fn, y_va_enc = (runner.loss_fn, runner.y_va.numpy()) if runner is not None else (
            (in_stack[i].loss_fn, in_stack[i].y_va.numpy()) if i in in_stack else (None, None))
        _finalise(run, loss_fn, y_va_enc, y_va, data.task)
        if runner is not None:
            runner.release()
    for g in groups:
        g.release()
    _collect_if_due()
    t_train = time.perf_counter() - t1
    results, start = [], 0
    for part in parts:
        mine, start = runs[start:start + len(part.configs)], start + len(part.configs)
        results.append(SweepResult(
            runs=name_runs(mine), task=data.task, dataset=data.dataset, label_names=tuple(data.label_names),
            unit=data.unit, y_val=y_va, y_train=y_tr, backbone=bb.name, input_size=bb.size, weights=bb.weights,
            epochs=epochs, seed=int(part.seed), batch_size=batch_size,  # epochs: as asked (two-phase: more)
            timing={"features_seconds": round(t_features, 3), "training_seconds": round(t_train, 3),
                    "features_cached": all_cached, "sweeps_trained_together": len(parts)},
            backend=keras.backend.backend(), keras_version=keras.__version__, notes=list(notes), stopped=stopped))
    return results


def check_budget(configs: Sequence[HeadConfig], data: TaskData, loaded: LoadedBackbone, epochs: int,
                 batch_size: int = 32, budget: Budget | None = None) -> None:
    """Raise ConfigError (saying what to change) when the sweep would exceed the server's budget.

    `train` calls it before anything is extracted; a page calls it before queueing too, so a Train that
    will be refused says so at once instead of after waiting its turn (34 s in the hostile benchmark).
    """
    refusals = check(estimate(configs, data, loaded, epochs, batch_size), budget or Budget.from_env())
    if refusals:
        raise ConfigError(refusals[0])  # the first: each line alone says what to change


def _stop_reason(epoch: int, epochs: int, started: float, limit: float,
                 cancelled: Callable[[], bool] | None) -> str:
    """Why training should stop after this epoch ("" to go on): cancelled, or over the time budget."""
    if cancelled is not None and cancelled():
        return f"Stopped after epoch {epoch} of {epochs}: cancelled. The curves show the epochs that were trained."
    if _clock() - started > limit:
        return (f"Stopped after epoch {epoch} of {epochs}: this server's time budget per Train is {limit:g} s "
                f"({ENV['max_train_seconds']}). The curves show the epochs that were trained; train fewer epochs "
                "or heads to see them all.")
    return ""


class _TensorMemory:
    """Feature tensors kept in memory between sweeps, least recently used out first, within a byte budget.

    Every sweep on a sample dataset would otherwise read the same file and copy it into new tensors
    (a tenth of a second of a quarter-second sweep). Keys are the disk cache's content hash plus the
    pooling, so an entry can never be stale.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self._items: OrderedDict[tuple, tuple] = OrderedDict()  # key -> (tensors, bytes)
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key][0]

    def put(self, key: tuple, tensors: tuple) -> None:
        size = sum(int(np.prod(t.shape)) * t.dtype.size for t in tensors)
        if size > self.budget:
            return
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            self._items[key] = (tensors, size)
            self._bytes += size
            while self._bytes > self.budget:
                self._bytes -= self._items.popitem(last=False)[1][1]


_MEMORY = _TensorMemory(Budget.from_env().feature_memory_bytes)


def _feature_key(config: HeadConfig, cut: Cut, top: int) -> int | tuple[int, str]:
    """Which feature tensors a head trains on: its cut's, or (frozen base) those pooled its way."""
    return (top, config.pooling) if cut.index >= top else cut.index


def _feature_tensors(bb: LoadedBackbone, cuts: dict[int, Cut], configs: list[HeadConfig], data: TaskData,
                     use_cache: bool, emit: ProgressFn) -> tuple[dict, bool, list[str]]:
    """(train, validation) tensors per cut index, and per (top index, pooling) for frozen-base heads.

    A frozen base's heads get their features pooled once, here, rather than on every batch of every
    epoch (pooling has no weights; it was most of a small head's step time). Returns the tensors,
    whether nothing had to be extracted, and the disk cache's notes.
    """
    import tensorflow as tf

    top = len(bb.model.layers) - 1
    distinct = sorted({c.index: c for c in cuts.values()}.values(), key=lambda c: -c.index)  # one per cut point
    features: dict = {}
    all_cached, notes = True, []
    for k, cut in enumerate(distinct):
        path = str(cache_path(bb, cut, data))
        wanted = sorted({_feature_key(c, cut, top) for c in configs if cuts[c.unfrozen].index == cut.index}, key=str)
        hits = {w: _MEMORY.get((path, w)) if use_cache else None for w in wanted}
        if all(v is not None for v in hits.values()):
            features.update(hits)
            continue
        fr = get_features(bb, cut, data, use_cache,
                          progress=lambda f, k=k: emit({"stage": "features", "fraction": (k + f) / len(distinct)}))
        all_cached &= fr.cached
        if fr.cache_note:
            notes.append(fr.cache_note)
        raw = (tf.constant(fr.features[~data.is_val]), tf.constant(fr.features[data.is_val]))
        for w in wanted:
            features[w] = raw if w == cut.index else tuple(pooling_layer(w[1])(x) for x in raw)
            if use_cache and not fr.cache_note:
                _MEMORY.put((path, w), features[w])
    emit({"stage": "features", "fraction": 1.0})
    return features, all_cached, notes


def _step(run: RunResult, runner: _HeadRunner, order: np.ndarray, capture: bool) -> dict:
    """One epoch of one head plus its validation pass; exceptions come back as data, not raised."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        if capture:
            warnings.simplefilter("always")
        try:
            result = runner.epoch(order)
        except Exception as e:
            result = {"error": _first_line(e)}
    result["warnings"] = _unique_warnings(caught) if capture else []
    result["seconds"] = time.perf_counter() - t0
    return result


def _start_phase2(run: RunResult, phase1: _HeadRunner, cuts: dict[int, Cut], features: dict, y_tr, y_va,
                  n_out: int, seed: int, batch_size: int, bb: LoadedBackbone, bb_id: tuple) -> _HeadRunner | None:
    """Phase 2 of a two-phase head (the Keras guide's recipe): the top `unfrozen` layers on their cut's
    cached features, BatchNorm frozen in inference mode, phase 1's head weights, and a new optimizer at
    the fine-tuning learning rate (what recompiling does in Keras). Phase 1's compiled head goes back to
    the pool. Returns None (and marks the run) when Keras refuses the phase-2 model."""
    t0 = time.perf_counter()
    config = run.config.phase2()
    cut = cuts[config.unfrozen]
    x_tr, x_va = features[_feature_key(config, cut, len(bb.model.layers) - 1)]
    runner = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            runner = _HeadRunner(config, x_tr, x_va, y_tr, y_va, n_out, seed, batch_size, bb.model, cut, bb_id,
                                 pooled=False, freeze_batchnorm=True)
            runner.start_from(phase1)
            # What the phase-2 model predicts before its first step: phase 1's last outputs, to float precision
            # (the same weights, the frozen top now computed from the cut's features instead of extracted).
            run.final["fine_tune_start_val_loss"] = float(runner.evaluate()[2])
        except Exception as e:
            if runner is not None:
                runner.release()
            runner = None
            run.status, run.error = "error", f"fine-tuning phase: {_first_line(e)}"
    run.warnings += [w for w in _unique_warnings(caught) if w not in run.warnings]
    phase1.release()
    run.seconds += time.perf_counter() - t0
    return runner


def _record(run: RunResult, runner: _HeadRunner, step: dict, epoch: int, keep: set[int], y_va: np.ndarray,
            phase: int = 1) -> None:
    """Append one epoch's figures to the run; mark it diverged when anything became NaN/inf."""
    run.seconds += step["seconds"]
    run.warnings += [w for w in step["warnings"] if w not in run.warnings]
    if "error" in step:
        run.status, run.error = "error", step["error"]
        return
    out, loss, val_loss = step["out"], step["loss"], step["val_loss"]
    h = run.history
    h["epoch"].append(epoch)
    h["phase"].append(phase)
    run.epoch_seconds.append(round(step["seconds"], 4))
    h["loss"].append(loss)
    h["val_loss"].append(val_loss)
    h["grad_norm"].append(step["gnorm"])
    for name, value in M.task_metrics(run.config, out, y_va).items():
        h[name].append(value)
    finite = math.isfinite(loss) and math.isfinite(val_loss) and bool(np.all(np.isfinite(out)))
    if epoch in keep or not finite or not step["finite"]:
        run.snapshots[epoch], run.pre_activations[epoch] = out, step["z"]
    if not finite or not step["finite"]:
        run.status, run.diverged_epoch = "diverged", epoch


def _unique_warnings(caught) -> list[str]:
    seen: list[str] = []
    for w in caught:
        text = str(w.message).strip()
        if text and text not in seen and "is deprecated" not in text:
            seen.append(text[:400])
    return seen


def _finalise(run: RunResult, loss_fn, y_va_encoded: np.ndarray | None, y_va: np.ndarray, task: str) -> None:
    """final: validation figures from the last predict() (and the loss recomputed on those outputs)."""
    if not run.snapshots:
        return
    last_epoch = max(run.snapshots)
    out = run.snapshots[last_epoch]
    run.final["epochs_trained"] = float(last_epoch)
    run.final["val_loss"] = run.history["val_loss"][-1] if run.history["val_loss"] else run.final.get("initial_val_loss")
    run.final.update(M.task_metrics(run.config, out, y_va))
    if loss_fn is not None:
        run.final["val_loss_on_predictions"] = _loss_on_predictions(loss_fn, y_va_encoded, out)
    if y_va_encoded is None or run.status == "error":
        return
    reported = {0: run.final.get("initial_val_loss"), **dict(zip(run.history["epoch"], run.history["val_loss"]))}
    run.loss_used = measure_loss_used(run.config, y_va_encoded, run.snapshots, run.pre_activations, reported)
    if run.status == "ok":
        run.sample_losses = sample_losses(run.config, y_va_encoded, y_va, out)
        run.confidently_wrong = confidently_wrong(run.config, out, y_va)


def _loss_on_predictions(loss_fn, y_va_encoded: np.ndarray, out: np.ndarray) -> float | None:
    """The same loss on predict()'s numbers, outside the graph: no pre-activation logits to fall back on,
    so this is the loss of what the model actually outputs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(loss_fn(y_va_encoded, np.asarray(out)))
    except Exception:
        return None
    return value if math.isfinite(value) else None
