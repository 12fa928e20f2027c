"""The server's budget: limits from the environment, the estimate before training, refusals, the time
budget per Train, the byte-bounded pool of traced heads, and a disk cache that holds sample data only.

lib.common.budget, lib.train.cost and lib.backbones.profile are imported inside the tests, so that each test fails on its own on code without it.
"""

import itertools
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import toy_data

from lib.backbones.features import cache_path, compute_features, find_cut, get_features
from lib.common.errors import ConfigError
from lib.common.paths import cache_dir
from lib.heads.config import default_head, parse_head_string
from lib.train.keras_objects import make_optimizer
from lib.train.trainer import train


def heads(task, *specs):
    return [parse_head_string(task, s) for s in specs]


def disk_bytes() -> int:
    return sum(p.stat().st_size for p in cache_dir().rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def mobilenet_299():
    """MobileNetV2's architecture at 299 px (the estimate reads shapes only: no weights needed)."""
    from lib.backbones import mobilenet_port

    return SimpleNamespace(model=mobilenet_port.build_mobilenetv2_symmetric((299, 299, 3), include_top=False),
                           size=299)


# ---- limits ------------------------------------------------------------------------------------------

def test_a_teacher_sets_limits_in_the_environment_and_bad_values_keep_the_defaults():
    from lib.common.budget import ENV, Budget

    b = Budget.from_env({"HEADLAB_MAX_TRAIN_SECONDS": "30", "HEADLAB_MAX_PARAMS": "5_000_000",
                         "HEADLAB_MAX_MEMORY_MB": "512", "HEADLAB_MAX_GMACS": "abc", "HEADLAB_POOL_MB": "-1",
                         "HEADLAB_FEATURE_CACHE_MB": "0"})
    assert (b.max_train_seconds, b.max_params, b.max_memory_mb) == (30.0, 5_000_000, 512.0)
    assert b.max_gmacs == Budget().max_gmacs and b.pool_mb == Budget().pool_mb
    assert b.feature_cache_mb == Budget().feature_cache_mb  # 0 is not a usable size: the default stays
    assert Budget.from_env({}) == Budget()
    text = Budget().describe()
    assert all(var in text for var in ENV.values()) and "180 s" in text and "25.0 M" in text
    assert len(text.splitlines()) == 5


# ---- the estimate ------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [
    "",  # frozen base, pooled once
    "pooling=flatten,hidden=128:relu",  # the seed articles' head
    "unfrozen=10,optimizer=sgd",
    "unfrozen=2000,optimizer=rmsprop,hidden=32:relu;16:tanh",  # the whole backbone trains
    "unfrozen=30,pooling=flatten,units=7,optimizer=adamw",
])
def test_estimated_parameters_and_optimizer_state_are_what_keras_builds(toy, tiny_backbone, spec):
    from lib.heads.build import build_head
    from lib.train.cost import estimate

    config = parse_head_string("multiclass", spec)
    data = toy("multiclass")
    est = estimate([config], data, tiny_backbone, epochs=5).heads[0]
    cut = find_cut(tiny_backbone.model, config.unfrozen)
    shape = tuple(tiny_backbone.model.layers[cut.index].output.shape[1:])
    pooled = cut.index == len(tiny_backbone.model.layers) - 1
    if pooled:
        shape = (int(np.prod(shape)),) if config.pooling == "flatten" else (shape[-1],)
    model, _, _ = build_head(config, shape, data.n_outputs, data.y[~data.is_val], 0, tiny_backbone.model,
                             cut.index, pooled=pooled)
    opt = make_optimizer(config)
    opt.build(model.trainable_variables)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    slots = sum(int(np.prod(v.shape)) for v in opt.variables)
    assert est.params == model.count_params() and est.trainable == trainable
    # weights + gradients + slots; Keras adds two scalars (iterations, learning rate) the estimate leaves out
    assert 0 <= (model.count_params() + trainable + slots) * 4 - est.state_bytes <= 16


def test_estimated_multiply_adds_match_tensorflows_own_count(tiny_backbone, toy):
    import tensorflow as tf

    from lib.train.cost import estimate

    profiler = pytest.importorskip("tensorflow.python.profiler.model_analyzer")
    options = pytest.importorskip("tensorflow.python.profiler.option_builder")
    fn = tf.function(lambda x: tiny_backbone.model(x, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec([1, 64, 64, 3], tf.float32)).graph
    opts = options.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    tf_macs = profiler.profile(graph, options=opts).total_float_ops / 2  # TF counts a multiply-add as 2
    data = toy("binary")
    est = estimate([default_head("binary")], data, tiny_backbone, epochs=1)
    per_image = est.extraction_macs / len(data.images)
    # The estimate counts batch norm, activations and pooling as one operation per element, where TF's
    # profiler counts some of them differently: 5% covers that (measured 1-3% on every backbone).
    assert per_image == pytest.approx(tf_macs, rel=0.05)


def _largest_sizes():
    """Every backbone at its largest offered input size (features, memory and compute only grow with it)."""
    from lib.backbones.registry import REGISTRY

    return [(name, spec.sizes()[-1]) for name, spec in REGISTRY.items()]


def test_the_defaults_let_every_lesson_and_every_sample_dataset_at_every_size_run():
    import keras

    from lib.backbones import mobilenet_port
    from lib.backbones.registry import REGISTRY, _keras_constructor, load_backbone
    from lib.common.budget import Budget
    from lib.data.samples import list_datasets, load_sample
    from lib.lessons import LESSONS
    from lib.train.cost import check, estimate

    budget = Budget()
    for lesson in LESSONS:
        e = lesson.experiment
        bb = load_backbone(e.backbone, e.input_size)
        assert check(estimate(e.heads, load_sample(e.dataset, e.task), bb, e.epochs), budget) == [], lesson.id
    fine_tuning = LESSONS[-1].experiment.heads
    seed_head = heads("binary", "pooling=flatten,hidden=128:relu")
    sample = load_sample("fashion", "binary")
    for size in (96, 128):  # the seed articles' head and the lesson's unfrozen top block at their sizes
        bb = load_backbone("mobilenet_v2", size)
        assert check(estimate(seed_head + [fine_tuning[1]], sample, bb, 20), budget) == [], size
    # all three fine-tuning heads, the whole base included, for 20 epochs at 96 px
    assert check(estimate(fine_tuning, sample, load_backbone("mobilenet_v2", 96), 20), budget) == []

    biggest = max(list_datasets(), key=lambda card: card["n_images"])
    samples = [load_sample(biggest["name"], task) for task in biggest["tasks"]]
    for name, size in _largest_sizes():
        if REGISTRY[name].bundled:  # the same architecture as the bundled weights, without loading them
            model = mobilenet_port.build_mobilenetv2_symmetric((size, size, 3), include_top=False)
        else:
            ctor, kwargs = _keras_constructor(REGISTRY[name], size)
            model = ctor(weights=None, **kwargs)
        bb = SimpleNamespace(model=model, size=size)
        for data in samples:
            six = [default_head(data.task)] * 6
            assert check(estimate(six, data, bb, 20), budget) == [], (name, size, data.task)
        del model, bb
        keras.backend.clear_session()


def test_hostile_links_are_refused_with_one_line_each_naming_the_limit(mobilenet_299):
    from lib.common.budget import Budget
    from lib.data.samples import load_sample
    from lib.train.cost import check, estimate

    budget = Budget()
    data = load_sample("fashion", "multiclass")
    # Flatten + one hidden layer of 2048 at 299 px, 2 epochs: 262 M weights, 4 GB with Adam's state
    flat = check(estimate(heads("multiclass", "pooling=flatten,hidden=2048:relu"), data, mobilenet_299, 2), budget)
    assert flat[0].startswith("Head 1 (") and "262.2 M parameters" in flat[0] and "HEADLAB_MAX_PARAMS" in flat[0]
    assert "global average pooling instead of Flatten" in flat[0]
    # 6 heads of 4 hidden layers of 4096 and 4096 outputs for 200 epochs: hours of the only slot
    wide = heads("multiclass", "units=4096,hidden=4096:relu;4096:relu;4096:relu;4096:relu")
    lines = check(estimate(wide * 6, data, mobilenet_299, 200), budget)
    assert len(lines) == 8  # six heads over the parameter limit, then memory and compute
    assert "fewer units in hidden layer" in lines[0]
    assert "HEADLAB_MAX_MEMORY_MB" in lines[6] and "Train fewer heads" in lines[6]
    assert "HEADLAB_MAX_GMACS" in lines[7] and "fewer epochs" in lines[7]
    # a big upload at 299 px: its features alone would take the memory
    n = 5000
    upload = SimpleNamespace(images=np.zeros((n, 8, 8, 3), np.uint8), is_val=np.arange(n) % 4 == 0, n_outputs=1)
    big = check(estimate([default_head("binary")], upload, mobilenet_299, 20), budget)
    assert len(big) == 1 and "of features" in big[0] and "smaller input size than 299 px" in big[0]
    for line in flat + lines + big:
        assert "\n" not in line and len(line) < 400


def test_train_refuses_an_over_budget_sweep_before_extracting_anything(toy, tiny_backbone, monkeypatch):
    import lib.train.trainer as T

    def no_extraction(*args, **kwargs):
        raise AssertionError("features were extracted for a sweep that is refused")

    monkeypatch.setattr(T, "get_features", no_extraction)
    hostile = heads("binary", "pooling=flatten,hidden=4096:relu;4096:relu;4096:relu;4096:relu")
    with pytest.raises(ConfigError, match="HEADLAB_MAX_PARAMS"):
        train(hostile, toy_data("binary", n=32, seed=31), epochs=1, seed=0, loaded=tiny_backbone)
    monkeypatch.setenv("HEADLAB_MAX_PARAMS", "1000")  # a teacher's own limit applies at the next Train
    with pytest.raises(ConfigError, match=r"allows 1,000 per head \(HEADLAB_MAX_PARAMS\)"):
        train(heads("binary", "hidden=8:relu"), toy_data("binary", n=32, seed=31), epochs=1, seed=0,
              loaded=tiny_backbone)


# ---- the time budget per Train -----------------------------------------------------------------------

def test_the_time_budget_stops_between_epochs_and_keeps_what_was_trained(toy, tiny_backbone, monkeypatch):
    import lib.train.trainer as T

    cfgs = heads("binary", "learning_rate=0.01", "hidden=8:relu,learning_rate=0.01")
    data = toy("binary")
    full = train(cfgs, data, epochs=6, seed=5, loaded=tiny_backbone)
    assert full.stopped == "" and all(len(r.history["loss"]) == 6 for r in full.runs)
    ticks = itertools.count(0, 10)  # a fake clock: ten seconds pass at every look
    monkeypatch.setattr(T, "_clock", lambda: float(next(ticks)))
    cut = train(cfgs, data, epochs=6, seed=5, loaded=tiny_backbone, max_seconds=25)
    # looked at 0 (start), 10, 20, 30 s: over 25 s after the third epoch
    assert "after epoch 3 of 6" in cut.stopped and "25 s (HEADLAB_MAX_TRAIN_SECONDS)" in cut.stopped
    assert cut.notes.count(cut.stopped) == 1
    for short, whole in zip(cut.runs, full.runs):
        assert short.status == "ok" and short.history["epoch"] == [1, 2, 3] and cut.stopped in short.notes
        assert max(short.snapshots) == 3 and short.final["epochs_trained"] == 3
        # the epochs that ran are the very computation of the full run (same graphs, seeds and batches)
        np.testing.assert_allclose(short.history["loss"], whole.history["loss"][:3], rtol=1e-6)
        np.testing.assert_allclose(short.final["val_loss"], whole.history["val_loss"][2], rtol=1e-6)
    # the teacher's variable is the default
    monkeypatch.setenv("HEADLAB_MAX_TRAIN_SECONDS", "15")
    ticks = itertools.count(0, 10)
    by_env = train(cfgs, data, epochs=6, seed=5, loaded=tiny_backbone)
    assert "after epoch 2 of 6" in by_env.stopped and "15 s" in by_env.stopped
    assert [len(r.history["loss"]) for r in by_env.runs] == [2, 2]


def test_cancelled_stops_after_the_current_epoch(toy, tiny_backbone):
    looks = itertools.count(1)
    sweep = train(heads("binary", "learning_rate=0.01"), toy("binary"), epochs=5, seed=0, loaded=tiny_backbone,
                  cancelled=lambda: next(looks) >= 2)
    run = sweep.runs[0]
    assert len(run.history["loss"]) == 2 and "after epoch 2 of 5: cancelled" in sweep.stopped
    assert max(run.snapshots) == 2 and run.final["epochs_trained"] == 2


# ---- the pool of traced heads ----------------------------------------------------------------------

def test_the_pool_of_traced_heads_stays_within_its_bytes_and_never_keeps_a_head_bigger_than_it(
        toy, tiny_backbone, monkeypatch):
    import lib.train.trainer as T

    def weights(compiled) -> list:  # a compiled head's, or a stack's (frozen-base heads train stacked)
        return compiled.model.variables if hasattr(compiled, "model") else compiled.variables

    def held_bytes(compiled) -> int:  # counted here from the variables, not from the pool's own figure
        return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                   for v in [*weights(compiled), *compiled.opt.variables])

    def hidden_units(compiled) -> int:
        return compiled.model.get_layer("hidden_0").units if hasattr(compiled, "model") else compiled.kernels[0].shape[2]

    budget = 3 * 2**20
    monkeypatch.setattr(T, "_POOL", OrderedDict())
    monkeypatch.setattr(T, "_POOL_BYTES", budget, raising=False)
    data = toy("binary")
    for units in (60, 61, 62, 63, 64):  # ~0.9 MB each with Adam's slots: three fit
        train(heads("binary", f"hidden={units}:relu"), data, epochs=1, seed=0, loaded=tiny_backbone)
    big = heads("binary", "pooling=flatten,hidden=128:relu")  # 0.66 M weights: 7.9 MB with Adam's slots
    train(big, data, epochs=1, seed=0, loaded=tiny_backbone)
    pooled = [c for idle in T._POOL.values() for c in idle]
    total = sum(held_bytes(c) for c in pooled)
    assert 0 < total <= budget and len(pooled) == 3
    assert all(sum(int(np.prod(v.shape)) for v in weights(c)) < 600_000 for c in pooled)  # the big head was let go
    assert T.pool_bytes() == sum(c.nbytes for c in pooled) and abs(T.pool_bytes() - total) < 64 * len(pooled)
    assert {hidden_units(c) for c in pooled} == {62, 63, 64}  # the most recent ones


def test_the_pool_evicts_past_a_key_whose_last_head_was_taken(monkeypatch):
    """Taking a key's only idle head left an empty list at the pool's oldest end; the next put over the
    bound popped from it (IndexError), and every later training in that process failed at release."""
    import lib.train.trainer as T

    class Held:
        nbytes = 10

    monkeypatch.setattr(T, "_POOL", OrderedDict())
    monkeypatch.setattr(T, "_POOL_MAX", 2)
    first = Held()
    T._pool_put("a", first)
    assert T._pool_take("a") is first and T._pool_take("a") is None
    for key in ("b", "c", "d"):
        T._pool_put(key, Held())
    assert list(T._POOL) == ["c", "d"] and all(len(v) == 1 for v in T._POOL.values())


def test_heads_let_go_are_freed_and_tensorflow_keeps_no_trace_of_them(toy, tiny_backbone, monkeypatch):
    import weakref

    from tensorflow.python.framework import ops

    import lib.train.trainer as T

    made = []

    class Recorded(T._Compiled):
        def __init__(self, model, *args, **kwargs):
            super().__init__(model, *args, **kwargs)
            made.append(weakref.ref(model))

    class RecordedStack(T.Stack):  # frozen-base heads train in stacks
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(weakref.ref(self))

    monkeypatch.setattr(T, "_Compiled", Recorded)
    monkeypatch.setattr(T, "Stack", RecordedStack)
    monkeypatch.setattr(T, "_POOL_BYTES", 1, raising=False)  # nothing is kept...
    monkeypatch.setattr(T, "_COLLECT_AFTER_BYTES", 1, raising=False)  # ...and what is let go is collected
    registered = len(ops._gradient_registry.list())
    train(heads("binary", "hidden=24:relu", "hidden=25:relu"), toy("binary"), epochs=2, seed=0, loaded=tiny_backbone)
    assert len(made) == 2 and all(ref() is None for ref in made)
    # Keras's optimizer step used to register a custom gradient per trace in TensorFlow's process-wide
    # table, which kept every traced graph and the weights it captured alive for good
    assert len(ops._gradient_registry.list()) == registered


# ---- the feature cache on disk: sample data only, within its bytes ------------------------------------

def test_an_upload_trained_with_every_layer_unfrozen_leaves_nothing_on_disk(tiny_backbone, monkeypatch, tmp_path):
    import lib.train.trainer as T

    class NoWholeBackboneTrace(T._HeadRunner):
        """Tracing the whole backbone's gradient graph takes 30 s and writes nothing; its features (the
        preprocessed pixels, from which the images can be recovered) are what must stay off disk."""

        def __init__(self, config, *args, **kwargs):
            if config.unfrozen == 2000:
                raise RuntimeError("not traced in this test")
            super().__init__(config, *args, **kwargs)

    monkeypatch.setattr(T, "_HeadRunner", NoWholeBackboneTrace)
    monkeypatch.setenv("HEADLAB_CACHE", str(tmp_path / "cache"))
    upload = toy_data("binary", n=32, seed=77, cache_on_disk=False)
    sweep = train(heads("binary", "unfrozen=2000,learning_rate=0.0001", "pooling=flatten", "unfrozen=10"), upload,
                  epochs=2, seed=0, loaded=tiny_backbone)
    whole, frozen, top = sweep.runs
    assert whole.cut.startswith("whole backbone") and "not traced" in whole.error  # its pixels were extracted
    assert frozen.status == top.status == "ok" and not sweep.timing["features_cached"]
    assert disk_bytes() == 0, sorted(p.name for p in cache_dir().rglob("*"))
    # the same images as sample data are cached (so the check above is not vacuous)
    sample = toy_data("binary", n=32, seed=77)
    assert get_features(tiny_backbone, find_cut(tiny_backbone.model, 2000), sample).cached is False
    assert cache_path(tiny_backbone, find_cut(tiny_backbone.model, 2000), sample).is_file()


def test_sample_datasets_are_the_data_cached_on_disk():
    from lib.data.samples import load_sample

    assert load_sample("shapes", "multilabel").cache_on_disk
    plain = toy_data("binary", n=8)
    assert not type(plain)(plain.dataset, plain.task, plain.images, plain.y, plain.is_val,
                           plain.label_names).cache_on_disk  # anything else stays off disk by default


def test_the_disk_cache_keeps_within_its_bytes_least_recently_used_out(tiny_backbone, monkeypatch, tmp_path):
    import os

    monkeypatch.setenv("HEADLAB_CACHE", str(tmp_path / "cache"))
    cut = find_cut(tiny_backbone.model, 0)
    data = [toy_data("binary", n=40, seed=200 + i) for i in range(6)]
    entry = 40 * 2 * 2 * 1280 * 4 + 128  # 40 images of 2x2x1280 float32 features, plus the .npy header
    budget = 2.5 * entry  # room for two entries
    monkeypatch.setenv("HEADLAB_FEATURE_CACHE_MB", str(budget / 2**20))
    a, b, c = (cache_path(tiny_backbone, cut, d) for d in data[:3])
    get_features(tiny_backbone, cut, data[0])
    get_features(tiny_backbone, cut, data[1])
    os.utime(a, (1_000, 1_000))  # a was written long ago and b after it...
    os.utime(b, (2_000, 2_000))
    assert get_features(tiny_backbone, cut, data[0]).cached  # ...but a was just read again
    get_features(tiny_backbone, cut, data[2])
    assert a.is_file() and c.is_file() and not b.exists()  # b was the least recently used
    for d in data[3:]:  # more sweeps: the cache never holds more than its budget
        train([default_head("binary")], d, epochs=1, seed=0, loaded=tiny_backbone)
        assert disk_bytes() <= budget
    assert cache_path(tiny_backbone, cut, data[-1]).is_file()
    monkeypatch.setenv("HEADLAB_FEATURE_CACHE_MB", str(0.5 * entry / 2**20))
    kept = sorted(cache_dir().rglob("*.npy"))
    fresh = get_features(tiny_backbone, cut, toy_data("binary", n=40, seed=299))
    assert not fresh.cached and fresh.features.shape == (40, 2, 2, 1280)  # too big to keep: trained from memory
    assert sorted(cache_dir().rglob("*.npy")) == kept  # and it evicted nothing


def test_extraction_batches_bounded_in_memory_give_the_same_features(tiny_backbone, mobilenet_299):
    from lib.backbones.profile import MAX_EXTRACTION_BATCH, extraction_batch

    top = len(mobilenet_299.model.layers) - 1
    assert extraction_batch(tiny_backbone.model, len(tiny_backbone.model.layers) - 1) == MAX_EXTRACTION_BATCH
    assert 1 <= extraction_batch(mobilenet_299.model, top) < MAX_EXTRACTION_BATCH
    images = toy_data("binary", n=24, seed=5).images
    cut = find_cut(tiny_backbone.model, 0)
    whole = compute_features(tiny_backbone, cut, images, batch_size=24)
    # Per-image convolutions do not depend on the batch, but a kernel may block them differently per batch
    # size: measured up to 5.5e-6 absolute on an AMD EPYC without AVX-512 (Eigen kernels), on features up
    # to ~6 (relu6), where small values then differ by a large relative amount. atol 1e-4 leaves an 18x
    # margin; images swapped or mixed between batches would differ by ~0.1.
    np.testing.assert_allclose(compute_features(tiny_backbone, cut, images, batch_size=5), whole,
                               rtol=1e-5, atol=1e-4)
