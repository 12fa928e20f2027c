"""The QR code of a room's join link, as a PNG a projector shows big enough to scan from the back row.

Readable from afar means large modules, not more data: the code uses the smallest QR version the link
fits in (error correction raised only as far as that version allows, `boost_error`), so each module is
as big as possible for the picture's size, with the standard quiet zone of 4 modules around it (a
scanner needs it to find the code's edges). A join link (about 50 characters) fits version 3 or 4:
29–33 modules across.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import segno

QUIET_ZONE = 4  # modules of white around the code: the QR standard's minimum for reliable scanning
# At least this many pixels across: on a 1600 px wide projector image between a fifth and a quarter of
# the screen's width (what the teacher page's right-hand column holds beside the sidebar), so on a 3 m
# wide screen about 0.7 m, which phones scan from about 7 m (a rule of thumb of 10 × the code's width).
MIN_PIXELS = 360


@dataclass(frozen=True)
class JoinQR:
    """A QR code as PNG bytes, with what a test or a page may want to know about it."""

    png: bytes
    version: int      # 1–40: how many modules across (17 + 4 × version)
    error: str        # the error correction level actually used: L, M, Q or H
    scale: int        # pixels per module
    pixels: int       # width = height of the PNG, quiet zone included


def encode(url: str) -> segno.QRCode:
    """The QR symbol of `url`: never a Micro QR (most phone cameras cannot read those), the smallest version."""
    return segno.make(url, error="l", boost_error=True, micro=False)


def join_qr(url: str, min_pixels: int = MIN_PIXELS) -> JoinQR:
    """The PNG of `url`'s QR code: whole pixels per module (no blurred edges), at least `min_pixels` across."""
    qr = encode(url)
    modules = qr.symbol_size(scale=1, border=QUIET_ZONE)[0]
    scale = max(1, math.ceil(min_pixels / modules))
    out = io.BytesIO()
    qr.save(out, kind="png", scale=scale, border=QUIET_ZONE, dark="black", light="white")
    return JoinQR(out.getvalue(), int(qr.version), str(qr.error), scale, modules * scale)
