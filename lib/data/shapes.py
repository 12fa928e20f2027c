"""Deterministic synthetic "shapes" images with exact labels for all four tasks.

Each image is 64x64 RGB: 1-4 non-overlapping coloured shapes on a lightly noisy
background. Because we draw every shape ourselves (without anti-aliasing), each
label is exact:

- binary: does the image contain a circle?
- multiclass: the kind of the largest shape (by painted pixels; it is always at
  least 25% larger than the runner-up, so the answer is unambiguous);
- multilabel: which colours are present;
- regression: total painted shape area in pixels (tens to a few thousand).

Only numpy and PIL are used, so `scripts/make_sample_data.py` and the tests can
regenerate the committed set bit for bit.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
KINDS = ("circle", "square", "triangle", "star", "cross")
COLOURS = {  # name -> base RGB; each shape jitters it a little
    "red": (215, 45, 40),
    "green": (40, 165, 60),
    "blue": (45, 85, 215),
    "yellow": (235, 200, 30),
}
N_IMAGES = 600
SEED = 20240611
VAL_FRACTION = 0.25
LARGEST_MARGIN = 1.25  # largest shape's area / runner-up's, at least
NOISE_SD = 6.0  # grey levels
NOISE_FRACTION = 0.15  # of pixels that get noise
GAP = 2  # px kept free between shapes' bounding boxes, so shapes never touch
CSV_COLUMNS = ("filename", "split", "contains_circle", "largest_shape", *COLOURS, "total_area_px", "n_shapes")


@dataclass(frozen=True)
class Shape:
    """One drawn shape: kind, colour name, centre, radius and rotation (degrees)."""

    kind: str
    colour: str
    cx: int
    cy: int
    r: int
    angle: float


def _rotated(points: list[tuple[float, float]], cx: float, cy: float, angle: float) -> list[tuple[float, float]]:
    """Rotate points (given relative to the centre) by angle degrees and move them to (cx, cy)."""
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def _outline(kind: str, r: float) -> list[tuple[float, float]]:
    """Polygon vertices (relative to the centre) of a shape of 'radius' r."""
    if kind == "square":
        h = 0.8 * r
        return [(-h, -h), (h, -h), (h, h), (-h, h)]
    if kind == "triangle":
        return [(r * math.cos(math.radians(a)), r * math.sin(math.radians(a))) for a in (-90, 30, 150)]
    if kind == "star":
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else 0.45 * r
            a = math.radians(-90 + 36 * i)
            pts.append((rad * math.cos(a), rad * math.sin(a)))
        return pts
    if kind == "cross":
        t, L = 0.33 * r, r
        return [(-t, -L), (t, -L), (t, -t), (L, -t), (L, t), (t, t), (t, L), (-t, L), (-t, t), (-L, t), (-L, -t), (-t, -t)]
    raise ValueError(f"no outline for {kind!r}")


def shape_mask(shape: Shape) -> np.ndarray:
    """Boolean (SIZE, SIZE) mask of the pixels the shape paints (no anti-aliasing)."""
    img = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(img)
    if shape.kind == "circle":
        draw.ellipse((shape.cx - shape.r, shape.cy - shape.r, shape.cx + shape.r, shape.cy + shape.r), fill=255)
    else:
        draw.polygon(_rotated(_outline(shape.kind, shape.r), shape.cx, shape.cy, shape.angle), fill=255)
    return np.asarray(img) > 0


def _boxes_clear(mask: np.ndarray, taken: np.ndarray) -> bool:
    """True when the mask's bounding box (grown by GAP) does not meet any taken pixel."""
    ys, xs = np.nonzero(mask)
    y0, y1 = max(ys.min() - GAP, 0), min(ys.max() + GAP + 1, SIZE)
    x0, x1 = max(xs.min() - GAP, 0), min(xs.max() + GAP + 1, SIZE)
    return not taken[y0:y1, x0:x1].any()


def _place(rng: np.random.Generator, kind: str, colour: str, r: int, taken: np.ndarray) -> tuple[Shape, np.ndarray] | None:
    """Try random positions for one shape; None when it does not fit beside the others."""
    for _ in range(60):
        cx, cy = (int(v) for v in rng.integers(r + 1, SIZE - r - 1, size=2))
        angle = float(rng.integers(0, 360)) if kind != "circle" else 0.0
        shape = Shape(kind, colour, cx, cy, r, angle)
        mask = shape_mask(shape)
        if mask.any() and _boxes_clear(mask, taken):
            return shape, mask
    return None


def _scene(rng: np.random.Generator, largest_kind: str) -> tuple[list[Shape], list[np.ndarray]]:
    """Shapes for one image whose largest shape is of largest_kind, by a clear margin."""
    colours = list(COLOURS)
    while True:
        n = int(rng.integers(1, 5))
        taken = np.zeros((SIZE, SIZE), bool)
        big = _place(rng, largest_kind, colours[rng.integers(len(colours))], int(rng.integers(8, 21)), taken)
        if big is None:
            continue
        shapes, masks = [big[0]], [big[1]]
        taken |= big[1]
        limit = big[1].sum() / LARGEST_MARGIN
        for _ in range(5 * (n - 1)):  # a few tries per extra shape; some images end up with fewer
            if len(shapes) == n:
                break
            kind = KINDS[rng.integers(len(KINDS))]
            placed = _place(rng, kind, colours[rng.integers(len(colours))], int(rng.integers(5, big[0].r - 2)), taken)
            if placed is not None and placed[1].sum() <= limit:
                shapes.append(placed[0])
                masks.append(placed[1])
                taken |= placed[1]
        return shapes, masks


def render(rng: np.random.Generator, shapes: list[Shape], masks: list[np.ndarray]) -> np.ndarray:
    """Paint shapes on a light background with a gentle gradient and sparse noise; uint8 (SIZE, SIZE, 3)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    gx, gy = rng.uniform(-15.0, 15.0, size=2)
    img = np.empty((SIZE, SIZE, 3), np.float32)
    img[:] = rng.integers(170, 226) + rng.integers(-12, 13, size=3)
    img += (gx * xx + gy * yy)[..., None]
    for shape, mask in zip(shapes, masks, strict=True):
        img[mask] = np.asarray(COLOURS[shape.colour]) + rng.integers(-18, 19, size=3)
    # Noise on a fraction of the pixels only: it looks like sensor speckle and keeps PNGs ~3 KB.
    noisy = rng.random((SIZE, SIZE)) < NOISE_FRACTION
    img[noisy] += rng.normal(0.0, NOISE_SD, size=(int(noisy.sum()), 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _split(largest: list[str], rng: np.random.Generator) -> list[str]:
    """Stratified by the multiclass label: VAL_FRACTION of each class goes to validation."""
    split = ["train"] * len(largest)
    for kind in KINDS:
        idx = [i for i, k in enumerate(largest) if k == kind]
        for i in rng.permutation(idx)[: round(VAL_FRACTION * len(idx))]:
            split[int(i)] = "val"
    return split


def generate(n: int = N_IMAGES, seed: int = SEED) -> tuple[np.ndarray, list[dict]]:
    """(images uint8 (n, SIZE, SIZE, 3), one label row per image), deterministic in (n, seed)."""
    rng = np.random.default_rng(seed)
    largest_kinds = [KINDS[i % len(KINDS)] for i in range(n)]  # balanced multiclass
    largest_kinds = [largest_kinds[i] for i in rng.permutation(n)]
    images = np.empty((n, SIZE, SIZE, 3), np.uint8)
    rows = []
    for i, kind in enumerate(largest_kinds):
        shapes, masks = _scene(rng, kind)
        images[i] = render(rng, shapes, masks)
        present = {s.colour for s in shapes}
        rows.append({
            "filename": f"images/{i:04d}.png",
            "contains_circle": int(any(s.kind == "circle" for s in shapes)),
            "largest_shape": kind,
            **{c: int(c in present) for c in COLOURS},
            "total_area_px": int(sum(int(m.sum()) for m in masks)),
            "n_shapes": len(shapes),
        })
    for row, split in zip(rows, _split(largest_kinds, rng), strict=True):
        row["split"] = split
    return images, rows


def labels_csv(rows: list[dict]) -> bytes:
    """The rows as labels.csv bytes (fixed column order, '\\n' line ends)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def png_bytes(image: np.ndarray) -> bytes:
    """Lossless PNG encoding of one uint8 image."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")  # optimize=True: 3% smaller, 8x slower
    return buf.getvalue()


def write_dataset(dest: Path, n: int = N_IMAGES, seed: int = SEED) -> list[dict]:
    """Write images/*.png and labels.csv under dest; returns the label rows."""
    images, rows = generate(n, seed)
    (dest / "images").mkdir(parents=True, exist_ok=True)
    for image, row in zip(images, rows, strict=True):
        (dest / row["filename"]).write_bytes(png_bytes(image))
    (dest / "labels.csv").write_bytes(labels_csv(rows))
    return rows
