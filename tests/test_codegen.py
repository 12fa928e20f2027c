"""'Show Keras code': generated scripts compile, are standalone, and really run (random weights, offline)."""

from __future__ import annotations

import ast
import csv
import itertools
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.backbones.registry import REGISTRY
from lib.common.errors import ConfigError
from lib.data.taskdata import TASKS
from lib.heads.build import log_prior_bias
from lib.heads.codegen import keras_script, log_prior_code, script_filename
from lib.heads.config import (
    ACTIVATIONS,
    LABEL_FORMATS,
    LOSSES,
    OPTIMIZERS,
    POOLINGS,
    HeadConfig,
    default_head,
)
from lib.heads.pairings import unit_choices, verdict_for

N_IMAGES = 24
SIZE = 32
ALLOWED_IMPORTS = {"argparse", "csv", "os", "keras", "numpy", "tensorflow"}
OUTPUTS_RE = re.compile(r"^outputs: min=(\S+) max=(\S+) mean=(\S+)$", re.M)
ROW_SUMS_RE = re.compile(r"^row sums: min=(\S+) max=(\S+)$", re.M)
BIAS_RE = re.compile(r"^log_prior output bias: \[(.*)\]$", re.M)
CUT_RE = re.compile(r"^Fine-tuning the top (\d+) layers \(asked for (\d+)\), cut after '([^']+)'$", re.M)


# ----------------------------------------------------------------------------------- tiny data


def _image(rng: np.random.Generator, bright: bool) -> Image.Image:
    a = rng.integers(0, 90, (SIZE, SIZE, 3), dtype=np.uint8)
    if bright:
        a[: SIZE // 2] = 230
    return Image.fromarray(a)


def make_class_folders(root: Path, counts: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for k, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            _image(rng, k % 2 == 1).save(root / name / f"{i:03d}.png")
    return root


def make_csv_data(root: Path, task: str) -> tuple[Path, np.ndarray]:
    """images/ plus labels.csv; returns the folder and the targets in CSV row order."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    if task == "multilabel":
        header = ["filename", "red", "green", "blue"]
        y = (rng.random((N_IMAGES, 3)) < 0.4).astype(np.float32)
    else:
        header = ["filename", "area (px)"]
        y = np.round(rng.uniform(10, 500, N_IMAGES), 2).astype(np.float32)
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(N_IMAGES):
            _image(rng, bool(i % 2)).save(root / "images" / f"{i:03d}.png")
            cells = [int(v) for v in y[i]] if task == "multilabel" else [f"{float(y[i]):.2f}"]
            w.writerow([f"images/{i:03d}.png", *cells])
    return root, y


def script_train_split(n: int, seed: int = 0) -> np.ndarray:
    """The generated CSV scripts' split, replicated: a seeded permutation, the first 25% for validation."""
    order = np.random.default_rng(seed).permutation(n)
    return order[max(1, round(0.25 * n)):]


# ----------------------------------------------------------------------------------- the runs

RUNS: dict[str, dict] = {
    "binary": {"config": default_head("binary"), "n_outputs": 1, "data": "binary"},
    "softmax_one_unit": {"config": default_head("binary", activation="softmax", units=1), "n_outputs": 1,
                         "data": "binary"},
    "multiclass": {"config": default_head("multiclass"), "n_outputs": 3, "data": "multiclass"},
    "multilabel": {"config": default_head("multilabel", bias_initializer="log_prior"), "n_outputs": 3,
                   "data": "multilabel"},
    "regression": {"config": default_head("regression", bias_initializer="log_prior", optimizer="adamw"),
                   "n_outputs": 1, "data": "regression"},
    "finetune": {"config": default_head("multiclass", loss="categorical_crossentropy", hidden=((16, "relu"), (8, "tanh")),
                                        dropout=0.3, unfrozen=20, optimizer="sgd", learning_rate=0.01,
                                        kernel_initializer="he_normal", bias_initializer="random_normal(stddev=0.1)"),
                 "n_outputs": 3, "data": "multiclass"},
    # The Keras guide's two phases: frozen base, then the top 20 layers (BatchNorm frozen) at a low rate.
    "two_phase": {"config": default_head("binary", unfrozen=20, fine_tune_epochs=1, fine_tune_learning_rate=1e-4),
                  "n_outputs": 1, "data": "binary"},
    # labels='integer' with categorical cross-entropy: reproduced, so Keras refuses it.
    "integer_labels_cce": {"config": default_head("multiclass", loss="categorical_crossentropy", labels="integer"),
                           "n_outputs": 3, "data": "multiclass"},
}


def _run_one(script: Path, data_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HEADLAB_WEIGHTS": "none", "TF_CPP_MIN_LOG_LEVEL": "3",
           "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(script), str(data_dir)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Every script of RUNS generated, written and run (in parallel) on a tiny folder of PNGs."""
    tmp = tmp_path_factory.mktemp("codegen")
    csv_targets = {}
    data = {
        "binary": make_class_folders(tmp / "binary", {"cats": 6, "dogs": 18}),
        "multiclass": make_class_folders(tmp / "multiclass", {"circle": 8, "square": 8, "triangle": 8}),
    }
    for task in ("multilabel", "regression"):
        data[task], csv_targets[task] = make_csv_data(tmp / task, task)
    jobs = {}
    for name, run in RUNS.items():
        text = keras_script(run["config"], n_outputs=run["n_outputs"], input_size=SIZE, epochs=1, seed=0)
        script = tmp / "scripts" / name / script_filename(run["config"])
        script.parent.mkdir(parents=True)
        script.write_text(text)
        jobs[name] = (script, data[run["data"]], script.parent)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run_one, *job) for name, job in jobs.items()}
        results = {name: f.result() for name, f in futures.items()}
    return {"results": results, "targets": csv_targets}


def _ok(runs: dict, name: str) -> str:
    proc = runs["results"][name]
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def _outputs(stdout: str) -> tuple[float, float, float]:
    m = OUTPUTS_RE.search(stdout)
    assert m, stdout
    return tuple(float(v) for v in m.groups())


def _shape(stdout: str) -> tuple[int, ...]:
    m = re.search(r"-> shape \(([\d, ]+)\)", stdout)
    assert m, stdout
    return tuple(int(v) for v in m.group(1).split(",") if v.strip())


def test_binary_sigmoid_bce_runs(runs):
    out = _ok(runs, "binary")
    assert "Classes (in label order): ['cats', 'dogs']" in out
    assert re.search(r"^1/1 - .* loss: \S+ - val_loss: \S+$", out, re.M), out
    lo, hi, _ = _outputs(out)
    assert 0.0 <= lo <= hi <= 1.0
    assert _shape(out)[1:] == (1,)


def test_softmax_over_one_unit_always_outputs_one(runs):
    out = _ok(runs, "softmax_one_unit")
    assert _outputs(out) == (1.0, 1.0, 1.0)


def test_multiclass_softmax_sparse_cce_rows_sum_to_one(runs):
    out = _ok(runs, "multiclass")
    assert "['circle', 'square', 'triangle']" in out
    assert _shape(out)[1:] == (3,)
    lo, hi = (float(v) for v in ROW_SUMS_RE.search(out).groups())
    assert lo == pytest.approx(1.0, abs=1e-4) and hi == pytest.approx(1.0, abs=1e-4)


def test_multilabel_sigmoid_bce_with_log_prior_matches_head_lab(runs):
    out = _ok(runs, "multilabel")
    assert "Labels (in column order): ['red', 'green', 'blue']" in out
    assert _shape(out)[1:] == (3,)
    lo, hi, _ = _outputs(out)
    assert 0.0 <= lo <= hi <= 1.0
    y = runs["targets"]["multilabel"]
    expected = log_prior_bias("multilabel", "sigmoid", 3, y[script_train_split(len(y))])
    got = [float(v) for v in BIAS_RE.search(out).group(1).split(",")]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_regression_linear_mse_starts_at_the_training_mean(runs):
    out = _ok(runs, "regression")
    y = runs["targets"]["regression"]
    expected = log_prior_bias("regression", "linear", 1, y[script_train_split(len(y))])
    (got,) = [float(v) for v in BIAS_RE.search(out).group(1).split(",")]
    assert got == pytest.approx(float(expected[0]), rel=1e-5)
    _, _, mean = _outputs(out)
    assert mean == pytest.approx(got, abs=5.0)  # one epoch from the mean with random (near-constant) features


def test_hidden_dropout_unfrozen_uses_head_labs_cut(runs):
    out = _ok(runs, "finetune")
    m = CUT_RE.search(out)
    assert m, out
    from lib.backbones.features import find_cut
    from lib.backbones.registry import load_backbone

    cut = find_cut(load_backbone("mobilenet_v2", SIZE, "random").model, 20)
    assert (int(m.group(1)), int(m.group(2)), m.group(3)) == (cut.unfrozen_layers, 20, cut.layer_name)
    assert _shape(out)[1:] == (3,)


def test_two_phase_script_fits_twice_and_fine_tunes_what_head_lab_fine_tunes(runs):
    out = _ok(runs, "two_phase")
    from lib.backbones.features import find_cut
    from lib.backbones.registry import load_backbone
    from lib.heads.build import build_head

    config = RUNS["two_phase"]["config"]
    bb = load_backbone("mobilenet_v2", SIZE, "random")
    cut = find_cut(bb.model, 20)
    m = CUT_RE.search(out)
    assert m and (int(m.group(1)), m.group(3)) == (cut.unfrozen_layers, cut.layer_name), out
    # phase 1 is one epoch on the frozen base (only the head's Dense trains), phase 2 one more epoch
    phase1 = int(re.search(r"^Trainable parameters: ([\d,]+)$", out, re.M).group(1).replace(",", ""))
    phase2 = int(re.search(r"^Trainable parameters in phase 2: ([\d,]+)$", out, re.M).group(1).replace(",", ""))
    assert phase1 == int(bb.model.layers[-1].output.shape[-1]) + 1
    model, _, _ = build_head(config.phase2(), tuple(bb.model.layers[cut.index].output.shape[1:]), 1,
                             np.array([0, 1]), 0, bb.model, cut.index, freeze_batchnorm=True)
    assert phase2 == sum(int(np.prod(w.shape)) for w in model.trainable_weights)  # what Head Lab's phase 2 trains
    # Keras prints an "Epoch k/n" header only when n > 1: phase 1 (one epoch) has none, phase 2 goes on at 2
    assert len(re.findall(r"^1/1 - .* loss: \S+ - val_loss: \S+$", out, re.M)) == 2 and "\nEpoch 2/2\n" in out, out
    assert "keras.optimizers.Adam(learning_rate=0.0001)" in keras_script(config, n_outputs=1)


def test_integer_labels_with_cce_are_refused_as_in_head_lab(runs):
    proc = runs["results"]["integer_labels_cce"]
    assert proc.returncode != 0
    assert "must have the same shape" in proc.stderr, proc.stderr[-2000:]
    assert verdict_for(RUNS["integer_labels_cce"]["config"], 3).level == "error"


# ----------------------------------------------------------------------------------- static checks


def _sample_configs():
    """A broad sample: every task × units × activation × loss × from_logits × labels, with the
    other settings cycled through their values."""
    cycle = itertools.cycle(itertools.product(
        POOLINGS, OPTIMIZERS,
        ("glorot_uniform", "random_normal(stddev=2)", "zeros", "constant(value=0.5)", "orthogonal(gain=3)"),
        ("zeros", "log_prior", "constant(value=-1)", "random_normal(mean=1)", "ones"),
        ((), ((32, "relu"),), ((8, "gelu"), (4, "tanh"))), (0.0, 0.5), (0, 5, 40)))
    backbones = itertools.cycle(REGISTRY)
    for task in TASKS:
        n = {"binary": 1, "regression": 1, "multiclass": 4, "multilabel": 3}[task]
        natural = 2 if task == "binary" else n
        for units, act, loss, logits, labels in itertools.product(
                unit_choices(task, natural), ACTIVATIONS, LOSSES, (False, True), LABEL_FORMATS):
            pool, opt, k_init, b_init, hidden, dropout, unfrozen = next(cycle)
            cfg = HeadConfig(task=task, units=units, activation=act, loss=loss, from_logits=logits, labels=labels,
                             pooling=pool, optimizer=opt, kernel_initializer=k_init, bias_initializer=b_init,
                             hidden=hidden, dropout=dropout, unfrozen=unfrozen)
            yield cfg, n, next(backbones)


def test_every_sampled_script_compiles_and_is_standalone():
    seen = 0
    for cfg, n, backbone in _sample_configs():
        size = max(96, REGISTRY[backbone].min_size)
        text = keras_script(cfg, backbone=backbone, input_size=size, n_outputs=n,
                            label_names=tuple(f"c{i}" for i in range(max(n, 2 if cfg.task == "binary" else n))))
        compile(text, script_filename(cfg), "exec")
        if seen % 25 == 0:  # the AST walk is the slow part; a spread of scripts is enough
            tree = ast.parse(text)
            mods = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
            mods |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
            assert mods <= ALLOWED_IMPORTS, (mods, cfg)
            assert "lib" not in mods
        first = text.splitlines()[1]
        assert first.startswith(f"# Head Lab pairing verdict: {verdict_for(cfg, n, 'tensorflow').level.upper()}")
        seen += 1
    assert seen > 1000


def test_script_reproduces_the_configuration_as_written():
    cfg = HeadConfig(task="binary", units=1, activation="softmax", loss="binary_crossentropy", from_logits=True,
                     kernel_initializer="random_normal(stddev=3)", bias_initializer="constant(value=2)",
                     hidden=((64, "gelu"),), dropout=0.25, pooling="max", optimizer="rmsprop", learning_rate=0.05)
    text = keras_script(cfg, n_outputs=1, seed=7)
    assert "# Head Lab pairing verdict: ERROR" in text.splitlines()[1]
    assert 'keras.layers.Dense(\n    1, activation="softmax"' in text  # kept, not fixed
    assert "keras.losses.BinaryCrossentropy(from_logits=True)" in text
    assert "keras.optimizers.RMSprop(learning_rate=0.05)" in text
    assert "keras.initializers.RandomNormal(mean=0.0, stddev=3.0, seed=SEED + 101)" in text
    assert "keras.initializers.RandomNormal(mean=0.0, stddev=3.0, seed=SEED + 303)" in text
    assert "keras.initializers.Constant(value=2.0)" in text
    assert 'keras.layers.Dropout(0.25, seed=SEED + 7, name="dropout")' in text
    assert 'keras.layers.GlobalMaxPooling2D(name="pool")' in text
    assert "SEED = 7" in text and "keras.utils.set_random_seed(SEED)" in text
    assert "base.trainable = False" in text and "base(inputs, training=False)" in text
    assert 'label_mode="binary"' in text
    assert "keras.applications.MobileNetV2(" in text and "torchvision" in text
    assert 'os.environ.get("HEADLAB_WEIGHTS"' in text


@pytest.mark.parametrize(("config", "n", "label_mode"), [
    (default_head("binary"), 1, "binary"),
    (default_head("binary", activation="softmax", units=2, loss="categorical_crossentropy"), 1, "categorical"),
    (default_head("binary", labels="integer"), 1, "int"),
    (default_head("multiclass"), 5, "int"),
    (default_head("multiclass", labels="one_hot"), 5, "categorical"),
    (default_head("multiclass", loss="categorical_crossentropy"), 5, "categorical"),
])
def test_label_mode_follows_the_target_format(config, n, label_mode):
    assert f'label_mode="{label_mode}"' in keras_script(config, n_outputs=n)


def test_other_backbones_use_their_own_constructor_and_preprocessing():
    text = keras_script(default_head("binary"), backbone="mobilenet_v2_035", n_outputs=1)
    assert "keras.applications.MobileNetV2(" in text and "alpha=0.35" in text
    assert "keras.applications.mobilenet_v2.preprocess_input" in text
    text = keras_script(default_head("binary"), backbone="resnet50", input_size=224, n_outputs=1)
    assert "keras.applications.ResNet50(" in text and "keras.applications.resnet50.preprocess_input" in text
    assert "torchvision" not in text


def test_log_prior_code_matches_head_lab():
    rng = np.random.default_rng(3)
    cases = []
    for act in ("sigmoid", "softmax", "linear"):
        for units in (1, 2, 3):
            cases.append(("binary", act, units, 1, rng.integers(0, 2, 40)))
        for units in (1, 3, 4, 5):
            cases.append(("multiclass", act, units, 4, rng.integers(0, 4, 40)))
        for units in (1, 3):
            cases.append(("multilabel", act, units, 3, (rng.random((40, 3)) < 0.3).astype(np.float32)))
        cases.append(("regression", act, 2, 1, rng.uniform(-5, 50, 40).astype(np.float32)))
    for task, act, units, n, y in cases:
        cfg = HeadConfig(task=task, units=units, activation=act, bias_initializer="log_prior")
        code = log_prior_code(cfg, units, n)
        expected = log_prior_bias(task, act, units, y)
        if expected is None:
            assert code == "", (task, act, units)
            continue
        ns = {"np": np, "train_labels": y}
        exec(code, ns)
        np.testing.assert_allclose(ns["bias"], expected, rtol=1e-6, err_msg=str((task, act, units)))


def test_script_filename():
    assert script_filename(default_head("binary")) == "headlab_sigmoid_bce.py"
    assert script_filename(default_head("binary", activation="softmax", units=1)) == "headlab_softmax_1unit_bce.py"
    assert script_filename(default_head("multiclass", activation="linear", from_logits=True)) == \
        "headlab_linear_sparse_cce_logits.py"
    assert script_filename(default_head("multiclass", labels="one_hot")) == "headlab_softmax_sparse_cce_one_hot_labels.py"
    assert script_filename(default_head("regression", name="My head / v2!")) == "headlab_my_head_v2.py"


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="n_outputs"):
        keras_script(default_head("binary"), n_outputs=2)
    with pytest.raises(ConfigError, match="n_outputs"):
        keras_script(default_head("multiclass"), n_outputs=1)
    with pytest.raises(ConfigError, match="input_size"):
        keras_script(default_head("binary"), backbone="inception_v3", input_size=32, n_outputs=1)
    with pytest.raises(ConfigError, match="epochs"):
        keras_script(default_head("binary"), n_outputs=1, epochs=0)


def test_label_names_cannot_escape_comments():
    text = keras_script(default_head("multiclass"), n_outputs=3, label_names=("a\nimport lib", "b'\"", "c\r\\"))
    compile(text, "x.py", "exec")
    assert "\nimport lib" not in text
