"""A user's images decoded to one uint8 RGB array: headers first (sizes, formats, the memory and pixel
budgets), then the pixels, with a note for every conversion.

Every image becomes 8-bit RGB. If all images share one size no larger than
`UploadLimits.keep_size_up_to`, and the upload fits in `UploadLimits.max_decoded_bytes` at that
size, that size is kept; otherwise every image is resized (stretched, aspect ratio not kept, like
Keras' loader) to `UploadLimits.image_size` square.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lib.common.errors import DataError
from lib.data.limits import UploadLimits, Watch
from lib.data.messages import _Examples, _mb, _plural, _show, _why


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
