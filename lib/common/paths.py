"""Where Head Lab keeps files it computes (feature cache, converted weights)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# A temp file this old was left by a writer that died (killed server, power cut): no live write
# takes minutes, so the next write in the same folder removes it.
STALE_TMP_SECONDS = 15 * 60
SAMPLE_DATA = REPO_ROOT / "sample_data"


def cache_dir() -> Path:
    """The engine's disk cache: $HEADLAB_CACHE, else ~/.cache/headlab."""
    root = os.environ.get("HEADLAB_CACHE") or str(Path.home() / ".cache" / "headlab")
    return Path(root)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    remove_stale_temp_files(path.parent)


def remove_stale_temp_files(folder: Path, older_than: float = STALE_TMP_SECONDS) -> list[Path]:
    """Delete leftovers of atomic_write_bytes ('.<name>.<random>.tmp') older than `older_than` seconds."""
    removed = []
    cutoff = time.time() - older_than
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    except OSError:
        return removed
    for p in candidates:
        try:
            if p.is_file() and p.stat().st_mtime < cutoff:
                p.unlink()
                removed.append(p)
        except OSError:  # another writer removed or replaced it first
            continue
    return removed
