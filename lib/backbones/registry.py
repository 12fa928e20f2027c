"""Registry of pretrained backbones, their weights status (decided offline), and loading them.

Status is decided without touching the network: Keras's weight file under $KERAS_HOME/models with
the hash Keras itself checks, or the bundled port of torchvision's ImageNet MobileNetV2.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lib.common.errors import BackboneError

BUNDLED = "imagenet (bundled)"
CACHED = "imagenet (cached)"
# Not on disk. The app never downloads at run time ('auto' weights fall back to random offline, and a
# workshop server usually has no internet), so this is what a participant actually gets: random
# weights. Saying "will download" here promised a download that could not happen.
NOT_CACHED = "random (ImageNet weights not on this server)"
WILL_DOWNLOAD = NOT_CACHED  # the old name, kept for callers; it no longer claims a download
RANDOM = "random (no weights available)"

SIZES = (32, 64, 96, 128, 160, 192, 224, 299)


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone: how to build it, preprocess for it and find its ImageNet weights."""

    name: str
    title: str
    constructor: str  # attribute of keras.applications
    preprocess_module: str  # keras.applications.<module>.preprocess_input
    min_size: int
    default_size: int
    alpha: float | None = None
    bundled: bool = False  # ImageNet weights come from a package, not from Keras's download

    def sizes(self) -> tuple[int, ...]:
        return tuple(s for s in SIZES if s >= self.min_size)

    def weight_file(self, size: int) -> tuple[str, str | None] | None:
        """(file name under $KERAS_HOME/models, hash Keras checks) for the no-top weights, or None."""
        from keras.src.applications import (  # hash tables: Keras is the one source
            efficientnet,
            resnet,
        )

        if self.constructor == "MobileNetV2":
            if size not in (96, 128, 160, 192, 224):
                return None  # Keras publishes no weights for other sizes
            return (f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(self.alpha)}_{size}_no_top.h5", None)
        if self.constructor == "ResNet50":
            return ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", resnet.WEIGHTS_HASHES["resnet50"][1])
        if self.constructor == "VGG16":
            return ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc")
        if self.constructor == "InceptionV3":
            return ("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", "bcbd6486424b2319ff4ef7d526e38f63")
        if self.constructor == "EfficientNetB0":
            return ("efficientnetb0_notop.h5", efficientnet.WEIGHTS_HASHES["b0"][1])
        return None


REGISTRY: dict[str, BackboneSpec] = {s.name: s for s in [
    BackboneSpec("mobilenet_v2", "MobileNetV2 (ImageNet, bundled)", "MobileNetV2", "mobilenet_v2", 32, 96,
                 alpha=1.0, bundled=True),
    BackboneSpec("mobilenet_v2_035", "MobileNetV2 α=0.35 (tiny)", "MobileNetV2", "mobilenet_v2", 32, 96, alpha=0.35),
    BackboneSpec("resnet50", "ResNet50", "ResNet50", "resnet50", 32, 224),
    BackboneSpec("vgg16", "VGG16", "VGG16", "vgg16", 32, 224),
    BackboneSpec("inception_v3", "InceptionV3", "InceptionV3", "inception_v3", 75, 299),
    BackboneSpec("efficientnet_b0", "EfficientNetB0", "EfficientNetB0", "efficientnet", 32, 224),
]}
DEFAULT_BACKBONE = "mobilenet_v2"


def get_spec(name: str) -> BackboneSpec:
    """The registry entry, or a BackboneError that lists the valid names."""
    if name not in REGISTRY:
        raise BackboneError(f"unknown backbone {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def keras_models_dir() -> Path:
    """Where Keras caches downloaded weights: $KERAS_HOME/models (default ~/.keras/models)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def _file_matches(path: Path, file_hash: str | None) -> bool:
    if not path.is_file():
        return False
    if file_hash is None:
        return True
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256" if len(file_hash) == 64 else "md5").hexdigest() == file_hash


def _bundled_available() -> bool:
    try:
        from lib.backbones import mobilenet_port
    except ImportError:
        return False
    return mobilenet_port.checkpoint_path() is not None


@functools.lru_cache(maxsize=64)
def weights_status(name: str, size: int | None = None) -> str:
    """The ImageNet weights status for a backbone at an input size, without any network access."""
    spec = get_spec(name)
    size = size or spec.default_size
    if spec.bundled and _bundled_available():
        return BUNDLED
    wf = spec.weight_file(size)
    if wf is None:
        return RANDOM
    if _file_matches(keras_models_dir() / wf[0], wf[1]):
        return CACHED
    return NOT_CACHED


def is_random(status: str) -> bool:
    """Whether a weights status (or LoadedBackbone.weights) means the backbone's features are random."""
    return status.startswith("random")


def status_advice(status: str, name: str = "NAME") -> str:
    """What a user can do about a weights status, as plain text (shown in tables, not as Markdown)."""
    return {
        BUNDLED: "Ready offline: ImageNet weights ship with Head Lab's set-up.",
        CACHED: "Ready offline: ImageNet weights are in the Keras cache.",
        NOT_CACHED: "Trains with random weights (not transfer learning). To get ImageNet weights, run "
                    f"\"python -m lib weights fetch {name}\" on this server while it has internet access.",
        RANDOM: "No ImageNet weights for this size: features are random, so expect little transfer.",
    }[status]


def torch_preprocess(x):
    """torchvision's normalisation (the bundled port was trained with it); works on tensors in a graph."""
    from keras.applications import imagenet_utils

    return imagenet_utils.preprocess_input(x, mode="torch")


def preprocess_fn(name: str) -> Callable:
    """The backbone's own preprocess_input (the bundled port normalises the torch way)."""
    spec = get_spec(name)
    if spec.bundled:
        return torch_preprocess
    import importlib

    module = importlib.import_module(f"keras.applications.{spec.preprocess_module}")
    return module.preprocess_input


@dataclass(frozen=True)
class LoadedBackbone:
    """A built backbone (no top, last spatial feature map as output) and what it was built with."""

    name: str
    size: int
    weights: str  # the status actually used: BUNDLED, CACHED or a 'random ...' string
    model: object  # keras.Model
    preprocess: Callable
    note: str = ""

    @property
    def weights_id(self) -> str:
        return "imagenet" if self.weights.startswith("imagenet") else "random"


def _keras_constructor(spec: BackboneSpec, size: int) -> tuple[Callable, dict]:
    """keras.applications' constructor for a spec, and its no-top arguments at an input size."""
    import keras

    kwargs = {"include_top": False, "input_shape": (size, size, 3)}
    if spec.alpha is not None:
        kwargs["alpha"] = spec.alpha
    return getattr(keras.applications, spec.constructor), kwargs


@functools.lru_cache(maxsize=8)
def load_backbone(name: str, size: int, weights: str = "auto") -> LoadedBackbone:
    """Build a backbone at an input size. weights: 'auto' (ImageNet if available offline, else random),
    'imagenet' (may download; a failure falls back to random with a note) or 'random'.

    Shared across sessions in one process: never train these layers in place.
    """
    spec = get_spec(name)
    if size not in spec.sizes():
        raise BackboneError(f"{spec.title} takes input sizes {', '.join(map(str, spec.sizes()))}; got {size}")
    if weights not in ("auto", "imagenet", "random"):
        raise BackboneError("weights must be auto, imagenet or random")

    status = weights_status(name, size)
    note = ""
    if spec.bundled and status == BUNDLED:
        from lib.backbones import mobilenet_port

        if weights == "random":  # the same architecture as the port, so only the weights differ
            full = mobilenet_port.build_mobilenetv2_symmetric((size, size, 3), include_top=False)
            return LoadedBackbone(name, size, "random (chosen)", full, torch_preprocess)
        model = mobilenet_port.load_pretrained_mobilenetv2(input_size=size, include_top=False)
        return LoadedBackbone(name, size, BUNDLED, model, torch_preprocess)
    ctor, kwargs = _keras_constructor(spec, size)
    used = "random (chosen)" if weights == "random" else RANDOM
    model = None
    want_imagenet = weights == "imagenet" or (weights == "auto" and status == CACHED)
    if want_imagenet and status != RANDOM:
        try:
            model = ctor(weights="imagenet", **kwargs)
            used = CACHED
        except Exception as e:  # Keras raises a bare Exception when the download fails
            note = (f"ImageNet weights for {spec.title} could not be loaded ({str(e).splitlines()[0][:120]}); "
                    "using random weights. Run `python -m lib weights fetch` while online.")
    elif weights == "auto" and status == NOT_CACHED:
        note = f"{spec.title}: ImageNet weights are not in the Keras cache; using random weights offline."
    if model is None:
        model = ctor(weights=None, **kwargs)
    return LoadedBackbone(name, size, used, model, preprocess_fn(name), note)


def fetch_weights(names: list[str]) -> dict[str, str]:
    """Download Keras's ImageNet weights for the named backbones (needs the internet)."""

    out = {}
    for name in names:
        spec = get_spec(name)
        if spec.bundled:
            out[name] = BUNDLED if _bundled_available() else "bundled package missing: run the set-up again"
            continue
        ctor, kwargs = _keras_constructor(spec, spec.default_size)
        try:
            ctor(weights="imagenet", **kwargs)
            out[name] = CACHED
        except Exception as e:
            out[name] = f"failed: {str(e).splitlines()[0][:160]}"
        weights_status.cache_clear()
    return out


def status_table() -> list[dict]:
    """Every backbone with its weights status at its default size and what to do about it."""
    rows = []
    for spec in REGISTRY.values():
        st = weights_status(spec.name, spec.default_size)
        rows.append({"name": spec.name, "title": spec.title, "default_size": spec.default_size,
                     "sizes": list(spec.sizes()), "status": st, "advice": status_advice(st, spec.name)})
    return rows
