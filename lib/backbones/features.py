"""Backbone features, computed once and cached on disk, and the cut points for partial fine-tuning.

The cache holds the backbone's activation at a cut point (the last spatial map when nothing is
unfrozen), so Flatten, GAP and max pooling all train from the same file, and a head with the top
N layers unfrozen trains only the part above the cut.

Only data with `cache_on_disk` (the sample datasets) is written: an upload's features — with
everything unfrozen, its preprocessed pixels, from which the images can be recovered — stay in
memory. The disk cache is bounded in bytes (Budget.feature_cache_mb): a read refreshes an entry's
modification time, and after each write the least recently used entries go first.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.backbones.profile import extraction_batch
from lib.backbones.registry import LoadedBackbone
from lib.common.budget import Budget
from lib.common.paths import atomic_write_bytes, cache_dir
from lib.data.taskdata import TaskData

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


_CUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its cuts (a model's graph never changes)


def _cuts_of(model) -> tuple[int, ...]:
    """single_tensor_cuts, remembered per model: every Train's cost check asks once per head setting
    (10 ms each for MobileNetV2, so 0.3 s for a batch of 30 sessions' sweeps)."""
    try:
        return _CUTS[model]
    except (KeyError, TypeError):
        pass
    cuts = tuple(single_tensor_cuts(model))
    with contextlib.suppress(TypeError):
        _CUTS[model] = cuts
    return cuts


def find_cut(model, unfrozen: int) -> Cut:
    """The cut that unfreezes at least `unfrozen` top layers, rounded down to a single-tensor point."""
    last = len(model.layers) - 1
    target = max(0, last - unfrozen)
    index = max(i for i in _cuts_of(model) if i <= target)
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


def compute_features(bb: LoadedBackbone, cut: Cut, images: np.ndarray, batch_size: int | None = None,
                     progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Resize, preprocess and run the frozen part of the backbone; float32 (N, h, w, c).

    batch_size (default: as many images as fit the extraction's memory budget, at most 64) does not
    change the features, only the memory the extraction takes at once.
    """
    import tensorflow as tf

    batch_size = batch_size or extraction_batch(bb.model, cut.index)

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
    """Features for every image of `data`, from the disk cache when a complete entry exists.

    Data without `cache_on_disk` (uploads) is never read from nor written to disk.
    """
    import time

    t0 = time.perf_counter()
    on_disk = use_cache and data.cache_on_disk
    path = cache_path(bb, cut, data)
    note = ""
    if on_disk and path.is_file():
        try:
            feats = np.load(path, allow_pickle=False)
            if feats.shape[0] == len(data.images):
                _touch(path)
                return FeatureResult(feats, True, "", time.perf_counter() - t0)
        except (OSError, ValueError) as e:  # a damaged entry is recomputed, never trusted
            log.warning("feature cache entry %s unreadable (%s); recomputing", path.name, e)
    feats = compute_features(bb, cut, data.images, progress=progress)
    if on_disk:
        budget = Budget.from_env().feature_cache_bytes
        buf = io.BytesIO()
        np.save(buf, feats, allow_pickle=False)
        if buf.tell() <= budget:  # an entry larger than the whole cache is not kept (nor evicts the rest)
            try:
                atomic_write_bytes(path, buf.getvalue())
            except OSError as e:  # disk full / read-only: train from memory and say so
                note = f"feature cache is off ({e.strerror or e}); features are kept in memory only"
            else:
                prune_cache(budget, keep=path)
    return FeatureResult(feats, False, note, time.perf_counter() - t0)


def _touch(path: Path) -> None:
    """Mark an entry as just used (its mtime is its place in the least-recently-used order)."""
    with contextlib.suppress(OSError):  # read-only cache, or pruned by another process: read anyway
        os.utime(path)


def prune_cache(budget_bytes: int, keep: Path | None = None) -> list[Path]:
    """Delete the least recently used feature files until the cache holds at most `budget_bytes`.

    `keep` (the entry just written) goes last. Safe with other processes sharing the cache: a file
    they are about to read may vanish, which they treat as a miss.
    """
    folder = cache_dir() / "features"
    entries = []
    try:
        for p in folder.glob("*.npy"):
            try:
                st = p.stat()
            except OSError:  # pruned by another process meanwhile
                continue
            entries.append((p == keep, st.st_mtime, st.st_size, p))
    except OSError:
        return []
    entries.sort(key=lambda e: (e[0], e[1]))  # oldest first, the one just written last
    total = sum(e[2] for e in entries)
    removed = []
    for _, _, size, p in entries:
        if total <= budget_bytes:
            break
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue
        total -= size
        removed.append(p)
    return removed


def cache_bytes() -> int:
    """Bytes held by the disk feature cache."""
    total = 0
    for p in (cache_dir() / "features").glob("*.npy"):
        try:
            total += p.stat().st_size
        except OSError:
            continue
    return total
