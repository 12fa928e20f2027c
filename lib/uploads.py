"""A user's uploaded zip, from bytes to a validated TaskData, in a folder of its own session.

The Data page calls `handle_upload` with the uploaded bytes and a folder that belongs to the
browser session (`session_dir(session_id)`), never a shared path: two sessions uploading files
with the same names never see each other's data.

Nothing of an upload stays on disk: the zip is extracted into a temporary folder inside the
session's folder, loaded into memory (the TaskData the session keeps, which Streamlit frees when the
session ends), and the folder is removed at once, whatever happened. At most `EXTRACTION_SLOTS`
uploads are unpacked at a time across the server, so the disk used by uploads never exceeds
`max_disk_bytes()`; a server killed mid-extraction leaves a folder that `prune_stale` removes.

Errors never escape: a `DataError` becomes its message; anything else becomes a short generic
message (the traceback goes to the log, not to the user).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from lib.data import UploadLimits, extract_zip, find_root, load_folder
from lib.errors import DataError
from lib.paths import cache_dir
from lib.taskdata import TASKS, TaskData

log = logging.getLogger(__name__)

UPLOAD_PREFIX = "upload: "  # how an upload is named among the datasets on the Experiment page
SESSION_KEY = "user_data"  # st.session_state[SESSION_KEY]: dict task -> TaskData (its .dataset is the display name)
SESSION_NAME_KEY = "user_data_name"  # st.session_state[SESSION_NAME_KEY]: display name of the latest upload
STALE_AFTER_S = 24 * 3600  # session folders untouched this long are removed
LEFTOVER_AFTER_S = 3600  # an extraction folder this old was left by a killed server
MAX_NAME_CHARS = 40
DEFAULT_LIMITS = UploadLimits()
_SESSION_ID = re.compile(r"[0-9a-f]{32}")


class UploadOutcome(NamedTuple):
    """What became of an upload: the data (None if refused) and a message for the user."""

    data: TaskData | None
    message: str


def uploads_root() -> Path:
    """Where every session's upload folder lives."""
    return cache_dir() / "uploads"


def new_session_id() -> str:
    """A random id for one browser session (32 hex digits)."""
    return uuid.uuid4().hex


def session_dir(session_id: str, root: Path | None = None) -> Path:
    """The upload folder of one session; refuses ids that are not `new_session_id()` ones."""
    if not _SESSION_ID.fullmatch(session_id):
        raise ValueError(f"not a session id: {session_id!r}")
    return (root or uploads_root()) / session_id


def display_name(filename: str) -> str:
    """A short name for the upload from its file name: 'My pets.zip' -> 'My pets'."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = re.sub(r"\.zip$", "", name, flags=re.IGNORECASE)
    name = re.sub(r"[\x00-\x1f\x7f]", "", name)
    name = re.sub(r"\s+", " ", name).strip(" .")
    if len(name) > MAX_NAME_CHARS:
        name = name[: MAX_NAME_CHARS - 1].rstrip() + "…"
    return name or "upload"


def experiment_name(data: TaskData) -> str:
    """How the upload is offered on the Experiment page: 'upload: <name>'."""
    return f"{UPLOAD_PREFIX}{data.dataset}"


def limits_text(limits: UploadLimits = DEFAULT_LIMITS) -> str:
    """The upload limits in one sentence."""
    mb = 2**20
    return (
        f"Up to {limits.max_upload_bytes / mb:,.0f} MB zipped ({limits.max_uncompressed_bytes / mb:,.0f} MB "
        f"unpacked), {limits.max_images:,} images and {limits.max_classes} classes. Images that all share one "
        f"size of at most {limits.keep_size_up_to}×{limits.keep_size_up_to} px keep it; otherwise every image "
        f"is resized to {limits.image_size}×{limits.image_size} px (stretched)."
    )


EXTRACTION_SLOTS = 2  # uploads unpacked at once, server-wide
_EXTRACTING = threading.BoundedSemaphore(EXTRACTION_SLOTS)


def max_disk_bytes(limits: UploadLimits = DEFAULT_LIMITS) -> int:
    """The most disk that uploads can occupy at any moment (each is gone once loaded)."""
    return EXTRACTION_SLOTS * limits.max_uncompressed_bytes


@contextmanager
def _extracted(data: bytes, session: Path, limits: UploadLimits) -> Iterator[Path]:
    """The zip's files in a temporary folder of the session, removed when the block ends."""
    with _EXTRACTING:
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=session))
        try:
            extract_zip(data, tmp, limits)
            yield find_root(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def handle_upload(
    data: bytes, filename: str, task: str, session_dir: Path, limits: UploadLimits = DEFAULT_LIMITS
) -> UploadOutcome:
    """Check, extract and load an uploaded zip for one task, inside the session's own folder.

    Returns (TaskData, summary) on success and (None, what went wrong and what to do) otherwise.
    The TaskData's `dataset` is `display_name(filename)`.
    """
    name = display_name(filename)
    try:
        if task not in TASKS:
            raise DataError(f"Unknown task {task!r}. Choose one of: {', '.join(TASKS)}.")
        if not data:
            raise DataError("The upload is empty. Choose a .zip file of your images.")
        if len(data) > limits.max_upload_bytes:
            raise DataError(
                f"The upload is {len(data) / 2**20:,.1f} MB; at most {limits.max_upload_bytes / 2**20:,.0f} MB "
                "is accepted. Upload fewer or smaller images."
            )
        session = Path(session_dir)
        session.mkdir(parents=True, exist_ok=True)
        os.utime(session)  # keeps it from being pruned as stale while in use
        with _extracted(data, session, limits) as root:
            loaded = load_folder(root, task, limits, name=name)
    except DataError as e:
        return UploadOutcome(None, str(e))
    except Exception as e:  # never a traceback on the page
        log.exception("upload %r for %s failed", filename, task)
        return UploadOutcome(
            None,
            f"The upload could not be read (unexpected {type(e).__name__}). Check that it is a .zip laid out "
            "as described above; if it is, try a smaller upload.",
        )
    n_val = int(loaded.is_val.sum())
    what = (
        f"{len(loaded.label_names)} classes" if task in ("binary", "multiclass")
        else f"{len(loaded.label_names)} labels" if task == "multilabel"
        else f"target {loaded.label_names[0]}"
    )
    return UploadOutcome(
        loaded,
        f"Loaded {name} for the {task} task: {len(loaded.y):,} images "
        f"({len(loaded.y) - n_val:,} training, {n_val:,} validation), {what}.",
    )


def prune_stale(root: Path | None = None, max_age_s: float = STALE_AFTER_S, keep: str | None = None,
                leftover_after_s: float = LEFTOVER_AFTER_S) -> int:
    """Remove session folders not touched for max_age_s, and extraction folders a killed server left.

    An extraction takes seconds, so an `.extract-*` folder older than leftover_after_s belongs to no
    running upload. Returns how many folders were removed. Never removes the session `keep` (the
    caller's own) nor anything that is not a session folder.
    """
    root = root or uploads_root()
    if not root.is_dir():
        return 0
    removed = 0
    now = time.time()
    for child in root.iterdir():
        try:
            if not child.is_dir() or not _SESSION_ID.fullmatch(child.name):
                continue
            if child.name != keep and now - child.stat().st_mtime > max_age_s:
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
                continue
            for leftover in child.glob(".extract-*"):
                if now - leftover.stat().st_mtime > leftover_after_s:
                    shutil.rmtree(leftover, ignore_errors=True)
                    removed += 1
        except OSError:
            continue
    return removed
