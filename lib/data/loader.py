"""Datasets as TaskData: the committed samples, and user zips or folders, validated.

Only the standard library, numpy and PIL are imported here, so this loads fast.

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

Every image becomes 8-bit RGB. If all images share one size no larger than
`UploadLimits.keep_size_up_to`, and the upload fits in `UploadLimits.max_decoded_bytes` at that
size, that size is kept; otherwise every image is resized (stretched, aspect ratio not kept, like
Keras' loader) to `UploadLimits.image_size` square. Validation rows are a fixed, stratified ~25%
chosen by a hash of each file's path, so re-uploading the same files gives the same split.

Class and label names are cleaned when read (`clean_name`): no control characters (a newline
would start a new bullet wherever a name is listed), no bidirectional-control characters (which
reorder the text around them), single spaces, at most `UploadLimits.max_label_chars` characters.
Messages quote what the user sent with `_q`: clipped, with invisible characters escaped.

Everything an upload could spend is capped before it is spent: entries, folders, path depth and
length from the zip's directory; memory and decoded pixels from the image headers. The work left
is bounded in wall-clock time too (`Watch`), and stops when nobody waits for it any more.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import tempfile
import time
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lib.common.errors import DataError
from lib.common.paths import SAMPLE_DATA
from lib.common.text import clean_name
from lib.data.taskdata import TASKS, TaskData

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
VAL_FRACTION = 0.25
FILENAME_COLUMNS = ("filename", "file", "file_name", "image", "path")  # accepted, case-insensitive
JUNK_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
MAX_LISTED = 5  # names quoted in one message before "and N more"


@dataclass(frozen=True)
class UploadLimits:
    """What an upload may hold; checked before anything is extracted or decoded.

    `lib.uploads.limits_text` states every one of them to the user.
    """

    max_upload_bytes: int = 50 * 2**20  # also Streamlit's server.maxUploadSize (.streamlit/config.toml)
    max_uncompressed_bytes: int = 200 * 2**20
    max_files: int = 5_000
    max_folders: int = 1_000  # folders cost time too: 20,000 empty ones took a minute to create and scan
    max_images: int = 5_000
    max_image_pixels: int = 40_000_000
    # Decoding is the costly part (~60-130 Mpx/s on one core): 400 Mpx is a few seconds, and holds
    # 5,000 images of 256x256 (328 Mpx). JPEGs count at the reduced scale they are decoded at.
    max_total_pixels: int = 400_000_000
    # The images array of one upload; 5,000 images at image_size (132 MB) always fit, so a large
    # upload is resized rather than refused. Without it, 5,000 kept 256x256 images took ~1 GB.
    max_decoded_bytes: int = 256 * 2**20
    max_session_bytes: int = 256 * 2**20  # all uploads one session keeps (one per task)
    max_classes: int = 100  # class folders, or labels of a multilabel CSV
    max_label_chars: int = 60  # longer class and label names are cut (with '…')
    max_path_depth: int = 16  # folders in one path (zip entries, folders on disk, CSV file names)
    max_path_chars: int = 300
    max_name_chars: int = 100  # one file or folder name
    max_csv_bytes: int = 16 * 2**20
    max_seconds: float = 60.0  # wall-clock time to read one upload once it has an extraction slot
    image_size: int = 96  # square side images are resized to when their sizes differ
    keep_size_up_to: int = 256  # a uniform size with both sides <= this is kept as it is


NAME_MAX_BYTES = 255  # what Linux and macOS file systems allow for one name (UTF-8 bytes)
SHOWN_CHARS = 60  # of a user's input quoted in a message
STOPPED = "The upload was stopped: its browser session ended."
_clock = time.monotonic  # tests replace it to jump past a time budget without waiting


# ---------------------------------------------------------------- small helpers


def _listing(names: Sequence[str], limit: int = MAX_LISTED) -> str:
    """'a, b, c' or 'a, b, c and 4 more'."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit:,} more"


class _Examples:
    """The first few of many problems, and how many there were: a message stays short."""

    def __init__(self) -> None:
        self.count = 0
        self.shown: list[str] = []

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.shown) < MAX_LISTED:
            self.shown.append(text)

    def __len__(self) -> int:
        return self.count

    def listing(self) -> str:
        more = self.count - len(self.shown)
        return ", ".join(self.shown) + (f" and {more:,} more" if more else "")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def _clip(text: object, limit: int = SHOWN_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _q(text: object) -> str:
    """A user's input quoted for a message: clipped, control and invisible characters escaped."""
    return repr(_clip(text))


def _show(text: object) -> str:
    """The same without quotes, for paths within a sentence."""
    return _q(text)[1:-1]


def _why(e: BaseException, base: Path | None = None) -> str:
    """An exception's reason for a message, without the server's paths (an OSError names the file)."""
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    if base is not None:
        text = text.replace(f"{base}{os.sep}", "").replace(str(base), "")
    return _clip(text, 80)


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


def _check_path(parts: Sequence[str], what: str, limits: UploadLimits) -> None:
    """Refuse a path too deep or too long (`what` names it, e.g. "The zip entry 'a/b.png'").

    Checked before a path is used: the OS refuses long names (an OSError, not a message),
    a deep tree overflows Python's recursion in os.walk and shutil.rmtree, and matching a
    CSV's file name to an image costs time per level.
    """
    if len(parts) - 1 > limits.max_path_depth:
        raise DataError(
            f"{what} is {len(parts) - 1:,} folders deep; at most {limits.max_path_depth} are accepted. "
            "Move the images into fewer nested folders."
        )
    for part in parts:
        if len(part) > limits.max_name_chars or len(part.encode("utf-8", "replace")) > NAME_MAX_BYTES:
            raise DataError(
                f"{what} has a name of {len(part):,} characters; at most {limits.max_name_chars} are accepted "
                "(fewer in scripts that take several bytes a character). Rename it."
            )
    length = sum(len(p) for p in parts) + len(parts) - 1
    if length > limits.max_path_chars:
        raise DataError(
            f"{what} is {length:,} characters long; at most {limits.max_path_chars} are accepted. "
            "Use shorter folder and file names."
        )


class UploadStopped(DataError):
    """An upload abandoned half-way: it ran out of time, or its browser session ended."""


class Watch:
    """One upload's time budget, and whether anyone still waits for it; polled between files.

    Once an upload holds one of the server's extraction slots, every other upload may be waiting
    for it: `check()` ends the work when `limits.max_seconds` have passed, or when `cancelled()`
    says its session has ended (the Data page passes one; a closed tab otherwise kept decoding).
    """

    def __init__(self, limits: UploadLimits, cancelled: Callable[[], bool] | None = None) -> None:
        self.max_seconds = limits.max_seconds
        self.deadline = _clock() + limits.max_seconds
        self.cancelled = cancelled

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise UploadStopped(STOPPED)
        if _clock() > self.deadline:
            raise UploadStopped(
                f"Reading the upload took more than {self.max_seconds:g} s, the most one upload may take. "
                "Upload fewer or smaller images."
            )


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise DataError(f"Unknown task {task!r}. Choose one of: {', '.join(TASKS)}.")


def _is_junk(name: str) -> bool:
    """Hidden files and OS clutter (macOS resource forks, Windows thumbnails)."""
    return name.startswith(".") or name in JUNK_NAMES


# ---------------------------------------------------------------- sample datasets


@cache
def _cards() -> dict[str, dict]:
    """Every sample dataset's card.json, by name."""
    cards = {}
    for path in sorted(SAMPLE_DATA.glob("*/card.json")):
        card = json.loads(path.read_text(encoding="utf-8"))
        cards[card["name"]] = card
    return cards


def list_datasets() -> list[dict]:
    """Cards of the sample datasets (photos first): name, title, source, licence, sizes, tasks."""
    cards = sorted(_cards().values(), key=lambda c: (c.get("kind") != "photo", c["name"]))
    return copy.deepcopy(cards)


def dataset_card(name: str) -> dict:
    """The card of one sample dataset (a copy: callers may change it freely)."""
    return copy.deepcopy(_card(name))


def _card(name: str) -> dict:
    cards = _cards()
    if name not in cards:
        raise DataError(f"There is no sample dataset {name!r}. Sample datasets: {', '.join(sorted(cards))}.")
    return cards[name]


def default_dataset(task: str) -> str:
    """The sample dataset used when none is chosen: a real-photo one where it has the task."""
    _check_task(task)
    for card in list_datasets():  # photos come first
        if task in card["tasks"]:
            return card["name"]
    raise DataError(f"No sample dataset has the {task} task.")


@lru_cache(maxsize=8)
def _sample_table(name: str) -> tuple[list[dict], np.ndarray]:
    """(labels.csv rows, read-only uint8 RGB images) of one sample dataset, decoded once."""
    folder = SAMPLE_DATA / name
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with Image.open(folder / rows[0]["filename"]) as first:
        images = np.empty((len(rows), first.height, first.width, 3), np.uint8)
    for i, row in enumerate(rows):
        with Image.open(folder / row["filename"]) as im:
            images[i] = np.asarray(im.convert("RGB"))
    images.flags.writeable = False  # shared by every call: nobody may change it in place
    return rows, images


def _sample_targets(rows: list[dict], task: str, spec: dict) -> np.ndarray:
    """The task's y array from the label columns the card names."""
    if task == "binary":
        return np.array([int(r[spec["column"]]) for r in rows], np.int32)
    if task == "multiclass":
        index = {n: i for i, n in enumerate(spec["label_names"])}
        return np.array([index[r[spec["column"]]] for r in rows], np.int32)
    if task == "multilabel":
        return np.array([[float(r[c]) for c in spec["columns"]] for r in rows], np.float32)
    return np.array([float(r[spec["column"]]) for r in rows], np.float32)


def load_sample(name: str, task: str) -> TaskData:
    """One committed sample dataset for one task, with its fixed split."""
    _check_task(task)
    card = _card(name)
    if task not in card["tasks"]:
        raise DataError(
            f"The sample dataset {name!r} has no {task} task; it has: {', '.join(card['tasks'])}. "
            f"For {task}, try {default_dataset(task)!r}."
        )
    spec = card["tasks"][task]
    rows, images = _sample_table(name)
    notes = ()
    if card.get("colour", "RGB") != "RGB":
        notes = (f"Grayscale photos loaded as RGB (channel replicated) at {images.shape[2]}x{images.shape[1]} px.",)
    return TaskData(
        dataset=name,
        task=task,
        images=images,
        y=_sample_targets(rows, task, spec),
        is_val=np.array([r["split"] == "val" for r in rows]),
        label_names=tuple(spec["label_names"]),
        unit=spec.get("unit", ""),
        description=spec["meaning"],
        notes=notes,
        cache_on_disk=True,
    )


# ---------------------------------------------------------------- zip extraction


def _entry_path(info: zipfile.ZipInfo, limits: UploadLimits) -> PurePosixPath | None:
    """The safe relative path of a zip entry; None for OS clutter; DataError for unsafe entries."""
    name = info.filename.replace("\\", "/")  # some Windows tools write backslashes
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DataError(
            f"The zip contains a symbolic link, {_q(info.filename)}; links are not accepted. "
            "Zip the image files themselves."
        )
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise DataError(
            f"The zip contains an absolute path, {_q(info.filename)}. "
            "Zip the folder with relative paths (e.g. `zip -r data.zip myfolder`)."
        )
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DataError(
            f"The zip contains a path that points outside the archive, {_q(info.filename)}. "
            "Re-create the zip from the data folder without '..' in its paths."
        )
    if not parts or any(_is_junk(p) for p in parts):
        return None  # never extracted: its depth and length do not matter
    _check_path(parts, f"The zip entry {_q(info.filename)}", limits)
    if info.flag_bits & 0x1:
        raise DataError(f"The zip entry {_q(info.filename)} is password-protected; upload an unencrypted zip.")
    return PurePosixPath(*parts)


def _check_members(zf: zipfile.ZipFile, limits: UploadLimits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Validate the central directory (paths, counts, declared sizes) before extracting anything.

    OS clutter (__MACOSX/, .DS_Store) is not extracted, so it does not count
    against the limits: a Mac zip holds a '._' twin of every file.
    """
    infos = zf.infolist()
    if len(infos) > 4 * limits.max_files:  # even clutter costs time to look at
        raise DataError(
            f"The zip holds {len(infos):,} entries; at most {limits.max_files:,} files are accepted. "
            "Upload fewer images."
        )
    members = [(info, rel) for info in infos if (rel := _entry_path(info, limits)) is not None]
    n_files = sum(not info.is_dir() for info, _ in members)
    if n_files > limits.max_files:
        raise DataError(
            f"The zip holds {n_files:,} files; at most {limits.max_files:,} are accepted. Upload fewer images."
        )
    folders = set()  # listed ones and those implied by a file's path: each is created on disk
    for info, rel in members:
        parts = rel.parts if info.is_dir() else rel.parts[:-1]
        folders.update(parts[:k] for k in range(1, len(parts) + 1))
    if len(folders) > limits.max_folders:
        raise DataError(
            f"The zip holds {len(folders):,} folders; at most {limits.max_folders:,} are accepted. "
            "Remove empty folders, or put the images in fewer of them."
        )
    total = sum(info.file_size for info, _ in members)
    if total > limits.max_uncompressed_bytes:
        raise DataError(
            f"The zip would unpack to {_mb(total)}; at most {_mb(limits.max_uncompressed_bytes)} is accepted. "
            "Upload fewer or smaller images."
        )
    return members


def _copy_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int, base: Path) -> int:
    """Extract one file, refusing to write more than it declared (or than the budget left)."""
    written = 0
    limit = min(info.file_size, budget)
    try:
        with zf.open(info) as src, open(target, "xb") as dst:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise DataError(
                        f"The zip entry {_q(info.filename)} unpacks to more than it declares; "
                        "the archive is damaged or malicious."
                    )
                dst.write(chunk)
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError) as e:
        raise DataError(
            f"The zip entry {_q(info.filename)} cannot be extracted ({_why(e, base)}). Re-create the zip."
        ) from e
    return written


def extract_zip(
    zip_path_or_bytes: str | Path | bytes | BinaryIO, dest_dir: Path, limits: UploadLimits = UploadLimits(),
    watch: Watch | None = None,
) -> Path:
    """Safely extract an uploaded zip into dest_dir (which must be empty or missing).

    The archive's size, entry and folder counts, declared unpacked size and every
    path (safety, depth, length) are checked before anything is written; symlinks,
    absolute paths and '..' are refused. `watch` (time budget, cancellation) is
    polled between entries. Returns the data root: dest_dir, or the single
    top-level folder the data sits under.
    """
    if hasattr(zip_path_or_bytes, "read"):  # e.g. Streamlit's UploadedFile
        zip_path_or_bytes = zip_path_or_bytes.read(limits.max_upload_bytes + 1)
    if isinstance(zip_path_or_bytes, bytes | bytearray):
        size, source = len(zip_path_or_bytes), io.BytesIO(zip_path_or_bytes)
    else:
        path = Path(zip_path_or_bytes)
        if not path.is_file():
            raise DataError(f"The zip file {str(path)!r} does not exist.")
        size, source = path.stat().st_size, path
    if size > limits.max_upload_bytes:
        raise DataError(
            f"The upload is {_mb(size)}; at most {_mb(limits.max_upload_bytes)} is accepted. "
            "Upload fewer or smaller images."
        )
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError("The upload is not a valid zip archive. Zip your data folder and upload the .zip file.") from e

    watch = watch or Watch(limits)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    if any(dest_dir.iterdir()):
        raise ValueError(f"extract_zip needs an empty destination; {dest_dir} is not empty")
    base = dest_dir.resolve()
    with zf:
        members = _check_members(zf, limits)
        try:
            budget = limits.max_uncompressed_bytes
            for info, rel in members:
                watch.check()
                target = base.joinpath(*rel.parts)
                try:
                    if not target.resolve().is_relative_to(base):  # belt and braces after _entry_path
                        raise DataError(f"The zip entry {_q(info.filename)} would land outside the upload folder.")
                    if target.exists() and not info.is_dir():
                        raise DataError(f"The zip holds {_q(info.filename)} twice; re-create the zip.")
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:  # e.g. a file and a folder with the same name
                    raise DataError(
                        f"The zip entry {_q(info.filename)} cannot be extracted ({_why(e, base)})."
                    ) from e
                budget -= _copy_entry(zf, info, target, budget, base)
        except BaseException:
            _empty_dir(dest_dir)  # never leave half an upload behind
            raise
    if not any(dest_dir.iterdir()):
        raise DataError("The zip is empty (or holds only hidden/system files). Zip the folder with your images.")
    return find_root(dest_dir)


def _empty_dir(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def find_root(path: Path) -> Path:
    """Step into a lone top-level folder (e.g. the one `zip -r data.zip data/` adds).

    Stops at a folder whose only child holds images directly: that child is a
    class folder, not a wrapper, and the single-class error must name it.
    """
    while True:
        children = [c for c in path.iterdir() if not _is_junk(c.name)]
        if len(children) != 1 or not children[0].is_dir():
            return path
        inner = [c for c in children[0].iterdir() if not _is_junk(c.name)]
        if not any(c.is_dir() or c.suffix.lower() == ".csv" for c in inner):
            return path
        path = children[0]


# ---------------------------------------------------------------- folder scanning


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


# ---------------------------------------------------------------- labels CSV


@dataclass
class _Csv:
    path: PurePosixPath  # relative to the data root
    columns: list[str]  # label column headers as written (stripped), without the filename column
    rows: list[tuple[int, PurePosixPath, list[str]]]  # (line number, image path from root, label cells)
    notes: list[str]

    @property
    def name(self) -> str:
        """The CSV's path as messages show it."""
        return _show(self.path)


def _pick_csv(files: list[PurePosixPath], task: str) -> PurePosixPath:
    csvs = [f for f in files if f.suffix.lower() == ".csv"]
    if not csvs:
        example = "filename,cat,dog" if task == "multilabel" else "filename,weight"
        raise DataError(
            f"The {task} task needs a labels CSV next to the images (e.g. labels.csv with a header "
            f"like `{example}`); none was found. Class folders are only read for binary and multiclass."
        )
    if len(csvs) == 1:
        return csvs[0]
    named = sorted((f for f in csvs if f.name.lower() == "labels.csv"), key=lambda f: len(f.parts))
    if named:
        return named[0]
    raise DataError(f"Found {len(csvs)} CSV files ({_listing([_show(f) for f in csvs])}); name the labels file labels.csv.")


def _csv_text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # Excel's UTF-8 export starts with a BOM
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _delimiter(header: str) -> str:
    """',' unless the header uses tabs or ';' instead (European Excel exports use ';')."""
    for sep in (",", "\t", ";"):
        if sep in header:
            return sep
    return ","


def _clean_name(cell: str) -> PurePosixPath | None:
    """A CSV file name as a relative path; None if it is absolute or leaves the folder."""
    name = cell.strip().replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return PurePosixPath(*parts)


class _NameIndex:
    """Finds the image a CSV cell names, forgiving the usual slips of hand-written CSVs.

    Tried in order: relative to the CSV's folder, then to the data root (each
    exactly, then ignoring case), and a bare file name unique in the upload.
    """

    def __init__(self, images: list[PurePosixPath]) -> None:
        self.images = set(images)
        lower = Counter(str(p).lower() for p in images)
        self.by_lower = {str(p).lower(): p for p in images if lower[str(p).lower()] == 1}
        names = Counter(p.name for p in images)
        self.by_name = {p.name: p for p in images if names[p.name] == 1}

    def find(self, rel: PurePosixPath, csv_dir: PurePosixPath) -> PurePosixPath | None:
        # Leading folders are dropped one by one: a CSV written from the parent folder
        # ("images/a.png") still finds a.png when the upload's root is images/ itself.
        # Quadratic in the depth, which _check_path bounds (UploadLimits.max_path_depth).
        for k in range(len(rel.parts)):
            tail = PurePosixPath(*rel.parts[k:])
            for c in (csv_dir / tail, tail):
                if c in self.images:
                    return c
                if str(c).lower() in self.by_lower:
                    return self.by_lower[str(c).lower()]
        return self.by_name.get(rel.name) if len(rel.parts) == 1 else None


def _regression_columns_error(where: str, columns: list[str]) -> DataError:
    return DataError(
        f"The regression task reads one numeric target column; {where} has {len(columns):,} "
        f"({_listing([_show(c) for c in columns])}). Keep only filename and the target."
    )


def _read_csv(root: Path, files: list[PurePosixPath], task: str, limits: UploadLimits, watch: Watch) -> _Csv:
    """Parse the labels CSV and match every row to an image file; refuse bad or unknown rows."""
    csv_rel = _pick_csv(files, task)
    where = _show(csv_rel)
    size = (root / csv_rel).stat().st_size
    if size > limits.max_csv_bytes:
        raise DataError(
            f"{where} is {_mb(size)}; a labels CSV may be at most {_mb(limits.max_csv_bytes)}. Keep one short row per image."
        )
    text = _csv_text((root / csv_rel).read_bytes())
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"{where} is empty; it needs a header line such as `filename,label`.")
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(lines[0]))
    try:
        header = [h.strip() for h in next(reader)]
        lower = [h.lower() for h in header]
        fcol = next((lower.index(c) for c in FILENAME_COLUMNS if c in lower), None)
        if fcol is None:
            raise DataError(
                f"{where} needs a 'filename' column naming each image; its header is: "
                f"{_listing([_show(h) for h in header], 10)}."
            )
        label_cols = [i for i, h in enumerate(header) if i != fcol and h]
        if not label_cols:
            raise DataError(f"{where} has no label column besides {_q(header[fcol])}.")
        columns = [header[i] for i in label_cols]
        if task == "multilabel" and len(columns) > limits.max_classes:  # before reading a cell of them
            raise DataError(
                f"{where} has {len(columns):,} label columns; at most {limits.max_classes} labels are supported. "
                "Keep fewer label columns."
            )
        if task == "regression" and len(columns) != 1:
            raise _regression_columns_error(where, columns)

        index = _NameIndex([f for f in files if _is_image_name(f)])
        rows, seen = [], {}
        unknown, bad_names, short = _Examples(), _Examples(), _Examples()  # counted; only the first few kept
        for n, row in enumerate(reader):
            if n % 256 == 0:
                watch.check()
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            if len(row) < len(header):
                short.add(f"line {line:,}")
                continue
            cell = row[fcol].strip()
            rel = _clean_name(cell)
            if rel is None:
                bad_names.add(f"line {line:,}: {_q(cell)}")
                continue
            _check_path(rel.parts, f"{where} line {line:,}: the file name {_q(cell)}", limits)
            match = index.find(rel, csv_rel.parent)
            if match is None:
                unknown.add(f"{_show(cell)} (line {line:,})")
                continue
            if match in seen:
                raise DataError(f"{where} lists {_q(cell)} twice (lines {seen[match]:,} and {line:,}); keep one row per image.")
            seen[match] = line
            rows.append((line, match, [row[i].strip() for i in label_cols]))
    except csv.Error as e:  # e.g. a field over the csv module's 128 KB limit, or a NUL byte
        raise DataError(
            f"{where} cannot be read as CSV (line {reader.line_num:,}: {_why(e)}). "
            "Save it again as plain CSV, one short row per image."
        ) from e

    if short:
        raise DataError(f"{where} has rows with fewer cells than its header ({short.listing()}); fill in every column.")
    if bad_names:
        raise DataError(
            f"{where} has empty, absolute or '..' file names ({bad_names.listing()}); "
            "use paths relative to the CSV's folder."
        )
    if unknown:
        raise DataError(
            f"{where} names {_plural(len(unknown), 'image')} that {'is' if len(unknown) == 1 else 'are'} not in the upload: "
            f"{unknown.listing()}. Fix the file names or delete those rows."
        )
    notes = []
    unlisted = sorted(_show(p) for p in index.images - set(seen))
    if unlisted:
        notes.append(f"{_plural(len(unlisted), 'image')} with no row in {where} left out: {_listing(unlisted)}.")
    if not rows:
        raise DataError(f"{where} has no data rows; add one row per image.")
    return _Csv(csv_rel, columns, rows, notes)


def _is_binary_cell(v: str) -> bool:
    return v.lower() in ("0", "1", "0.0", "1.0", "true", "false")


def _multilabel_items(table: _Csv, limits: UploadLimits) -> _Items:
    """multilabel: 0/1 columns, or one column of ';'-separated label names."""
    cells = [r[2] for r in table.rows]
    if len(table.columns) == 1:
        col = clean_name(table.columns[0], limits.max_label_chars)
        if all(_is_binary_cell(c[0]) for c in cells):
            raise DataError(
                f"{table.name} has a single 0/1 column ({col!r}); multilabel needs at least 2 labels. "
                "Add one 0/1 column per label, or use the binary task."
            )
        row_labels: list[set[str]] = []
        every: set[str] = set()
        for c in cells:  # counted as they are read: a million names must not become a million columns
            labels = {t.strip() for t in c[0].split(";")} - {""}
            every |= labels
            if len(every) > limits.max_classes:
                raise DataError(
                    f"{table.name} names more than {limits.max_classes} different labels in {col!r}; at most "
                    f"{limits.max_classes} labels are supported. Use fewer labels."
                )
            row_labels.append(labels)
        written = sorted(every)
        clean = dict(zip(written, _label_names(written, "label", limits), strict=True))
        names = sorted(clean.values())
        if len(names) < 2:
            raise DataError(
                f"{table.name} names fewer than 2 different labels in {col!r}; multilabel needs at "
                "least 2 (write several as `cat;dog`)."
            )
        column = {n: j for j, n in enumerate(names)}
        y = np.zeros((len(cells), len(names)), np.float32)
        for i, labels in enumerate(row_labels):
            y[i, [column[clean[t]] for t in labels]] = 1.0
        how = f"';'-separated names in column {col!r}"
    else:
        names = _label_names(table.columns, "label column", limits)
        bad = _Examples()
        for line, _, row in table.rows:
            for col, v in zip(names, row, strict=True):
                if not _is_binary_cell(v):
                    bad.add(f"line {line:,}, {col!r}: {_q(v)}")
        if bad:
            raise DataError(
                f"Multilabel columns in {table.name} must hold 0 or 1 (or a single column of ';'-separated "
                f"label names); found: {bad.listing()}."
            )
        y = np.array([[float(v.lower() in ("1", "1.0", "true")) for v in c] for c in cells], np.float32)
        how = "one 0/1 column per label"
    notes = list(table.notes)
    positives = y.sum(axis=0)
    never = [n for n, k in zip(names, positives, strict=True) if k == 0]
    always = [n for n, k in zip(names, positives, strict=True) if k == len(y)]
    if never:
        notes.append(f"Label{'s' if len(never) > 1 else ''} never present in any image: {_listing(never)}; nothing to learn for them.")
    if always:
        notes.append(f"Label{'s' if len(always) > 1 else ''} present in every image: {_listing(always)}.")
    empty = int((y.sum(axis=1) == 0).sum())
    if empty:
        notes.append(f"{_plural(empty, 'image')} with no label at all (kept: 'none of these' is a valid answer).")
    desc = f"{len(names)} labels ({how}): {_listing(list(names), 10)}."
    return _Items([r[1] for r in table.rows], y, tuple(names), "", desc, notes)


def _unit_from_header(header: str) -> tuple[str, str]:
    """'weight (kg)' or 'weight [kg]' -> ('weight', 'kg'); otherwise (header, '')."""
    m = re.fullmatch(r"\s*(.*?)\s*[\(\[]\s*([^\)\]]+?)\s*[\)\]]\s*", header)
    return (m.group(1) or header, m.group(2)) if m else (header, "")


def _regression_items(table: _Csv, limits: UploadLimits) -> _Items:
    """regression: one numeric column, finite everywhere, not constant."""
    if len(table.columns) != 1:
        raise _regression_columns_error(table.name, table.columns)
    col = clean_name(table.columns[0])  # uncut, so that a unit at its end is still found
    if not col:
        raise DataError(
            f"The target column's name is empty once control and invisible characters are removed "
            f"({_q(table.columns[0])}); rename it."
        )
    values, not_numbers, not_finite = [], _Examples(), _Examples()
    for line, path, (cell,) in table.rows:
        where = f"{_show(path.name)} (line {line:,}): {_q(cell)}"
        try:
            v = float(cell) if cell else math.nan  # an empty cell is a missing target
        except ValueError:
            not_numbers.add(where)
            continue
        if math.isfinite(v) and abs(v) < 1e30:  # beyond that, float32 (what training uses) overflows
            values.append(v)
        else:
            not_finite.add(where)
    if not_numbers:
        raise DataError(
            f"Regression targets in {_q(col)} must be numbers; {_plural(len(not_numbers), 'row')} "
            f"{'is' if len(not_numbers) == 1 else 'are'} not: {not_numbers.listing()}. "
            "Fix or delete those rows (use '.' as the decimal point)."
        )
    if not_finite:
        raise DataError(
            f"Regression targets in {_q(col)} must be finite numbers; {_plural(len(not_finite), 'row')} "
            f"{'is' if len(not_finite) == 1 else 'are'} empty, NaN or infinite: {not_finite.listing()}. Fix or delete those rows."
        )
    y = np.array(values, np.float32)
    if np.all(y == y[0]):
        raise DataError(f"Every regression target in {_q(col)} is {values[0]:g}; there is nothing to learn.")
    name, unit = _unit_from_header(col)
    name, unit = clean_name(name, limits.max_label_chars), clean_name(unit, limits.max_label_chars)
    desc = f"{name} from {table.name}, {y.min():g} to {y.max():g}{' ' + unit if unit else ''}."
    return _Items([r[1] for r in table.rows], y, (name,), unit, desc, list(table.notes))


# ---------------------------------------------------------------- images


def _open(path: Path, rel: PurePosixPath, limits: UploadLimits) -> Image.Image:
    """Open (header only) with the pixel limit enforced; DataError for images too large."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as e:  # PIL refuses before we can read the size
        raise DataError(
            f"{_show(rel)} is far too large to load (over {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} megapixels); "
            f"images may have at most {limits.max_image_pixels / 1e6:g} megapixels. Downscale it or remove it."
        ) from e
    w, h = im.size
    if w * h > limits.max_image_pixels:
        im.close()
        raise DataError(
            f"{_show(rel)} is {w}x{h} = {w * h / 1e6:.0f} megapixels; images may have at most "
            f"{limits.max_image_pixels / 1e6:g} megapixels. Downscale it or remove it."
        )
    return im


def _to_rgb(im: Image.Image) -> tuple[Image.Image, str | None]:
    """8-bit RGB, and what kind of conversion was needed (None for none)."""
    mode = im.mode
    if mode == "RGB":
        return im, None
    if mode in ("1", "L"):
        return im.convert("RGB"), "grayscale"
    if mode.startswith("I"):  # 16-bit (I;16*) or 32-bit integer grayscale
        a = np.asarray(im).astype(np.float64)
        scale = 257.0 if mode.startswith("I;16") or a.max() > 255 else 1.0
        return Image.fromarray(np.clip(np.rint(a / scale), 0, 255).astype(np.uint8)).convert("RGB"), "16-bit"
    if mode == "F":
        a = np.asarray(im).astype(np.float64)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        a = np.nan_to_num((a - lo) / (hi - lo) if hi > lo else a * 0) * 255
        return Image.fromarray(np.rint(a).astype(np.uint8)).convert("RGB"), "floating-point"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), "transparency"
    if mode == "P":
        return im.convert("RGB"), "palette"
    if mode == "CMYK":
        return im.convert("RGB"), "CMYK"
    return im.convert("RGB"), mode


CONVERSION_NOTES = {
    "grayscale": "grayscale, converted to RGB (channel replicated)",
    "16-bit": "16-bit, scaled to 8-bit RGB",
    "floating-point": "floating-point, rescaled to 8-bit RGB",
    "transparency": "with transparency, placed on a white background",
    "palette": "palette (indexed colour), converted to RGB",
    "CMYK": "CMYK, converted to RGB",
}


def _target_size(sizes: list[tuple[int, int]], limits: UploadLimits) -> tuple[int, int, str | None]:
    """(width, height) for every image, and why a common size was not kept (None if it was or there was none).

    The common size is kept if small enough and if all the images fit in `max_decoded_bytes` at it;
    otherwise the square default, which `UploadLimits`' defaults always fit.
    """
    s = limits.image_size
    if len(set(sizes)) == 1 and max(sizes[0]) <= limits.keep_size_up_to:
        w, h = sizes[0]
        need = len(sizes) * w * h * 3
        if need <= limits.max_decoded_bytes:
            return w, h, None
        return s, s, (
            f"All images are {w}x{h}, but {len(sizes):,} of them at that size would take {_mb(need)} of memory "
            f"(at most {_mb(limits.max_decoded_bytes)} per upload); resized to {s}x{s}."
        )
    return s, s, None


def _decoded_pixels(size: tuple[int, int], fmt: str | None, target: tuple[int, int]) -> int:
    """Pixels decoding will produce: all of them, except for JPEGs, which libjpeg decodes at 1/2-1/8
    scale when they are larger than the target (`_decode` asks for that with draft(); this mirrors
    PIL's choice of scale). A JPEG's remaining cost grows with its file size, which
    `max_uncompressed_bytes` bounds."""
    w, h = size
    if fmt != "JPEG":
        return w * h
    fit = min(w // target[0], h // target[1])
    scale = next((k for k in (8, 4, 2) if fit >= k), 1)
    return -(-w // scale) * -(-h // scale)


def _decode(im: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, str | None]:
    """Decode one opened image to uint8 RGB of the given (width, height)."""
    if im.format == "JPEG":
        im.draft("RGB", size)  # let libjpeg decode at a reduced scale: much faster for big photos
    im = ImageOps.exif_transpose(im)  # phone photos store rotation in EXIF
    im, kind = _to_rgb(im)
    if im.size != size:
        im = im.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(im, np.uint8), kind


def _load_images(
    root: Path, paths: list[PurePosixPath], limits: UploadLimits, watch: Watch
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images of the usable files, usable mask over paths, notes): unreadable files are skipped, oversized ones refused.

    Two passes: headers first (cheap: sizes, formats, pixel limits, non-images), so the
    target size, the memory and the pixels decoding will take are all known, and refused
    if too much, before any pixels are decoded. Files are closed between passes:
    thousands of open images would exhaust file handles. `watch` is polled per file.
    """
    if len(paths) > limits.max_images:
        raise DataError(f"The upload has {len(paths):,} images; at most {limits.max_images:,} are accepted.")
    headers: list[tuple[tuple[int, int], str | None] | None] = []  # (stored size, format)
    shown_sizes: list[tuple[int, int]] = []  # as displayed (EXIF rotation applied)
    skipped = _Examples()
    for rel in paths:
        watch.check()
        try:
            with _open(root / rel, rel, limits) as im:
                headers.append((im.size, im.format))
                shown_sizes.append((im.height, im.width) if _rotated(im) else im.size)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            headers.append(None)
            reason = "not an image" if isinstance(e, UnidentifiedImageError) else f"unreadable: {_why(e, root)}"
            skipped.add(f"{_show(rel)} ({reason})")
    if not shown_sizes:
        raise DataError(f"None of the {_plural(len(paths), 'image file')} could be read: {skipped.listing()}.")
    w, h, resized_why = _target_size(shown_sizes, limits)
    n = len(shown_sizes)
    if n * w * h * 3 > limits.max_decoded_bytes:
        raise DataError(
            f"The {n:,} images at {w}x{h} px need {_mb(n * w * h * 3)} of memory; at most "
            f"{_mb(limits.max_decoded_bytes)} is accepted per upload. Upload fewer images."
        )
    pixels = sum(_decoded_pixels(size, fmt, (w, h)) for size, fmt in filter(None, headers))
    if pixels > limits.max_total_pixels:
        side = limits.keep_size_up_to
        example = min(limits.max_images, limits.max_total_pixels // side**2)
        raise DataError(
            f"The images would decode to {pixels / 1e6:,.0f} megapixels in total; at most "
            f"{limits.max_total_pixels / 1e6:,.0f} megapixels are accepted per upload (e.g. {example:,} images of "
            f"{side}×{side} px). Upload fewer or smaller images."
        )
    images = np.zeros((n, h, w, 3), np.uint8)  # one row per readable file
    ok = np.zeros(len(paths), bool)
    decoded = np.zeros(n, bool)
    kinds: Counter[str] = Counter()
    row = -1
    for i, (rel, header) in enumerate(zip(paths, headers, strict=True)):
        if header is None:
            continue
        row += 1
        watch.check()
        try:
            with _open(root / rel, rel, limits) as im:
                images[row], kind = _decode(im, (w, h))
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            skipped.add(f"{_show(rel)} (damaged: {_why(e, root)})")
            continue
        ok[i] = decoded[row] = True
        if kind:
            kinds[kind] += 1
    if not ok.any():
        raise DataError(f"None of the {_plural(len(paths), 'image file')} could be read: {skipped.listing()}.")
    if not decoded.all():  # rare (pixels damaged past a good header): only then copy
        images = images[decoded]
    return images, ok, _image_notes(skipped, kinds, shown_sizes, (w, h), int(ok.sum()), resized_why)


def _rotated(im: Image.Image) -> bool:
    """True when EXIF says the stored pixels are rotated by 90 degrees.

    Read from the header only: for a PNG whose EXIF did not come before the pixels, PIL's
    getexif() decodes the whole image to look for it, which made the "header" pass decode every
    PNG (a 4 KB one can hold 36 Mpx) before the pixel budget was checked.
    """
    if im.format == "PNG" and "exif" not in im.info:
        return False
    try:
        return im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:  # broken EXIF must not stop the upload; the pixels still decode
        return False


def _image_notes(
    skipped: _Examples, kinds: Counter[str], sizes: list[tuple[int, int]], size: tuple[int, int], n_ok: int,
    resized_why: str | None,
) -> list[str]:
    notes = []
    if skipped:
        notes.append(f"Skipped {_plural(len(skipped), 'file')} that could not be read as images: {skipped.listing()}.")
    for kind, n in sorted(kinds.items()):
        notes.append(f"{_plural(n, 'image')} {CONVERSION_NOTES.get(kind, f'in {kind} mode, converted to RGB')}.")
    distinct = set(sizes)
    if len(distinct) > 1:
        notes.append(
            f"Images came in {len(distinct)} sizes; all {n_ok:,} were resized to {size[0]}x{size[1]} "
            "(stretched: aspect ratio not kept)."
        )
    elif resized_why:
        notes.append(resized_why)
    elif sizes[0] != size:
        notes.append(f"All images are {sizes[0][0]}x{sizes[0][1]}; resized to {size[0]}x{size[1]}.")
    return notes


# ---------------------------------------------------------------- split


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


# ---------------------------------------------------------------- user data entry points


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
