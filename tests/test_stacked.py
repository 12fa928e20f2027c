"""The stacked trainer (lib/train/stacked.py): heads trained together behave as each head trained alone."""

import math

import numpy as np
import pytest

import lib.train.trainer as T
from lib.heads.config import parse_head_string
from lib.train.stacked import Member, Stack, capacity
from lib.train.trainer import SweepPart, chunk_length, train, train_together

# Stacked and alone run the same Keras ops on the same numbers, except that a stack multiplies with a
# batched matmul ([H, b, f] @ [H, f, u]) where a head alone uses a plain one, and TensorFlow's CPU kernels
# vectorise by position (groups of 8 rows), so the last bit of a product or an exp can differ. Training
# amplifies such a bit: measured on this machine, 2e-7 relative for most heads, 7e-5 for a linear output
# clipped by from_logits=False, 4e-4 for Adam at learning rate 10. rtol 1e-3 bounds the worst of these
# with room for other CPUs; atol covers values that pass near 0.
RTOL, ATOL = 1e-3, 1e-5

MIXED_BINARY = [
    "activation=sigmoid",
    "activation=sigmoid,kernel_initializer=he_normal",  # same structure as the first: one stack of two
    "activation=softmax,units=1",
    "activation=linear,from_logits=true",
    "activation=linear",  # from_logits=False: the loss clips the raw outputs
    "activation=sigmoid,units=2,loss=categorical_crossentropy",
    "activation=relu,units=2,loss=categorical_crossentropy",
    "activation=sigmoid,optimizer=sgd,learning_rate=0.1",
    "activation=sigmoid,learning_rate=0.01",
    "hidden=16:relu,dropout=0.3",
    "hidden=16:relu,dropout=0.3,kernel_initializer=lecun_normal",  # a stack of two with Dropout
]
MIXED_REGRESSION = ["learning_rate=0.01", "learning_rate=0.01,kernel_initializer=he_uniform",
                    "activation=sigmoid", "hidden=8:tanh,loss=huber,learning_rate=0.01"]


def _close(a, b, what):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, what
    both = np.isfinite(a) & np.isfinite(b)
    assert np.array_equal(np.isfinite(a), np.isfinite(b)), what
    np.testing.assert_allclose(a[both], b[both], rtol=RTOL, atol=ATOL, err_msg=what)


def _assert_same_runs(alone, stacked):
    for a, s in zip(alone.runs, stacked.runs, strict=True):
        assert (a.status, a.diverged_epoch, a.error) == (s.status, s.diverged_epoch, s.error), a.label
        assert a.history.keys() == s.history.keys()
        assert a.history["epoch"] == s.history["epoch"] and a.history["phase"] == s.history["phase"]
        assert sorted(a.snapshots) == sorted(s.snapshots), a.label
        # Up to the epoch a head diverged: what a layer makes of NaN weights is the kernel's choice (TF's
        # relu gives 0 for NaN on a [b, u] tensor and NaN on a stacked [H, b, u] one), not a number to match.
        upto = len(a.history["epoch"]) - (a.status == "diverged")
        for name, values in a.history.items():
            _close(values[:upto], s.history[name][:upto], f"{a.label}: {name}")
        for epoch, out in a.snapshots.items():
            if epoch <= upto:
                _close(out, s.snapshots[epoch], f"{a.label}: outputs at epoch {epoch}")
        if a.status == "diverged":
            continue
        for name, value in a.final.items():
            if value is not None and math.isfinite(value):
                _close(value, s.final[name], f"{a.label}: final {name}")


@pytest.mark.parametrize("task, specs", [("binary", MIXED_BINARY), ("regression", MIXED_REGRESSION)])
def test_a_mixed_sweep_trains_stacked_as_it_does_head_by_head(toy, tiny_backbone, monkeypatch, task, specs):
    monkeypatch.setattr(T, "_POOL", T.OrderedDict())  # to see which stacks were built
    configs = [parse_head_string(task, s) for s in specs]
    alone = train(configs, toy(task), epochs=6, seed=3, loaded=tiny_backbone, stacked=False)
    stacked = train(configs, toy(task), epochs=6, seed=3, loaded=tiny_backbone)
    _assert_same_runs(alone, stacked)
    caps = sorted(key[2] for key in T._POOL if key[0] == "stack")
    assert caps.count(2) == (2 if task == "binary" else 1)  # the heads that share a structure shared a stack
    if task == "binary":
        statuses = [r.status for r in stacked.runs]
        assert statuses[6] == "diverged" and statuses.count("ok") == len(specs) - 1  # relu + CCE: NaN at once
        softmax_warnings = [w for w in stacked.runs[2].warnings if "softmax over axis -1" in w]
        assert softmax_warnings and all("(1, " not in w for w in softmax_warnings)  # no head axis in the text


def test_a_pooled_stack_repeats_its_keras_warnings_and_starts_from_scratch(toy, tiny_backbone):
    config = [parse_head_string("binary", "activation=softmax,units=1")]
    first = train(config, toy("binary"), epochs=2, seed=0, loaded=tiny_backbone)
    again = train(config, toy("binary"), epochs=2, seed=0, loaded=tiny_backbone)  # the traced stack, reused
    assert first.runs[0].warnings and again.runs[0].warnings == first.runs[0].warnings
    assert again.runs[0].history == first.runs[0].history  # fresh weights and optimizer state each time


def test_two_sessions_sweeps_trained_together_each_get_what_they_get_alone(toy, tiny_backbone, monkeypatch):
    monkeypatch.setattr(T, "_POOL", T.OrderedDict())  # to see which stacks were built
    data = toy("binary")
    a = [parse_head_string("binary", s) for s in ("activation=sigmoid", "hidden=16:relu,dropout=0.3",
                                                  "activation=softmax,units=1")]
    b = [parse_head_string("binary", s) for s in ("activation=sigmoid,kernel_initializer=he_normal",
                                                  "hidden=16:relu,dropout=0.3", "unfrozen=1")]
    events: dict[str, list] = {"a": [], "b": []}
    together = train_together([SweepPart(tuple(a), 3, events["a"].append), SweepPart(tuple(b), 11, events["b"].append)],
                              data, epochs=5, loaded=tiny_backbone)
    built = sorted(key[2] for key in T._POOL if key[0] == "stack")
    # sigmoid ×2 and hidden+dropout ×2 share stacks across the sessions; softmax×1 is alone; unfrozen=1 is no stack
    assert built == [1, 2, 2]
    alone_a = train(a, data, epochs=5, seed=3, loaded=tiny_backbone)
    alone_b = train(b, data, epochs=5, seed=11, loaded=tiny_backbone)
    for mine, alone in ((together[0], alone_a), (together[1], alone_b)):
        assert mine.seed == alone.seed and [r.label for r in mine.runs] == [r.label for r in alone.runs]
        assert mine.timing["sweeps_trained_together"] == 2
        _assert_same_runs(alone, mine)
    # the two seeds really differ (same head, other initial weights and batch orders)
    assert together[0].runs[1].history["loss"] != pytest.approx(together[1].runs[1].history["loss"], rel=1e-3)
    for name, heads in (("a", a), ("b", b)):  # each session hears of its own runs only, numbered its own way
        epochs = [e for e in events[name] if e["stage"] == "epoch"]
        assert sorted({e["run"] for e in epochs}) == list(range(len(heads)))
        assert len(epochs) == 5 * len(heads) and any(e["stage"] == "features" for e in events[name])


def _features(n=96, f=24, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    return tf.constant(x[:64]), tf.constant(y[:64].astype(np.float32).reshape(-1, 1)), \
        tf.constant(x[64:]), tf.constant(y[64:].astype(np.float32).reshape(-1, 1)), y[:64]


def test_a_head_that_turns_nan_in_a_stack_is_frozen_and_no_nan_reaches_the_others():
    x, y, x_va, y_va, y_raw = _features()
    config = parse_head_string("binary", "activation=sigmoid,learning_rate=0.05")
    members = [Member(config, seed, y_raw, 1) for seed in (1, 2, 3)]
    orders = np.stack([np.stack([np.random.default_rng(e * 10 + h).permutation(64) for h in range(3)])
                       for e in range(4)]).astype(np.int32)

    clean = Stack(config, 24, 1, capacity(3), 64, 16)
    clean.load(members)
    reference = clean.train(x, y, x_va, y_va, orders, np.ones(3, bool))

    poisoned = Stack(config, 24, 1, capacity(3), 64, 16)
    poisoned.load(members)
    kernel = poisoned.kernels[0].numpy()
    kernel[1, 0, 0] = np.nan  # head 1 turns NaN in its first step
    poisoned.kernels[0].assign(kernel)
    bias_before = poisoned.biases[0].numpy()[1].copy()
    result = poisoned.train(x, y, x_va, y_va, orders, np.ones(3, bool))

    assert not result["finite"][:, 1].any() and not result["alive"][1]
    assert result["finite"][:, [0, 2]].all() and result["alive"][[0, 2]].all()
    for name in ("loss", "gnorm", "val_loss", "out"):
        assert np.isfinite(result[name][:, [0, 2]]).all(), name
        # the other heads' numbers are those of the same stack without the NaN (the same ops on the same
        # slices, so equal here; the tolerance only allows for a kernel that vectorises across heads)
        np.testing.assert_allclose(result[name][:, [0, 2]], reference[name][:, [0, 2]], rtol=1e-6, atol=1e-7)
    # frozen from the epoch it went non-finite: its bias stays where epoch 1 left it
    after_epoch_1 = poisoned.biases[0].numpy()[1]
    assert np.isnan(after_epoch_1).all() or not np.array_equal(after_epoch_1, bias_before)
    more = poisoned.train(x, y, x_va, y_va, orders[:2], result["alive"])
    np.testing.assert_array_equal(poisoned.biases[0].numpy()[1], after_epoch_1)  # untouched: a copy, not a computation
    assert more["finite"][:, [0, 2]].all()


def test_a_stack_of_one_head_equals_that_head_inside_a_bigger_stack():
    x, y, x_va, y_va, y_raw = _features(seed=1)
    config = parse_head_string("binary", "hidden=8:relu,dropout=0.25,activation=sigmoid,learning_rate=0.02")
    members = [Member(config, seed, y_raw, 1) for seed in range(5)]
    orders = np.stack([np.stack([np.random.default_rng(e * 10 + h).permutation(64) for h in range(5)])
                       for e in range(3)]).astype(np.int32)
    big = Stack(config, 24, 1, capacity(5), 64, 16)
    big.load(members)
    together = big.train(x, y, x_va, y_va, orders, np.ones(5, bool))
    for h in (0, 4):
        one = Stack(config, 24, 1, 1, 64, 16)
        one.load([members[h]])
        alone = one.train(x, y, x_va, y_va, orders[:, h:h + 1], np.ones(1, bool))
        for name in ("loss", "gnorm", "val_loss", "out"):
            np.testing.assert_allclose(alone[name][:, 0], together[name][:, h], rtol=RTOL, atol=ATOL, err_msg=name)


def test_chunks_of_epochs_start_small_and_cover_every_epoch_once():
    starts, epoch = [], 1
    while epoch <= 200:
        starts.append(epoch)
        epoch += chunk_length(epoch)
    assert starts[:6] == [1, 2, 3, 5, 9, 17]
    assert all(chunk_length(e) <= 32 for e in starts)
    assert [capacity(n) for n in (1, 2, 3, 5, 9, 33, 64)] == [1, 2, 4, 8, 16, 64, 64]
