"""'Show Keras code': one head configuration as a standalone script a user can run outside Head Lab.

The script builds and trains exactly the model Head Lab trains for that configuration (backbone,
freezing, pooling, hidden layers, dropout, output layer with its initializers and seeds, loss,
optimizer, target format), but the plain Keras way: images from a folder, `model.fit`, `predict`.
Mismatched pairings are reproduced as they are, never fixed; the verdict from the pairing table
heads the script so the reader knows what to expect.

Generating a script needs no Keras import: everything is decided from the configuration here.
"""

from __future__ import annotations

import inspect
import re
import textwrap

from lib.backbones.features import single_tensor_cuts
from lib.backbones.registry import DEFAULT_BACKBONE, get_spec
from lib.common.errors import ConfigError
from lib.data.csv_labels import FILENAME_COLUMNS
from lib.heads.build import _KERNEL_CLASSES, _UNSEEDED
from lib.heads.config import HeadConfig
from lib.heads.pairings import target_format, verdict_for

# The seed offsets lib.heads.build.build_head gives each initializer, so the script starts from the
# same weights Head Lab does for the same seed.
HIDDEN_SEED_OFFSET = 101  # + layer index
DROPOUT_SEED_OFFSET = 7
BIAS_SEED_OFFSET = 202
OUTPUT_KERNEL_SEED_OFFSET = 303
LOG_PRIOR_EPS = 1e-3

_LOSS_CLASSES = {
    "binary_crossentropy": "BinaryCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "mse": "MeanSquaredError",
    "mae": "MeanAbsoluteError",
    "huber": "Huber",
}
_OPTIMIZER_CLASSES = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adamw": "AdamW"}
_POOLING_CLASSES = {"gap": "GlobalAveragePooling2D", "max": "GlobalMaxPooling2D", "flatten": "Flatten"}
_LOSS_FILE = {
    "binary_crossentropy": "bce",
    "categorical_crossentropy": "cce",
    "sparse_categorical_crossentropy": "sparse_cce",
    "mse": "mse",
    "mae": "mae",
    "huber": "huber",
}
# label_mode for keras.utils.image_dataset_from_directory per target format (class-folder tasks).
_LABEL_MODES = {"binary01": "binary", "integer": "int", "one_hot": "categorical"}


def script_filename(config: HeadConfig) -> str:
    """A file name for the script: the configuration's name, else activation, units and loss."""
    if config.name:
        slug = re.sub(r"[^a-z0-9]+", "_", config.name.lower()).strip("_")[:60]
        if slug:
            return f"headlab_{slug}.py"
    units = "" if config.units is None else f"_{config.units}unit{'s' if config.units != 1 else ''}"
    logits = "_logits" if config.from_logits else ""
    labels = "" if config.labels == "auto" else f"_{config.labels}_labels"
    return f"headlab_{config.activation}{units}_{_LOSS_FILE[config.loss]}{logits}{labels}.py"


def keras_script(config: HeadConfig, *, backbone: str = DEFAULT_BACKBONE, input_size: int = 96,
                 n_outputs: int, label_names: tuple[str, ...] = (), epochs: int = 20, seed: int = 0,
                 batch_size: int = 32) -> str:
    """A standalone, runnable Python script that builds and trains this configuration with plain Keras.

    Run it as `python SCRIPT DATA_DIR`; `--weights none` (or HEADLAB_WEIGHTS=none) builds the backbone
    with random weights, so it runs offline.
    """
    spec = get_spec(backbone)
    _check_args(config, spec, input_size, n_outputs, label_names, epochs, seed, batch_size)
    units = config.resolved_units(n_outputs)
    fmt = target_format(config.task, units, config.loss, config.labels)
    parts = [
        _header(config, spec, input_size, n_outputs, label_names, units, epochs, seed, batch_size),
        _imports_and_settings(config, input_size, epochs, seed, batch_size),
        _preprocessing(spec),
        _class_folder_data(config, n_outputs, label_names, fmt) if config.task in ("binary", "multiclass")
        else _csv_data(config, n_outputs, label_names, fmt),
        _backbone(spec),
        _freezing(config),
        _head(config, units, n_outputs),
        _training(config),
        *([_fine_tuning(config)] if config.two_phase else []),
        _prediction(config, units),
    ]
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


# ----------------------------------------------------------------------------------- checks


def _check_args(config, spec, input_size, n_outputs, label_names, epochs, seed, batch_size) -> None:
    if not isinstance(config, HeadConfig):
        raise ConfigError("keras_script needs a HeadConfig")
    for what, value, lo, hi in (("input_size", input_size, spec.min_size, 2048), ("epochs", epochs, 1, 100_000),
                                ("batch_size", batch_size, 1, 4096), ("seed", seed, 0, 2**31 - 1000)):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"{what} must be a whole number from {lo} to {hi} for {spec.title}; got {value!r}")
    natural = {"binary": (1, 1), "regression": (1, 1), "multiclass": (2, 4096), "multilabel": (2, 4096)}
    lo, hi = natural[config.task]
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, int) or not lo <= n_outputs <= hi:
        raise ConfigError(f"n_outputs is the {config.task} task's natural unit count "
                          f"({'1' if lo == hi else 'classes or labels, at least 2'}); got {n_outputs!r}")
    if not all(isinstance(n, str) for n in label_names):
        raise ConfigError("label_names must be strings")


# ----------------------------------------------------------------------------------- helpers


def _comment(text: str, width: int = 96, indent: str = "# ") -> list[str]:
    """Text as comment lines (control characters flattened so nothing escapes the comment)."""
    clean = re.sub(r"[\x00-\x1f\x7f\u2028\u2029\x85]+", " ", text)
    return textwrap.wrap(clean, width=width, initial_indent=indent, subsequent_indent=indent) or [indent.rstrip()]


def _flat(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029\x85]+", " ", text)


def _num(v: float) -> str:
    return repr(float(v))


def initializer_expr(name: str, params: dict[str, float], seed_expr: str) -> str:
    """The Keras expression Head Lab's make_initializer builds: explicit parameters and seed."""
    cls = _KERNEL_CLASSES[name]
    args = [f"{k}={_num(v)}" for k, v in params.items()]
    if cls not in _UNSEEDED:
        args.append(f"seed={seed_expr}")
    return f"keras.initializers.{cls}({', '.join(args)})"


def loss_expr(config: HeadConfig) -> str:
    cls = _LOSS_CLASSES[config.loss]
    if config.loss in ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"):
        return f"keras.losses.{cls}(from_logits={config.from_logits})"
    return f"keras.losses.{cls}()"


def optimizer_expr(config: HeadConfig) -> str:
    return f"keras.optimizers.{_OPTIMIZER_CLASSES[config.optimizer]}(learning_rate={config.learning_rate!r})"


def _n_classes(config: HeadConfig, n_outputs: int) -> int:
    return 2 if config.task == "binary" else n_outputs


# ----------------------------------------------------------------------------------- sections


def _header(config, spec, input_size, n_outputs, label_names, units, epochs, seed, batch_size) -> str:
    verdict = verdict_for(config, n_outputs, backend="tensorflow")
    worst = [s for s in verdict.symptoms if s]
    lines = _comment(f"Head Lab pairing verdict: {verdict.level.upper()} — {verdict.message}")
    if verdict.level != "ok":
        lines += _comment("This script reproduces the configuration as it is (nothing is fixed), so you "
                          "can see what it does. What to expect: " + " ".join(worst))
        lines += _comment("Knob(s) to turn: " + "; ".join(k for k in verdict.knobs if k != "—"))
    lines.append("#")
    lines += _comment(f"Head Lab configuration: {config.label()} ({config.task} task) — "
                      f"{_describe(config, units)}.")
    lines.append(f"# Head Lab head code (the app's ?h= link parameter): {config.to_url()}")
    title = f"keras.applications.{spec.constructor}" + (f" (alpha {spec.alpha:g})" if spec.alpha != 1.0 and spec.alpha else "")
    phases = (f"{epochs} epoch(s) on the frozen base, then {config.fine_tune_epochs} fine-tuning"
              if config.two_phase else f"{epochs} epoch(s)")
    lines += _comment(f"Backbone: {title} at {input_size}×{input_size} px; {phases}; "
                      f"batch size {batch_size}; seed {seed}.")
    lines.append("#")
    name = script_filename(config)
    lines.append(f"# Run:  python {name} DATA_DIR")
    lines.append(f"#       python {name} DATA_DIR --weights none   # or HEADLAB_WEIGHTS=none")
    lines += _comment("The second form builds the backbone with random weights: no download, fully "
                      "offline, but nothing pretrained to transfer.")
    lines += _data_layout_comment(config, n_outputs, label_names)
    lines += _comment("Needs only keras (3.x, TensorFlow backend), tensorflow and numpy. Generated by Head Lab.")
    return "#!/usr/bin/env python\n" + "\n".join(lines)


def _describe(config: HeadConfig, units: int) -> str:
    bits = [f"{config.pooling} pooling"]
    bits += [f"Dense({u}, {a})" for u, a in config.hidden]
    if config.dropout:
        bits.append(f"Dropout({config.dropout:g})")
    bits.append(f"Dense({units}, {config.activation})")
    out = " → ".join(bits)
    out += (f"; loss {config.loss} (from_logits={config.from_logits}), labels {config.labels}; "
            f"{config.optimizer} lr {config.learning_rate:g}; kernel init {config.kernel_initializer}, "
            f"bias init {config.bias_initializer}; "
            + ("frozen backbone" if config.unfrozen == 0 else f"top {config.unfrozen} backbone layers unfrozen"))
    if config.two_phase:
        out = out.replace(f"top {config.unfrozen} backbone layers unfrozen",
                          f"two phases: frozen backbone, then the top {config.unfrozen} backbone layers (BatchNorm "
                          f"kept frozen) fine-tuned for {config.fine_tune_epochs} epoch(s) at lr "
                          f"{config.fine_tune_learning_rate:g}")
    return out


def _data_layout_comment(config, n_outputs, label_names) -> list[str]:
    names = [_flat(n) for n in label_names]
    if config.task == "binary":
        which = f" (Head Lab's data: negative {names[0]!r}, positive {names[1]!r})" if len(names) == 2 else ""
        return _comment("DATA_DIR holds one folder per class, exactly two: DATA_DIR/<class>/<image>. Classes "
                        "are taken in alphabetical order: the first is the negative class (0), the second "
                        f"the positive one (1){which}.")
    if config.task == "multiclass":
        which = f" Head Lab's data had {n_outputs} classes" + (f": {', '.join(names)}." if names else ".")
        return _comment("DATA_DIR holds one folder per class: DATA_DIR/<class>/<image>, classes in "
                        "alphabetical order." + which)
    if config.task == "multilabel":
        which = f" Head Lab's data had {n_outputs} labels" + (f": {', '.join(names)}." if names else ".")
        return _comment("DATA_DIR holds the images and DATA_DIR/labels.csv with a 'filename' column (paths "
                        "relative to DATA_DIR) and one 0/1 column per label (or a single column of "
                        "';'-separated label names, e.g. cat;dog)." + which)
    which = f" (Head Lab's data: {names[0]!r})" if names else ""
    return _comment("DATA_DIR holds the images and DATA_DIR/labels.csv with a 'filename' column (paths "
                    f"relative to DATA_DIR) and one numeric target column{which}.")


def _imports_and_settings(config, input_size, epochs, seed, batch_size) -> str:
    csv_import = "import csv\n" if config.task in ("multilabel", "regression") else ""
    ft_setting = ft_arg = ""
    if config.two_phase:
        ft_setting = (f"  # phase 1: the head on the frozen base\nFINE_TUNE_EPOCHS = {config.fine_tune_epochs}"
                      "  # phase 2: the top layers unfrozen too")
        ft_arg = '\nparser.add_argument("--fine-tune-epochs", type=int, default=FINE_TUNE_EPOCHS)'
    return f'''
import argparse
{csv_import}import os

os.environ["KERAS_BACKEND"] = "tensorflow"  # as in Head Lab; the verdict above describes TensorFlow

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

IMAGE_SIZE = {input_size}
BATCH_SIZE = {batch_size}
EPOCHS = {epochs}{ft_setting}
SEED = {seed}
VALIDATION_FRACTION = 0.25  # Head Lab holds out ~25% too (its own fixed, stratified split)

parser = argparse.ArgumentParser(description="Train one Head Lab head configuration with plain Keras.")
parser.add_argument("data_dir", help="folder of images (see the layout at the top of this script)")
parser.add_argument("--weights", default=os.environ.get("HEADLAB_WEIGHTS", "imagenet"),
                    help="imagenet (Keras downloads them once) or none: random weights, fully offline")
parser.add_argument("--epochs", type=int, default=EPOCHS){ft_arg}
args = parser.parse_args()
DATA_DIR = args.data_dir
WEIGHTS = None if args.weights.strip().lower() in ("none", "random", "") else "imagenet"

keras.utils.set_random_seed(SEED)  # Python, NumPy and TensorFlow seeds in one call
'''


def _preprocessing(spec) -> str:
    if spec.bundled:
        note = ("# The backbone's own preprocessing, for Keras's ImageNet MobileNetV2: pixels scaled to [-1, 1].\n"
                "# (Head Lab's bundled port of torchvision's weights is normalised the torch way instead:\n"
                "# keras.applications.imagenet_utils.preprocess_input(x, mode=\"torch\").)\n")
    else:
        note = "# The backbone's own preprocessing, as its ImageNet weights expect.\n"
    return f"{note}preprocess_input = keras.applications.{spec.preprocess_module}.preprocess_input"


def _class_folder_data(config, n_outputs, label_names, fmt) -> str:
    label_mode = _LABEL_MODES[fmt]
    n_classes = _n_classes(config, n_outputs)
    why = {
        "binary": "one float column of 0/1, what a one-unit binary head expects",
        "int": "one integer class index per image",
        "categorical": "one-hot rows, one column per class",
    }[label_mode]
    if config.labels != "auto":
        why += f" (labels={config.labels!r} forces this format, as in Head Lab)"
    prepare_body = ["    images = preprocess_input(images)"]
    if label_mode == "int":
        prepare_body.append("    labels = tf.reshape(labels, (-1, 1))  # Head Lab feeds class indices as one column")
        if config.loss != "sparse_categorical_crossentropy":
            prepare_body.append("    labels = tf.cast(labels, tf.float32)")
    prepare_body.append("    return images, labels")
    prepare = "\n".join(prepare_body)
    log_prior = ""
    if config.bias_init()[0] == "log_prior":
        log_prior = '''
# Training labels as class indices (from the file paths: no image is decoded), for the log_prior bias.
train_labels = np.array([class_names.index(os.path.relpath(p, DATA_DIR).split(os.sep)[0])
                         for p in train_ds.file_paths])
'''
    return f'''
# ---- Data: one folder per class, like a Head Lab upload --------------------------------------
# label_mode="{label_mode}": {why}.
train_ds, val_ds = keras.utils.image_dataset_from_directory(
    DATA_DIR, labels="inferred", label_mode="{label_mode}", validation_split=VALIDATION_FRACTION,
    subset="both", seed=SEED, image_size=(IMAGE_SIZE, IMAGE_SIZE), batch_size=BATCH_SIZE)
class_names = train_ds.class_names
N_CLASSES = {n_classes}
if len(class_names) != N_CLASSES:
    print(f"Note: Head Lab's data had {{N_CLASSES}} classes; {{DATA_DIR}} has {{len(class_names)}}.")
print(f"Classes (in label order): {{class_names}}; {{len(train_ds.file_paths)}} training and "
      f"{{len(val_ds.file_paths)}} validation images")
{log_prior}

def prepare(images, labels):
{prepare}


train_ds = train_ds.map(prepare).prefetch(tf.data.AUTOTUNE)
val_ds = val_ds.map(prepare).prefetch(tf.data.AUTOTUNE)
'''


def _csv_data(config, n_outputs, label_names, fmt) -> str:
    if config.task == "multilabel":
        read_targets = f'''
if len(label_columns) == 1:  # one column of ';'-separated label names, e.g. "cat;dog"
    sets = [{{s.strip() for s in r[label_columns[0]].split(";") if s.strip()}} for r in rows]
    label_names = sorted(set().union(*sets))
    y = np.array([[float(n in s) for n in label_names] for s in sets], np.float32)
else:  # one 0/1 column per label
    label_names = label_columns
    y = np.array([[float(r[c].strip().lower() in ("1", "1.0", "true")) for c in label_columns]
                  for r in rows], np.float32)
N_LABELS = {n_outputs}
if len(label_names) != N_LABELS:
    print(f"Note: Head Lab's data had {{N_LABELS}} labels; {{DATA_DIR}} has {{len(label_names)}}.")
print(f"Labels (in column order): {{label_names}}")
'''
    else:
        read_targets = '''
(target_column,) = label_columns  # exactly one numeric column, e.g. "weight (kg)"
y = np.array([float(r[target_column]) for r in rows], np.float32)
print(f"Target {target_column!r}: {y.min():g} to {y.max():g}, mean {y.mean():g}")
'''
    encode = {
        "value": "targets = y.reshape(-1, 1)  # one number per image",
        "multi_hot": "targets = y  # one 0/1 column per label",
        "invalid": ("# labels='integer' on multi-label data, as Head Lab reproduces it: the index of the first\n"
                    "# positive label per image (an image with several labels cannot be one integer).\n"
                    "targets = np.argmax(y, axis=1).astype(np.int32).reshape(-1, 1)"),
    }[fmt]
    log_prior = "train_labels = y[train_index]  # for the log_prior bias\n" if config.bias_init()[0] == "log_prior" else ""
    filename_columns = ", ".join(f'"{c}"' for c in FILENAME_COLUMNS)  # the names a Head Lab upload accepts
    return f'''
# ---- Data: images plus labels.csv, like a Head Lab upload ------------------------------------
FILENAME_COLUMNS = ({filename_columns})
with open(os.path.join(DATA_DIR, "labels.csv"), newline="", encoding="utf-8-sig") as f:
    rows = list(csv.DictReader(f))
filename_column = next(c for c in rows[0] if c.strip().lower() in FILENAME_COLUMNS)
label_columns = [c for c in rows[0] if c != filename_column]
paths = np.array([os.path.join(DATA_DIR, r[filename_column].strip()) for r in rows])
{read_targets.strip()}
{encode}

# A seeded random split (Head Lab's own split is stratified; sizes match, the members may not).
order = np.random.default_rng(SEED).permutation(len(paths))
n_val = max(1, round(VALIDATION_FRACTION * len(paths)))
val_index, train_index = order[:n_val], order[n_val:]
{log_prior}print(f"{{len(train_index)}} training and {{len(val_index)}} validation images")


def load_image(path):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return tf.image.resize(image, (IMAGE_SIZE, IMAGE_SIZE))  # float32 0..255, stretched like Keras's loader


def make_dataset(index, shuffle):
    ds = tf.data.Dataset.from_tensor_slices((paths[index], targets[index]))
    if shuffle:
        ds = ds.shuffle(len(index), seed=SEED)  # a new order every epoch
    ds = ds.map(lambda p, t: (load_image(p), t)).batch(BATCH_SIZE)
    return ds.map(lambda images, t: (preprocess_input(images), t)).prefetch(tf.data.AUTOTUNE)


train_ds = make_dataset(train_index, shuffle=True)
val_ds = make_dataset(val_index, shuffle=False)
'''


def _backbone(spec) -> str:
    alpha = f", alpha={spec.alpha!r}" if spec.alpha is not None and not spec.bundled else ""
    if spec.bundled:
        note = (
            "# Head Lab uses torchvision's ImageNet MobileNetV2 weights, ported to Keras and loaded offline\n"
            "# (same layers and layer names as this model). Here stock keras.applications.MobileNetV2 is used:\n"
            "# Keras downloads its own ImageNet weights (a different training run, so numbers will differ a\n"
            "# little); --weights none builds it with random weights instead.\n"
        )
    else:
        note = "# Keras downloads the ImageNet weights once (to ~/.keras/models); --weights none uses random ones.\n"
    return f'''
# ---- Backbone ---------------------------------------------------------------------------------
{note.rstrip()}
base = keras.applications.{spec.constructor}(
    include_top=False, weights=WEIGHTS, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3){alpha})
'''


def _cut_code(config) -> str:
    """Head Lab's cut rule as source, and the cut for UNFROZEN (sets `last` and `cut`)."""
    return f'''
UNFROZEN = {config.unfrozen}


{_CUTS_SOURCE}

last = len(base.layers) - 1
cut = max(i for i in single_tensor_cuts(base) if i <= max(0, last - UNFROZEN))
'''


# The generated script must run on its own, so it carries Head Lab's cut rule as source text taken
# from lib/backbones/features.py itself (one definition, never a drifting copy).
_CUTS_SOURCE = inspect.getsource(single_tensor_cuts).rstrip()


def _freezing(config) -> str:
    if config.unfrozen == 0 or config.two_phase:  # a two-phase head starts on the frozen base
        return '''
# Freeze the whole backbone BEFORE compiling, so only the head trains, and call it with training=False
# so its BatchNorm layers keep their ImageNet statistics.
base.trainable = False
inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), name="image")  # preprocessed images
x = base(inputs, training=False)
'''
    return f'''
# Fine-tune the top of the backbone, freezing everything below Head Lab's cut. Head Lab rounds
# "unfrozen" down to a block boundary: the cut goes after a layer whose output alone carries the
# graph forward (no skip connection jumps over it), so the frozen part is one piece.
{_cut_code(config).strip()}
base.trainable = True
for layer in base.layers[: cut + 1]:
    layer.trainable = False  # frozen explicitly: weights and BatchNorm statistics never change
print(f"Fine-tuning the top {{last - cut}} layers (asked for {{UNFROZEN}}), "
      f"cut after {{base.layers[cut].name!r}}")
inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), name="image")  # preprocessed images
# No training=False here: as in Head Lab, the unfrozen layers' BatchNorm uses batch statistics while
# fitting (a frozen BatchNorm layer always runs in inference mode in Keras 3).
x = base(inputs)
'''


def log_prior_code(config: HeadConfig, units: int, n_outputs: int) -> str:
    """Python that sets `bias` from `train_labels` as lib.heads.build.log_prior_bias does, or '' when
    the log-prior bias does not fit this many units (Head Lab then uses zeros)."""
    eps = LOG_PRIOR_EPS
    if config.task == "regression":
        return ("# log_prior on a regression head: start every output at the training target mean.\n"
                f"bias = np.full({units}, float(np.mean(train_labels)), np.float32)\n")
    if config.task == "multilabel":
        if units != n_outputs:
            return ""
        return ("# log_prior: each label's output starts at log(p / (1 - p)) of its training frequency p.\n"
                f"p = np.clip(train_labels.mean(axis=0), {eps!r}, 1 - {eps!r})\n"
                "bias = np.log(p / (1 - p)).astype(np.float32)\n")
    n_classes = _n_classes(config, n_outputs)
    head = (f"freq = np.bincount(train_labels.astype(int), minlength={n_classes}) / len(train_labels)\n"
            f"freq = np.clip(freq, {eps!r}, 1 - {eps!r})  # training class frequencies\n")
    if units == 1:
        which = "1" if config.task == "binary" else "0"
        what = "the positive class" if config.task == "binary" else "class 0 (the first class)"
        return (f"# log_prior: the one output starts at log(p / (1 - p)), p = training frequency of {what}.\n"
                + head + f"p = freq[{which}]\nbias = np.array([np.log(p / (1 - p))], np.float32)\n")
    if units != n_classes:
        return ""
    if config.activation == "softmax":
        return ("# log_prior: softmax outputs start at the training class frequencies (bias = log frequency).\n"
                + head + "bias = np.log(freq).astype(np.float32)\n")
    return ("# log_prior: each output starts at log(p / (1 - p)) of its class's training frequency.\n"
            + head + "bias = np.log(freq / (1 - freq)).astype(np.float32)\n")


def _head(config, units, n_outputs) -> str:
    k_name, k_params = config.kernel_init()
    b_name, b_params = config.bias_init()
    lines = ["# ---- Head: exactly as Head Lab builds it " + "-" * 55]
    pool = _POOLING_CLASSES[config.pooling]
    lines.append(f'x = keras.layers.{pool}(name="pool")(x)')
    for i, (h_units, h_act) in enumerate(config.hidden):
        init = initializer_expr(k_name, k_params, f"SEED + {HIDDEN_SEED_OFFSET + i}")
        lines.append(f'x = keras.layers.Dense(\n    {h_units}, activation="{h_act}", name="hidden_{i}",\n'
                     f'    kernel_initializer={init})(x)')
    if config.dropout > 0:
        lines.append(f'x = keras.layers.Dropout({config.dropout!r}, seed=SEED + {DROPOUT_SEED_OFFSET}, '
                     f'name="dropout")(x)')
    prior = ""
    if b_name == "log_prior":
        prior = log_prior_code(config, units, n_outputs)
        if prior:
            bias_init = "keras.initializers.Zeros()"
            lines.append("# bias_initializer log_prior: zeros here, set from the training labels once built.")
        else:
            bias_init = "keras.initializers.Zeros()"
            lines += _comment("bias_initializer log_prior does not fit this many output units; Head Lab "
                              "uses zeros, and so does this script.")
    else:
        bias_init = initializer_expr(b_name, b_params, f"SEED + {BIAS_SEED_OFFSET}")
    if config.activation == "softmax" and units == 1:
        lines.append("# Softmax over ONE unit (kept on purpose, as configured): it always outputs 1.0 (to float precision).")
    kernel_init = initializer_expr(k_name, k_params, f"SEED + {OUTPUT_KERNEL_SEED_OFFSET}")
    lines.append(
        f'output_layer = keras.layers.Dense(\n'
        f'    {units}, activation="{config.activation}", name="output",\n'
        f'    kernel_initializer={kernel_init},\n'
        f'    bias_initializer={bias_init})\n'
        "outputs = output_layer(x)\n"
        'model = keras.Model(inputs, outputs, name="headlab")')
    if prior:
        lines.append(prior.rstrip("\n"))
        lines.append("output_layer.bias.assign(bias)\n"
                     'print(f"log_prior output bias: {[round(float(b), 6) for b in bias]}")')
    return "\n".join(lines)


def _training(config) -> str:
    return f'''
# ---- Train ------------------------------------------------------------------------------------
# jit_compile=False: Head Lab runs plain TensorFlow graphs; Keras's default on TensorFlow compiles the
# whole model with XLA, which is slow to start on a CPU and may round a little differently.
model.compile(optimizer={optimizer_expr(config)},
              loss={loss_expr(config)}, jit_compile=False)
n_trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
print(f"Trainable parameters: {{n_trainable:,}}")
history = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, verbose=2)
'''


def _fine_tuning(config) -> str:
    """Phase 2 of the Keras transfer-learning guide's recipe, on the model phase 1 trained."""
    return f'''
# ---- Phase 2: fine-tune the top of the backbone (the Keras transfer-learning guide's recipe) ----------
# The head is trained now, so unfreezing no longer sends a random head's large gradients into the
# pretrained layers. Head Lab rounds "unfrozen" down to a block boundary: the cut goes after a layer whose
# output alone carries the graph forward (no skip connection jumps over it).
{_cut_code(config).strip()}
base.trainable = True
for layer in base.layers[: cut + 1]:
    layer.trainable = False  # below the cut: frozen, as in phase 1
for layer in base.layers[cut + 1:]:
    # BatchNorm stays frozen, which in Keras 3 also runs it in inference mode (ImageNet statistics kept).
    # The training=False given when the model was built does not do that once the base is trainable:
    # fit() calls the model with training=True, and Keras 3 passes that on to the base.
    if isinstance(layer, keras.layers.BatchNormalization):
        layer.trainable = False
print(f"Fine-tuning the top {{last - cut}} layers (asked for {{UNFROZEN}}), "
      f"cut after {{base.layers[cut].name!r}}")
# Recompile: the new trainable flags take effect, with a new optimizer at the low fine-tuning rate.
model.compile(optimizer={optimizer_expr(config.phase2())},
              loss={loss_expr(config)}, jit_compile=False)
n_trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
print(f"Trainable parameters in phase 2: {{n_trainable:,}}")
fine_tune_history = model.fit(train_ds, validation_data=val_ds, initial_epoch=args.epochs,
                              epochs=args.epochs + args.fine_tune_epochs, verbose=2)
'''


def _prediction(config, units) -> str:
    probs = ""
    if config.from_logits and config.activation == "linear" and config.loss in (
            "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"):
        to_prob = ("keras.ops.sigmoid" if config.loss == "binary_crossentropy"
                   else "keras.ops.softmax")
        probs = f'''
# from_logits=True with a linear output: predict() returns logits; the loss applied this for training.
probabilities = np.asarray({to_prob}(outputs))
print(f"as probabilities: min={{probabilities.min():.6g}} max={{probabilities.max():.6g}} "
      f"mean={{probabilities.mean():.6g}}")
'''
    sums = ""
    if units > 1 and config.task != "regression":
        sums = '''
row_sums = outputs.sum(axis=1)
print(f"row sums: min={row_sums.min():.6g} max={row_sums.max():.6g}")
'''
    return f'''
# ---- What predict() returns -------------------------------------------------------------------
images, _ = next(iter(val_ds))
outputs = model.predict(images[:8], verbose=0)
print(f"predict() on {{len(outputs)}} validation images -> shape {{outputs.shape}}")
print(f"outputs: min={{outputs.min():.6g}} max={{outputs.max():.6g}} mean={{outputs.mean():.6g}}")
{sums.strip()}
{probs.strip()}
print(np.round(outputs[:4], 4))
'''.replace("\n\n\n", "\n").replace("\n\n", "\n")
