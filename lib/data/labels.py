"""What each image of a user's data is labelled, before any pixel is decoded: the pieces every layout
shares (`_Items`, which files are images, cleaned label names) and the binary / multiclass layout, one
folder per class. The labels CSV of multilabel and regression is `lib.data.csv_labels`.

Class and label names are cleaned when read (`clean_name`): no control characters (a newline
would start a new bullet wherever a name is listed), no bidirectional-control characters (which
reorder the text around them), single spaces, at most `UploadLimits.max_label_chars` characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from lib.common.errors import DataError
from lib.common.text import clean_name
from lib.data.limits import UploadLimits, _is_junk
from lib.data.messages import _listing, _plural, _q, _show

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def _label_names(raw: Sequence[str], what: str, limits: UploadLimits) -> list[str]:
    """raw names cleaned (`clean_name`); refuses a name cleaning empties, or two it makes equal."""
    names: list[str] = []
    first: dict[str, str] = {}
    for r in raw:
        n = clean_name(r, limits.max_label_chars)
        if not n:
            raise DataError(
                f"A {what} name is empty once control and invisible characters are removed ({_q(r)}); rename it."
            )
        if n in first:
            cut = f" and cut to the first {limits.max_label_chars} characters" if n.endswith("…") else ""
            raise DataError(
                f"The {what}s {_q(first[n])} and {_q(r)} both read {n!r} once control characters, invisible "
                f"characters and extra spaces are removed{cut}; rename one of them."
            )
        first[n] = r
        names.append(n)
    return names


def _is_image_name(path: PurePosixPath) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


@dataclass
class _Items:
    """Images chosen for the task, with their targets, before decoding."""

    paths: list[PurePosixPath]  # relative to the data root
    y: np.ndarray
    label_names: tuple[str, ...]
    unit: str
    description: str
    notes: list[str]


def _class_folder_items(root: Path, files: list[PurePosixPath], task: str, limits: UploadLimits) -> _Items:
    """binary/multiclass: one folder per class, images anywhere inside it."""
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not _is_junk(p.name))
    top_images = [_show(f) for f in files if len(f.parts) == 1 and _is_image_name(f)]
    if not folders:
        csvs = [_show(f) for f in files if f.suffix.lower() == ".csv"]
        hint = f" (it has {csvs[0]}: the multilabel and regression tasks read a labels CSV)" if csvs else ""
        raise DataError(
            f"The {task} task needs one folder per class (e.g. cats/001.jpg, dogs/001.jpg), "
            f"but the upload has no folders{hint}. Put each class's images in a folder named after the class."
        )
    shown = dict(zip(folders, _label_names(folders, "class folder", limits), strict=True))
    class_dirs = sorted(folders, key=lambda d: (shown[d], d))  # in the order of the names the user sees
    by_class: dict[str, list[PurePosixPath]] = {c: [] for c in class_dirs}
    others: list[str] = []
    for f in files:
        if len(f.parts) == 1:
            continue
        if _is_image_name(f):
            by_class[f.parts[0]].append(f)
        else:
            others.append(_show(f))
    names = [shown[c] for c in class_dirs]
    _check_classes(task, {shown[c]: len(v) for c, v in by_class.items()}, limits)

    notes = []
    if top_images:
        notes.append(f"{_plural(len(top_images), 'image')} outside any class folder ignored: {_listing(top_images)}.")
    if others:
        notes.append(f"{_plural(len(others), 'file')} without an image extension ignored: {_listing(others)}.")
    if task == "binary":
        notes.append(f"Positive class (1) is {names[1]!r}, negative (0) is {names[0]!r} (alphabetical order).")
    elif len(class_dirs) == 2:
        notes.append("Only 2 classes: the binary task fits this data too.")
    paths = [p for c in class_dirs for p in by_class[c]]
    y = np.array([i for i, c in enumerate(class_dirs) for _ in by_class[c]], np.int32)
    desc = f"{len(class_dirs)} classes from folder names: {_listing(names, 10)}."
    return _Items(paths, y, tuple(names), "", desc, notes)


def _check_classes(task: str, counts: dict[str, int], limits: UploadLimits) -> None:
    """Refuse class sets the task cannot use; counts are images per class folder."""
    names = list(counts)
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise DataError(
            f"Class folder{'s' if len(empty) > 1 else ''} {_listing([repr(c) for c in empty])} "
            f"{'have' if len(empty) > 1 else 'has'} no images. Add images or remove the empty folder."
        )
    if len(names) == 1:
        raise DataError(
            f"Only one class folder was found ({names[0]!r}); the {task} task needs "
            f"{'exactly 2' if task == 'binary' else 'at least 2'}. Add a folder for each class."
        )
    if task == "binary" and len(names) != 2:
        raise DataError(
            f"The binary task needs exactly 2 class folders; found {len(names)}: {_listing(names, 10)}. "
            "Choose the multiclass task, or keep two folders."
        )
    if len(names) > limits.max_classes:
        raise DataError(f"Found {len(names)} class folders; at most {limits.max_classes} classes are supported.")
    _check_min_per_class(counts)


def _check_min_per_class(counts: dict[str, int]) -> None:
    few = [f"{c!r} ({n})" for c, n in counts.items() if n < 2]
    if few:
        raise DataError(
            f"Every class needs at least 2 usable images (one is held out for validation); "
            f"too few in: {_listing(few)}. Add images to those classes or remove them."
        )
