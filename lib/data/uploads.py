"""A user's uploaded zip, from bytes to a validated TaskData, in a folder of its own session.

The Data page calls `handle_upload` with the uploaded bytes and a folder that belongs to the
browser session (`session_dir(session_id)`), never a shared path: two sessions uploading files
with the same names never see each other's data.

Nothing of an upload stays on disk: the zip is extracted into a temporary folder inside the
session's folder, loaded into memory (the TaskData the session keeps), and the folder is removed
at once, whatever happened. At most `EXTRACTION_SLOTS` uploads are unpacked at a time across the
server, so the disk used by uploads never exceeds `max_disk_bytes()`; a server killed
mid-extraction leaves a folder that `prune_stale` removes.

An upload holding a slot is bounded in time (`UploadLimits.max_seconds`) and stops as soon as its
session ends (`cancelled`), so the uploads waiting behind it do not wait long. What a session keeps
is bounded too: `keep_upload` holds its uploads within `UploadLimits.max_session_bytes`, and
`SessionJanitor` empties them once the session has ended (Streamlit itself drops a closed tab's
state only lazily).

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from lib.common.errors import DataError
from lib.common.paths import cache_dir
from lib.common.text import clean_name
from lib.data.archive import extract_zip, find_root
from lib.data.limits import STOPPED, UploadLimits, UploadStopped, Watch
from lib.data.loader import load_folder
from lib.data.taskdata import TASKS, TaskData

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
    """A short name for the upload from its file name: 'My pets.zip' -> 'My pets'.

    Cleaned like class names (`clean_name`: no control or bidirectional-control characters,
    which could make 'pets\u202egpj.zip' read as 'petsjpg.zip'), at most MAX_NAME_CHARS.
    """
    name = clean_name(re.split(r"[\\/]", filename or "")[-1])
    name = re.sub(r"\.zip$", "", name, flags=re.IGNORECASE).strip(" .")
    return clean_name(name, MAX_NAME_CHARS) or "upload"


def experiment_name(data: TaskData) -> str:
    """How the upload is offered on the Experiment page: 'upload: <name>'."""
    return f"{UPLOAD_PREFIX}{data.dataset}"


def limits_text(limits: UploadLimits = DEFAULT_LIMITS) -> str:
    """Every upload limit a user can hit, in a few sentences."""
    mb = 2**20
    side, size = limits.keep_size_up_to, limits.image_size
    example = min(limits.max_images, limits.max_total_pixels // side**2)
    return (
        f"Up to {limits.max_upload_bytes / mb:,.0f} MB zipped ({limits.max_uncompressed_bytes / mb:,.0f} MB "
        f"unpacked), {limits.max_images:,} images ({limits.max_files:,} files) in at most {limits.max_folders:,} "
        f"folders, {limits.max_path_depth} levels deep, with names of up to {limits.max_name_chars} and paths of up "
        f"to {limits.max_path_chars} characters, and {limits.max_classes} classes or labels (names longer than "
        f"{limits.max_label_chars} characters are cut); a labels CSV of up to {limits.max_csv_bytes / mb:,.0f} MB. "
        f"Each image may have {limits.max_image_pixels / 1e6:g} megapixels, all of them together "
        f"{limits.max_total_pixels / 1e6:,.0f} megapixels (e.g. {example:,} images of {side}×{side} px; JPEG photos "
        f"count at the reduced size they are read at), and reading an upload may take {limits.max_seconds:g} s. "
        f"Images that all share one size of at most {side}×{side} px keep it if they fit in "
        f"{limits.max_decoded_bytes / mb:,.0f} MB of memory; otherwise every image is resized to {size}×{size} px "
        f"(stretched). Your uploads (one per task) share {limits.max_session_bytes / mb:,.0f} MB per session: a new "
        "one may replace older ones."
    )


EXTRACTION_SLOTS = 2  # uploads unpacked at once, server-wide
SLOT_POLL_S = 0.25  # how often an upload waiting for a slot asks whether its session still waits for it
_EXTRACTING = threading.BoundedSemaphore(EXTRACTION_SLOTS)


def max_disk_bytes(limits: UploadLimits = DEFAULT_LIMITS) -> int:
    """The most disk that uploads can occupy at any moment (each is gone once loaded)."""
    return EXTRACTION_SLOTS * limits.max_uncompressed_bytes


def _take_slot(cancelled: Callable[[], bool] | None) -> None:
    """Wait for an extraction slot, giving up when the session ends (then nobody needs the upload)."""
    if cancelled is not None and cancelled():
        raise UploadStopped(STOPPED)
    while not _EXTRACTING.acquire(timeout=SLOT_POLL_S):
        if cancelled is not None and cancelled():
            raise UploadStopped(STOPPED)


@contextmanager
def _extracted(
    data: bytes, session: Path, limits: UploadLimits, cancelled: Callable[[], bool] | None
) -> Iterator[tuple[Path, Watch]]:
    """The zip's files in a temporary folder of the session, removed when the block ends.

    Holds an extraction slot for the whole block; the watch (time budget from now: waiting for
    the slot is not counted, and cancellation) is for the work done inside it.
    """
    _take_slot(cancelled)
    try:
        watch = Watch(limits, cancelled)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=session))
        try:
            extract_zip(data, tmp, limits, watch=watch)
            yield find_root(tmp), watch
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        _EXTRACTING.release()


def handle_upload(
    data: bytes, filename: str, task: str, session_dir: Path, limits: UploadLimits = DEFAULT_LIMITS,
    cancelled: Callable[[], bool] | None = None,
) -> UploadOutcome:
    """Check, extract and load an uploaded zip for one task, inside the session's own folder.

    Returns (TaskData, summary) on success and (None, what went wrong and what to do) otherwise.
    The TaskData's `dataset` is `display_name(filename)`. `cancelled()` (polled while waiting for
    a slot and between files) says the session has ended: the work then stops and frees its slot.
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
        with _extracted(data, session, limits, cancelled) as (root, watch):
            loaded = load_folder(root, task, limits, name=name, watch=watch)
    except UploadStopped as e:
        log.info("upload %r for %s stopped: %s", name, task, e)
        return UploadOutcome(None, str(e))
    except DataError as e:
        return UploadOutcome(None, str(e))
    except Exception as e:  # never a traceback on the page
        log.exception("upload %r for %s failed", name, task)
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


# ---------------------------------------------------------------- what a session keeps


def keep_upload(stored: dict[str, TaskData], data: TaskData, limits: UploadLimits = DEFAULT_LIMITS) -> list[TaskData]:
    """Keep `data` as the session's upload for its task, within the session's memory budget.

    `stored` (task -> TaskData, what the session keeps) is changed in place: a previous upload for
    the same task is replaced, then the oldest uploads of other tasks are dropped until all that is
    kept fits in `limits.max_session_bytes` (the newest always fits: it is at most
    `max_decoded_bytes`). Returns the dropped ones, for the page to say so.
    """
    stored.pop(data.task, None)
    stored[data.task] = data  # last in the dict: the newest
    dropped = []
    while len(stored) > 1 and sum(d.images.nbytes for d in stored.values()) > limits.max_session_bytes:
        dropped.append(stored.pop(next(iter(stored))))
    return dropped


def dropped_message(dropped: list[TaskData], limits: UploadLimits = DEFAULT_LIMITS) -> str:
    """What keep_upload dropped, for the user ('' when nothing)."""
    if not dropped:
        return ""
    names = ", ".join(f"'{d.dataset}' ({d.task} task)" for d in dropped)
    one = len(dropped) == 1
    return (
        f"To stay within {limits.max_session_bytes / 2**20:,.0f} MB of images per session, this session no longer "
        f"keeps your earlier upload{'' if one else 's'} {names}; upload {'it' if one else 'them'} again to use "
        f"{'it' if one else 'them'}."
    )


class SessionJanitor:
    """Empties what ended sessions kept: their uploads' arrays, and whatever `release` frees.

    Streamlit keeps a closed tab's session, with its session_state, for
    `server.disconnectedSessionTTL` seconds (120 by default) so that it can reconnect, in a cache
    that drops expired sessions only when another session is stored there later: a 1 GB upload
    outlived its tab by ten minutes and more. The janitor holds each watched session's upload dict
    and clears it once the session has been disconnected for `grace_s` (the TTL: it can no longer
    come back), checking every `interval_s` in a daemon thread (`start`) or when `sweep` is called.
    Needs no Streamlit: the page passes `is_connected(session_id)` and `release(session_id)`.
    """

    def __init__(self, is_connected: Callable[[str], bool], grace_s: float,
                 release: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic,
                 interval_s: float = 15.0) -> None:
        self._is_connected, self._grace, self._release = is_connected, grace_s, release
        self._clock, self._interval = clock, interval_s
        self._kept: dict[str, dict] = {}
        self._gone_since: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, session_id: str, kept: dict) -> None:
        """Clear `kept` (in place) once this session has ended."""
        with self._lock:
            self._kept[session_id] = kept

    def sweep(self) -> int:
        """Release the sessions gone for grace_s; returns how many."""
        now = self._clock()
        with self._lock:
            watched = list(self._kept.items())
        released = 0
        for sid, kept in watched:
            if self._is_connected(sid):
                self._gone_since.pop(sid, None)
                continue
            if now - self._gone_since.setdefault(sid, now) < self._grace:
                continue
            kept.clear()  # the arrays go with the last reference: numpy returns large blocks to the OS
            with self._lock:
                self._kept.pop(sid, None)
            self._gone_since.pop(sid, None)
            if self._release is not None:
                try:
                    self._release(sid)
                except Exception:
                    log.exception("releasing session %s failed", sid)
            released += 1
        return released

    def start(self) -> None:
        """Sweep every interval_s in a daemon thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="headlab-upload-janitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self._interval)
            try:
                if n := self.sweep():
                    log.info("freed the uploads of %d ended session(s)", n)
            except Exception:
                log.exception("upload janitor sweep failed")


_JANITOR: SessionJanitor | None = None
_JANITOR_LOCK = threading.Lock()


def session_janitor(is_connected: Callable[[str], bool], grace_s: float,
                    release: Callable[[str], None] | None = None) -> SessionJanitor:
    """The server's one janitor, started on first use (later arguments are ignored)."""
    global _JANITOR
    with _JANITOR_LOCK:
        if _JANITOR is None:
            _JANITOR = SessionJanitor(is_connected, grace_s, release)
            _JANITOR.start()
        return _JANITOR


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
