"""The join link's QR code: big whole-pixel modules, the quiet zone, and exactly the link encoded.

Nothing here decodes a QR code (that would need a decoder library); instead the PNG is read module by
module and compared with segno's own matrix of the link: the picture is that symbol, pixel for pixel.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from lib.classroom.qr import MIN_PIXELS, QUIET_ZONE, encode, join_qr

URL = "http://192.168.1.20:8501/room?code=ABC234"


def modules_of(png: bytes, scale: int) -> np.ndarray:
    """The PNG's modules (True = dark), read at each module's centre, after checking each is one flat block."""
    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    n = img.shape[0] // scale
    blocks = img.reshape(n, scale, n, scale).transpose(0, 2, 1, 3)
    assert np.all(blocks.min(axis=(2, 3)) == blocks.max(axis=(2, 3))), "a module is not one flat square"
    return blocks[:, :, 0, 0] < 128


def test_the_png_is_the_links_symbol_module_for_module():
    qr = join_qr(URL)
    symbol = np.array([list(row) for row in encode(URL).matrix], dtype=bool)
    modules = modules_of(qr.png, qr.scale)
    b = QUIET_ZONE
    assert modules.shape == (symbol.shape[0] + 2 * b,) * 2
    assert np.array_equal(modules[b:-b, b:-b], symbol)
    assert not modules[:b].any() and not modules[-b:].any() and not modules[:, :b].any() and not modules[:, -b:].any()
    # and the comparison can fail: another room's link is another symbol
    other = np.array([list(row) for row in encode(URL.replace("ABC234", "ABC235")).matrix], dtype=bool)
    assert not np.array_equal(other, symbol)


def test_the_link_is_encoded_as_is_in_the_smallest_version_with_big_modules():
    symbol = encode(URL)
    assert symbol.mode == "byte"  # the URL's bytes as they are (no case folding)
    assert not symbol.is_micro and symbol.designator == f"{symbol.version}-{symbol.error}"
    assert symbol.version == 3  # 29 modules across: the smallest a 41-character link fits with any correction
    qr = join_qr(URL)
    assert (qr.version, qr.error) == (symbol.version, symbol.error) and qr.error in "LMQH"
    width = symbol.symbol_size(scale=1, border=QUIET_ZONE)[0]
    assert Image.open(io.BytesIO(qr.png)).size == (qr.pixels, qr.pixels) == (width * qr.scale,) * 2
    assert qr.pixels >= MIN_PIXELS and qr.scale >= 10  # at least 10 pixels per module on a projector


def test_a_longer_link_keeps_the_size_with_smaller_modules():
    long_url = "https://headlab.example-university.edu/workshops/2026/room?code=ABC234"
    qr = join_qr(long_url)
    modules = encode(long_url).symbol_size(scale=1, border=QUIET_ZONE)[0]
    assert qr.version > 3 and MIN_PIXELS <= qr.pixels < MIN_PIXELS + modules  # the fewest whole pixels per module
