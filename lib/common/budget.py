"""The server's limits: what one Train may cost (time, weights, memory, compute) and what the server
keeps between Trains (traced heads, feature tensors in memory, sample-data features on disk).

A teacher overrides them with environment variables (`ENV`), read by `Budget.from_env()`. Every layer
may read them: the feature cache (lib.backbones.features) its disk bound, the trainer the rest.
The defaults were chosen against measurements on the project's 2-core server (see each field).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

log = logging.getLogger(__name__)

ENV = {
    "max_train_seconds": "HEADLAB_MAX_TRAIN_SECONDS",
    "max_params": "HEADLAB_MAX_PARAMS",
    "max_memory_mb": "HEADLAB_MAX_MEMORY_MB",
    "max_gmacs": "HEADLAB_MAX_GMACS",
    "pool_mb": "HEADLAB_POOL_MB",
    "feature_memory_mb": "HEADLAB_FEATURE_MEMORY_MB",
    "feature_cache_mb": "HEADLAB_FEATURE_CACHE_MB",
}


@dataclass(frozen=True)
class Budget:
    """The server's limits. `Budget.from_env()` reads a teacher's overrides (see `ENV`)."""

    # Training time of one Train, checked between epochs. The slowest lesson (fine-tuning, the whole
    # MobileNetV2 trainable at 64 px) trains in 43 s cold, 12 s warm, on the 2-core server: 180 s
    # leaves it 4x headroom on a busier machine, and a 200-epoch link stops after 3 minutes, not 12 h.
    max_train_seconds: float = 180.0
    # Weights of one head (backbone layers it trains included). 25 M fits every backbone of the
    # registry trained whole (ResNet50: 23.6 M) and Flatten + Dense(128) on MobileNetV2 at every size
    # (16.4 M at 299 px), ten times the largest lesson head (2.3 M); it refuses Flatten + 2048 at
    # 299 px (262 M) and four hidden layers of 4096 (55 M and more).
    max_params: int = 25_000_000
    # Peak memory of one Train: features, every head's weights, gradients and optimizer slots, the
    # activations of the heads training at once. The server idles at 1.2 GB after 600 sessions
    # (bench/soak.py), so one sweep at this limit keeps it near the 4 GB the README promises. The
    # largest sweep that must pass, the default head on ResNet50 at 299 px on `fashion`, is estimated
    # at 1.8 GB; the fine-tuning lesson at 1.0 GB (0.95 GB measured); the whole MobileNetV2 trained
    # at 96 px at 1.5 GB (1.4 GB measured) passes, at 128 px (2.3 GB measured) it is refused.
    max_memory_mb: float = 2048.0
    # Multiply-adds of one Train, extraction and training, in billions. The largest sweep that must
    # pass, the default head on VGG16 at 299 px on `fashion` (800 images), needs 21,500 G, nearly all
    # of it extraction (7 minutes here, once: then it is cached). 30,000 G leaves it room to train
    # and refuses links that would hold the only slot for an hour (this CPU does 10-50 G a second).
    max_gmacs: float = 30_000.0
    # Traced heads kept for reuse between Trains (weights + optimizer slots). The fine-tuning
    # lesson's whole-backbone head is 27 MB, a frozen-base head a few kB: 256 MB keeps the lessons'
    # heads warm and no longer lets three big heads hold 9 GB while the server idles.
    pool_mb: float = 256.0
    # Feature tensors kept in memory between Trains (every lesson's fit at 96 px in about 40 MB).
    feature_memory_mb: float = 512.0
    # Sample-data features cached on disk (uploads never are). Every lesson's entries take 190 MB,
    # the largest single entry (ResNet50 at 299 px on `fashion`) 655 MB.
    feature_cache_mb: float = 2048.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Budget:
        """The defaults, overridden by positive numbers in the environment; bad values are logged, not fatal."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(ENV[f.name])
            if raw is None or not raw.strip():
                continue
            try:
                value = float(raw.replace("_", ""))
            except ValueError:
                value = float("nan")
            if not math.isfinite(value) or value <= 0:
                log.warning("%s=%r is not a positive number; using the default %s", ENV[f.name], raw[:40], f.default)
                continue
            values[f.name] = value if f.type == "float" else int(value)
        return cls(**values)

    @property
    def max_memory_bytes(self) -> int:
        return int(self.max_memory_mb * 2**20)

    @property
    def pool_bytes(self) -> int:
        return int(self.pool_mb * 2**20)

    @property
    def feature_memory_bytes(self) -> int:
        return int(self.feature_memory_mb * 2**20)

    @property
    def feature_cache_bytes(self) -> int:
        return int(self.feature_cache_mb * 2**20)

    def describe(self) -> str:
        """The limits in plain words, one per line, each with the variable that sets it."""
        return "\n".join([
            f"Each Train trains for at most {self.max_train_seconds:g} s ({ENV['max_train_seconds']}); "
            "then it stops between epochs and keeps what it trained.",
            f"Each head has at most {count_text(self.max_params)} parameters ({ENV['max_params']}).",
            f"Each Train uses at most {self.max_memory_mb:,g} MB of memory for features, heads and optimizer "
            f"state ({ENV['max_memory_mb']}).",
            f"Each Train computes at most {self.max_gmacs:,.0f} billion multiply-adds, feature extraction "
            f"included ({ENV['max_gmacs']}).",
            f"Between Trains the server keeps at most {self.pool_mb:,g} MB of traced heads ({ENV['pool_mb']}) "
            f"and {self.feature_memory_mb:,g} MB of features in memory ({ENV['feature_memory_mb']}), and "
            f"{self.feature_cache_mb:,g} MB of sample-data features on disk ({ENV['feature_cache_mb']}); "
            "uploads are never written to disk.",
        ])


def count_text(n: int) -> str:
    """A number of weights for people: '1.2 M', or '12,345' below a million."""
    return f"{n / 1e6:,.1f} M" if n >= 1e6 else f"{n:,}"
