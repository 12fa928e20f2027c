"""Server memory of uploads: the largest upload the limits allow, kept by 3 sessions, then released.

    .venv/bin/python bench/upload_memory.py [--sessions 3]

Builds a zip of 5,000 PNGs of 256x256 px (one size, so the loader would keep it), loads it with
`lib.data.uploads.handle_upload` once per "session", keeps each like the Data page (`keep_upload`), then
empties them as `SessionJanitor` does for ended sessions, printing the process's RSS at each step.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import io
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from lib.data import uploads  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def zip_of_pngs(n: int = 5_000, side: int = 256) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            png = io.BytesIO()
            Image.new("RGB", (side, side), (60 * (i % 4), i % 256, (7 * i) % 256)).save(png, "PNG")
            zf.writestr(f"set/c{i % 4}/{i:04d}.png", png.getvalue())
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=3)
    args = ap.parse_args()
    content = zip_of_pngs()
    print(f"zip of 5,000 PNGs, 256x256: {len(content) / 2**20:.1f} MB; RSS {rss_mb():,.0f} MB")
    kept: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.sessions):
            t = time.perf_counter()
            out = uploads.handle_upload(content, "u.zip", "multiclass", Path(tmp) / f"s{k}")
            assert out.data is not None, out.message
            stored: dict = {}
            uploads.keep_upload(stored, out.data)
            kept.append(stored)
            shape, nbytes = out.data.images.shape, out.data.images.nbytes
            del out
            print(f"session {k + 1}: {shape}, {nbytes / 2**20:,.0f} MB, loaded in {time.perf_counter() - t:.1f} s; "
                  f"RSS {rss_mb():,.0f} MB")
    for stored in kept:
        stored.clear()  # what SessionJanitor does once a session has ended
    gc.collect()
    print(f"all released: RSS {rss_mb():,.0f} MB")
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    print(f"after malloc_trim: RSS {rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
