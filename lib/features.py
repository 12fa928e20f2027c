"""Backbone features, computed once and cached on disk, and the cut points for partial fine-tuning.

The cache holds the backbone's activation at a cut point (the last spatial map when nothing is
unfrozen), so Flatten, GAP and max pooling all train from the same file, and a head with the top
N layers unfrozen trains only the part above the cut.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.backbones import LoadedBackbone
from lib.paths import atomic_write_bytes, cache_dir
from lib.taskdata import TaskData

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Cut:
    """Where the frozen part ends: layers[index] is the last frozen layer."""

    index: int
    layer_name: str
    unfrozen_layers: int  # layers above the cut (what actually trains)
    requested: int

    def describe(self) -> str:
        if self.unfrozen_layers == 0:
            return "frozen backbone"
        if self.index == 0:
            return f"whole backbone trainable ({self.unfrozen_layers} layers)"
        extra = "" if self.unfrozen_layers == self.requested else f" (asked for {self.requested}; rounded to a block boundary)"
        return f"top {self.unfrozen_layers} layers unfrozen, cut after '{self.layer_name}'{extra}"


def single_tensor_cuts(model) -> list[int]:
    """Indices i of model.layers where the graph passes through layers[i]'s output alone.

    A cut after i is valid when no tensor made before layer i is still consumed after it.
    """
    layers = model.layers
    producer = {id(layer.output): i for i, layer in enumerate(layers)}
    last_use = list(range(len(layers)))
    for j, layer in enumerate(layers):
        if j == 0:
            continue
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        for t in inputs:
            p = producer.get(id(t))
            if p is not None:
                last_use[p] = max(last_use[p], j)
    cuts, reach = [], 0
    for i in range(len(layers)):
        if reach <= i:
            cuts.append(i)
        reach = max(reach, last_use[i])
    return [i for i in cuts if len(layers[i].output.shape) == 4]  # cut only at spatial maps


def find_cut(model, unfrozen: int) -> Cut:
    """The cut that unfreezes at least `unfrozen` top layers, rounded down to a single-tensor point."""
    last = len(model.layers) - 1
    target = max(0, last - unfrozen)
    index = max(i for i in single_tensor_cuts(model) if i <= target)
    return Cut(index, model.layers[index].name, last - index, unfrozen)


def cache_path(bb: LoadedBackbone, cut: Cut, data: TaskData) -> Path:
    """The cache file for these features, named by a hash of everything that determines them."""
    import keras

    parts = [FORMAT_VERSION, bb.name, bb.weights_id, bb.size, cut.layer_name, data.fingerprint, keras.__version__]
    return cache_dir() / "features" / f"{hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]}.npy"


def _extractor(bb: LoadedBackbone, cut: Cut):
    import keras

    model = bb.model
    if cut.index == len(model.layers) - 1:
        return model
    return keras.Model(model.input, model.layers[cut.index].output)


def compute_features(bb: LoadedBackbone, cut: Cut, images: np.ndarray, batch_size: int = 64,
                     progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Resize, preprocess and run the frozen part of the backbone; float32 (N, h, w, c)."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # the last, smaller batch retraces once; not worth a notice
    extractor = _extractor(bb, cut)

    @tf.function(reduce_retracing=True)
    def run(x):
        x = tf.image.resize(tf.cast(x, tf.float32), (bb.size, bb.size))
        return extractor(bb.preprocess(x), training=False)

    out = []
    n = len(images)
    for start in range(0, n, batch_size):
        out.append(run(images[start:start + batch_size]).numpy())
        if progress:
            progress(min(1.0, (start + batch_size) / n))
    return np.concatenate(out).astype(np.float32, copy=False)


@dataclass
class FeatureResult:
    features: np.ndarray
    cached: bool  # read from disk
    cache_note: str  # "" when the cache works, else why it is off
    seconds: float


def get_features(bb: LoadedBackbone, cut: Cut, data: TaskData, use_cache: bool = True,
                 progress: Callable[[float], None] | None = None) -> FeatureResult:
    """Features for every image of `data`, from the disk cache when a complete entry exists."""
    import time

    t0 = time.perf_counter()
    path = cache_path(bb, cut, data)
    note = ""
    if use_cache and path.is_file():
        try:
            feats = np.load(path, allow_pickle=False)
            if feats.shape[0] == len(data.images):
                return FeatureResult(feats, True, "", time.perf_counter() - t0)
        except (OSError, ValueError) as e:  # a damaged entry is recomputed, never trusted
            log.warning("feature cache entry %s unreadable (%s); recomputing", path.name, e)
    feats = compute_features(bb, cut, data.images, progress=progress)
    if use_cache:
        buf = io.BytesIO()
        np.save(buf, feats, allow_pickle=False)
        try:
            atomic_write_bytes(path, buf.getvalue())
        except OSError as e:  # disk full / read-only: train from memory and say so
            note = f"feature cache is off ({e.strerror or e}); features are kept in memory only"
    return FeatureResult(feats, False, note, time.perf_counter() - t0)
