"""The one shape in which a dataset reaches the engine: images plus targets for one task."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

TASKS = ("binary", "multiclass", "multilabel", "regression")


@dataclass(frozen=True, eq=False)
class TaskData:
    """Images and targets for one task, with a fixed train/validation split.

    images: uint8 array (N, H, W, 3), RGB.
    y: binary -> int32 (N,) in {0, 1}; multiclass -> int32 (N,) in [0, K);
       multilabel -> float32 (N, L) of 0/1; regression -> float32 (N,) in natural units.
    is_val: bool (N,), True for validation rows (fixed, so curves are comparable).
    label_names: binary -> (negative, positive); multiclass -> K class names;
       multilabel -> L label names; regression -> (target name,).
    unit: regression target's unit ("px", "objects", ...); empty otherwise.
    """

    dataset: str
    task: str
    images: np.ndarray
    y: np.ndarray
    is_val: np.ndarray
    label_names: tuple[str, ...]
    unit: str = ""
    description: str = ""
    notes: tuple[str, ...] = ()  # what loading changed or noticed (e.g. "12 grayscale images converted to RGB")
    fingerprint: str = field(default="")
    # May its backbone features be cached on disk? Only for the committed sample datasets: features of an
    # upload (and, with everything unfrozen, its preprocessed pixels) would keep the images on disk.
    cache_on_disk: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError("images must be a uint8 array of shape (N, H, W, 3)")
        if len(self.y) != len(self.images) or len(self.is_val) != len(self.images):
            raise ValueError("images, y and is_val must have the same length")
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint_arrays(self.images, self.y, self.is_val))

    @property
    def n_outputs(self) -> int:
        """The task's natural number of output units."""
        if self.task in ("binary", "regression"):
            return 1
        return len(self.label_names)

    @property
    def n_classes(self) -> int:
        """Classes (binary: 2, multiclass: K), labels (multilabel) or 1 (regression)."""
        return 2 if self.task == "binary" else len(self.label_names)

    def split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x_train, y_train, x_val, y_val) as views on the images."""
        tr, va = ~self.is_val, self.is_val
        return self.images[tr], self.y[tr], self.images[va], self.y[va]


def fingerprint_arrays(*arrays: np.ndarray) -> str:
    """A content hash that changes when any pixel, target or split changes."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
