"""A user's zip, extracted safely into an empty folder.

The archive's size, entry and folder counts, declared unpacked size and every path (safety, depth,
length) are checked from its central directory before anything is written; symlinks, absolute paths
and '..' are refused, and no entry may write more than it declared.
"""

from __future__ import annotations

import io
import re
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from lib.common.errors import DataError
from lib.data.limits import UploadLimits, Watch, _check_path, _is_junk
from lib.data.messages import _mb, _q, _why


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
