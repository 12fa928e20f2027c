"""What user data is held to, checked before anything is spent on it.

`UploadLimits` holds every cap; `Watch` is one upload's time budget, and whether anyone still waits for
it; the other checks every loader applies: path depth and length, the task, hidden files and OS clutter.

Everything an upload could spend is capped before it is spent: entries, folders, path depth and
length from the zip's directory; memory and decoded pixels from the image headers. The work left
is bounded in wall-clock time too (`Watch`), and stops when nobody waits for it any more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lib.common.errors import DataError
from lib.data.taskdata import TASKS

JUNK_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class UploadLimits:
    """What an upload may hold; checked before anything is extracted or decoded.

    `lib.data.uploads.limits_text` states every one of them to the user.
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

STOPPED = "The upload was stopped: its browser session ended."
_clock = time.monotonic  # tests replace it to jump past a time budget without waiting


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
