"""Datasets as TaskData: the committed samples by name, and user zips or folders, validated.

Only the standard library, numpy and PIL are imported here (and by the modules used here), so this
loads fast. The steps have modules of their own: `limits` (what an upload may spend), `archive` (zip
extraction), `labels` and `csv_labels` (the targets), `decoding` (the pixels), `samples`; `messages`
quotes what the user sent with `_q`: clipped, with invisible characters escaped.

User data layouts (documented for the upload page):

- binary / multiclass: one folder per class, as for
  `keras.utils.image_dataset_from_directory`: `root/<class>/<image>` (images
  may sit in sub-folders of a class folder; the whole tree may sit under one
  top-level folder). Classes are sorted by name; for binary the first is the
  negative class (0) and the second the positive one (1).
- multilabel / regression: images plus one CSV (preferably `labels.csv`) with a
  `filename` column (or `file`, `image`, `path`) holding paths relative to the
  CSV's folder or the data root; a bare file name also finds a unique image in
  a sub-folder, and case is ignored when that is unambiguous. The CSV may be comma-, semicolon-
  or tab-separated. Images without a row are left out (noted); rows naming
  files that are not there are refused.
  - multilabel: either one 0/1 column per label (`filename,cat,dog,car`;
    true/false also accepted), or a single column of `;`-separated label names
    (`filename,labels` with values like `cat;dog`; an empty cell means no
    label; labels are then ordered alphabetically).
  - regression: exactly one numeric column; a unit may be given in its header
    as `weight (kg)` or `weight [kg]`.

Validation rows are a fixed, stratified ~25% chosen by a hash of each file's path, so re-uploading
the same files gives the same split.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from lib.common.errors import DataError
from lib.common.text import clean_name
from lib.data.archive import extract_zip, find_root
from lib.data.csv_labels import _multilabel_items, _read_csv, _regression_items
from lib.data.decoding import _load_images
from lib.data.labels import (
    IMAGE_EXTENSIONS,
    _check_min_per_class,
    _class_folder_items,
    _is_image_name,
)
from lib.data.limits import UploadLimits, Watch, _check_path, _check_task, _is_junk
from lib.data.messages import _listing, _q
from lib.data.samples import _cards, load_sample
from lib.data.taskdata import TaskData

VAL_FRACTION = 0.25


def _scan(root: Path, limits: UploadLimits, watch: Watch) -> list[PurePosixPath]:
    """Relative paths of all visible regular files under root (symlinked folders are not followed).

    Depth, folder count and path lengths are checked on the way down, before os.walk could
    recurse deep enough to overflow (a folder given to the CLI was never checked by extract_zip).
    """
    files: list[PurePosixPath] = []
    n_folders = 0
    for dirpath, dirnames, filenames in os.walk(root):
        watch.check()
        dirnames[:] = sorted(d for d in dirnames if not _is_junk(d))
        rel_dir = PurePosixPath(Path(dirpath).relative_to(root).as_posix())
        n_folders += len(dirnames)
        if n_folders > limits.max_folders:
            raise DataError(f"The folder holds more than {limits.max_folders:,} folders; put the images in fewer of them.")
        for name in sorted(filenames):
            if not _is_junk(name) and (Path(dirpath) / name).is_file():
                rel = rel_dir / name
                _check_path(rel.parts, f"The file {_q(rel)}", limits)
                files.append(rel)
        for d in dirnames:  # refused here, before os.walk goes one level deeper
            _check_path((*rel_dir.parts, d, "x"), f"The folder {_q(rel_dir / d)}", limits)
        if len(files) > limits.max_files:
            raise DataError(f"The folder holds more than {limits.max_files:,} files; upload fewer images.")
    return files


def _hash_order(paths: list[PurePosixPath]) -> np.ndarray:
    """A fixed pseudo-random order from each path's hash (independent of upload order)."""
    keys = [hashlib.sha256(f"headlab-split:{p}".encode()).hexdigest() for p in paths]
    return np.argsort(np.array(keys), kind="stable")


def _strata(task: str, y: np.ndarray) -> np.ndarray:
    """Groups to stratify the split by: class; rarest present label; or target quartile."""
    if task in ("binary", "multiclass"):
        return y
    if task == "multilabel":
        rarity = np.argsort(np.argsort(y.sum(axis=0)))  # 0 = rarest label
        ranked = np.where(y > 0, rarity[None, :], len(rarity))
        return ranked.min(axis=1)  # len(rarity) means "no label"
    edges = np.quantile(y, [0.25, 0.5, 0.75])
    return np.searchsorted(edges, y, side="right")


def stratified_split(task: str, paths: list[PurePosixPath], y: np.ndarray, fraction: float = VAL_FRACTION) -> np.ndarray:
    """is_val: ~fraction of each stratum, at least 1 of any stratum with 2+ members, never all of it.

    Strata of one member go to training; if that leaves no validation image at all (e.g. every
    image has a label of its own), ~fraction of all images are held out instead: without
    validation images no head can be judged (Keras refused the empty set).
    """
    is_val = np.zeros(len(paths), bool)
    order = _hash_order(paths)
    strata = _strata(task, y)
    for s in np.unique(strata):
        members = order[strata[order] == s]
        n = len(members)
        n_val = min(max(round(fraction * n), 1), n - 1) if n >= 2 else 0
        is_val[members[:n_val]] = True
    if not is_val.any() and len(paths) >= 2:
        is_val[order[: min(max(round(fraction * len(paths)), 1), len(paths) - 1)]] = True
    return is_val


def load_folder(
    root: Path, task: str, limits: UploadLimits = UploadLimits(), name: str | None = None, watch: Watch | None = None
) -> TaskData:
    """Validate and load a folder of user data (class folders, or images plus a labels CSV).

    `watch` bounds the time it may take and stops it when its session ends (default: the time
    budget of `limits` alone).
    """
    _check_task(task)
    watch = watch or Watch(limits)
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is not a folder.")
    root = find_root(root)
    files = _scan(root, limits, watch)
    if not any(_is_image_name(f) for f in files):
        raise DataError(
            f"No image files found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}). "
            "Upload a zip of image folders or images with a labels CSV."
        )
    if task in ("binary", "multiclass"):
        items = _class_folder_items(root, files, task, limits)
    else:
        table = _read_csv(root, files, task, limits, watch)
        items = _multilabel_items(table, limits) if task == "multilabel" else _regression_items(table, limits)

    images, ok, image_notes = _load_images(root, items.paths, limits, watch)
    paths = [p for p, k in zip(items.paths, ok, strict=True) if k]
    y = items.y[ok]
    if task in ("binary", "multiclass"):  # skipped files may have emptied a class
        _check_min_per_class({c: int((y == i).sum()) for i, c in enumerate(items.label_names)})
    elif len(y) < 4:
        raise DataError(f"Only {len(y)} usable images; the {task} task needs at least 4 (some go to validation).")
    is_val = stratified_split(task, paths, y)
    if is_val.all() or not is_val.any():  # stratified_split prevents it; a head could not be trained or judged
        raise DataError(
            f"The split leaves no {'training' if is_val.all() else 'validation'} images; add more images "
            "(at least 2 per class or label)."
        )
    notes = items.notes + image_notes + _split_notes(task, y, is_val, items.label_names)
    return TaskData(
        dataset=name or clean_name(root.name, limits.max_label_chars) or "upload",
        task=task,
        images=images,
        y=y,
        is_val=is_val,
        label_names=items.label_names,
        unit=items.unit,
        description=items.description,
        notes=tuple(notes),
    )


def _split_notes(task: str, y: np.ndarray, is_val: np.ndarray, names: tuple[str, ...]) -> list[str]:
    notes = [f"Split: {int((~is_val).sum()):,} training and {int(is_val.sum()):,} validation images (fixed, stratified)."]
    if task == "multilabel":
        missing = [n for n, k in zip(names, y[is_val].sum(axis=0), strict=True) if k == 0]
        if missing:
            notes.append(f"No validation image has label{'s' if len(missing) > 1 else ''} {_listing(missing)}; its scores will be undefined.")
    return notes


def load_dataset(name_or_path: str | Path, task: str, work_dir: Path | None = None) -> TaskData:
    """A sample dataset by name, or a user zip/folder by path, validated like an upload.

    Zips are extracted into a new folder under work_dir (kept once loaded; removed if the load
    fails or is interrupted), or into a temporary folder that is removed once the images are in
    memory.
    """
    _check_task(task)
    if str(name_or_path) in _cards():
        return load_sample(str(name_or_path), task)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return load_folder(path, task, name=clean_name(path.name, UploadLimits().max_label_chars) or "upload")
    if not path.is_file():
        raise DataError(
            f"{str(name_or_path)!r} is neither a sample dataset ({', '.join(sorted(_cards()))}) "
            "nor an existing zip file or folder."
        )
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path.name} is not a zip archive; give a .zip file, a folder or a sample dataset name.")
    name = clean_name(path.stem, UploadLimits().max_label_chars) or "upload"
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix=f"{path.stem[:40]}-", dir=work_dir))
        try:
            return load_folder(extract_zip(path, dest), task, name=name)
        except BaseException:  # kept only once loaded: a failed or interrupted (Ctrl-C) load leaves nothing
            shutil.rmtree(dest, ignore_errors=True)
            raise
    with tempfile.TemporaryDirectory(prefix="headlab-upload-") as tmp:
        return load_folder(extract_zip(path, Path(tmp)), task, name=name)
