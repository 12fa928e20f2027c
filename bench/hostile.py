"""A hostile participant: the worst links and uploads of issue 9, sent again and again, in two real tabs.

Used by `bench/load.py --hostile`: while the rest of the class trains, this participant keeps sending
what once took a workshop server down — a 299 px Flatten head with a 2,048-unit hidden layer, six
4 × 4,096-unit heads for 200 epochs, Markdown in every link value, a zip with a million labels, zips of
tiny files that decode to huge images, a CSV whose file name is a 16 KB path, 19,990 empty folders and
5,000 images that once cost 1 GB of memory each time. Every upload and link is generated here, in
memory; nothing is written to disk.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
import urllib.parse
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image


def _zip(entries: dict[str, bytes], folders: int = 0) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(folders):
            zf.writestr(zipfile.ZipInfo(f"d{k}/"), b"")
        for name, content in entries.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _png(size: tuple[int, int], mode: str = "RGB", colour=0) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, format="PNG")
    return buf.getvalue()


def million_labels() -> bytes:
    """1,000 one-pixel images and a labels.csv naming 1,000,000 different ';'-separated labels."""
    pixel = _png((1, 1))
    rows = ["filename,labels"] + [f"{i}.png," + ";".join(f"l{i * 1000 + j}" for j in range(1000)) for i in range(1000)]
    return _zip({**{f"{i}.png": pixel for i in range(1000)}, "labels.csv": "\n".join(rows).encode()})


def decode_bombs() -> bytes:
    """160 PNGs of 4.4 KB each that decode to 6000 × 6000 pixels (~0.75 s each, once)."""
    big = _png((6000, 6000), mode="1")
    return _zip({f"{c}/{i}.png": big for c in ("a", "b") for i in range(80)})


def deep_path_csv() -> bytes:
    """A labels.csv whose file name is a path 8,000 folders deep (once: quadratic matching)."""
    pixel = _png((1, 1))
    deep = "a/" * 8000 + "x.png"
    return _zip({"x.png": pixel, "y.png": pixel, "labels.csv": f"filename,v\n{deep},1\ny.png,2\n".encode()})


def empty_folders() -> bytes:
    """19,990 empty folder entries and two class folders of a few images."""
    pixel = _png((8, 8))
    return _zip({f"{c}/{i}.png": pixel for c in ("a", "b") for i in range(3)}, folders=19_990)


def memory_hog() -> bytes:
    """5,000 PNGs of 256 × 256 (3 MB zipped) that once kept ~1 GB per upload in the session's memory."""
    return _zip({f"{c}/{i}.png": _png((256, 256), colour=(i % 256, 0, 0)) for c in ("a", "b") for i in range(2500)})


# (name, task to upload for, zip bytes): built once per run, when first used
UPLOADS: list[tuple[str, str, Callable[[], bytes]]] = [
    ("a million labels", "multilabel", million_labels),
    ("decode bombs", "multiclass", decode_bombs),
    ("16 KB path in labels.csv", "regression", deep_path_csv),
    ("19,990 empty folders", "binary", empty_folders),
    ("5,000 images of 256 px", "binary", memory_hog),
]


def links() -> list[tuple[str, str]]:
    """(name, query) of the links that once held the only training slot for hours, or injected Markdown."""
    from lib.experiment import Experiment
    from lib.heads.config import parse_head_string

    def query(exp: Experiment, **extra: str) -> str:
        return urllib.parse.urlencode({**exp.to_query(), **extra}, doseq=True)

    flat = parse_head_string("binary", "pooling=flatten,hidden=2048:relu")
    huge = parse_head_string("multiclass", "units=4096,hidden=4096:relu;4096:relu;4096:relu;4096:relu,pooling=flatten")
    image = "![t](http://hl-probe.invalid/t.png)"
    return [
        ("299 px Flatten + Dense(2048)", query(Experiment(input_size=299, epochs=2, heads=(flat,)))),
        ("6 heads of 4 × 4096, 200 epochs",
         query(Experiment(task="multiclass", dataset="fashion", input_size=299, epochs=200, heads=(huge,) * 6))),
        ("Markdown in every value", query(Experiment(), task=image, ds=image, bb=image, epochs=image)),
    ]


@dataclass
class Attempt:
    what: str
    seconds: float
    outcome: str  # the first alert the page showed (trimmed), or what went wrong


async def _first_alert(page, timeout_s: float) -> str:
    """The text of the first error/success/info alert to appear (after a click or an upload)."""
    alert = page.locator("[data-testid=stAlertContentError], [data-testid=stAlertContentSuccess], "
                         "[data-testid=stException]").first
    await alert.wait_for(timeout=timeout_s * 1000)
    return " ".join((await alert.inner_text()).split())[:160]


async def _upload(page, url: str, name: str, task: str, content: bytes, timeout_s: float) -> str:
    await page.goto(f"{url}/data")
    await page.get_by_role("tab", name="Upload your own").click(timeout=60_000)
    # the upload tab's task radio (the hidden sample tab has radio options of the same names)
    await page.locator("[data-testid=stRadioOption]:visible").filter(has_text=re.compile(f"^{task}$")).click(
        timeout=60_000)
    await page.wait_for_timeout(500)
    await page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(
        files=[{"name": f"{name}.zip", "mimeType": "application/zip", "buffer": content}])
    return await _first_alert(page, timeout_s)


async def _link(page, url: str, query: str, timeout_s: float) -> str:
    await page.goto(f"{url}/experiment?{query}")
    await page.get_by_role("button", name="Train").click(timeout=60_000)
    return await _first_alert(page.locator("[data-testid=stMain]"), timeout_s)


def prepare() -> dict[str, bytes]:
    """Every hostile upload, built once (the 5,000-image zip takes seconds: not inside a timed burst)."""
    return {name: make() for name, _, make in UPLOADS}


async def run(browser, url: str, stop: asyncio.Event, built: dict[str, bytes], timeout_s: float = 300) -> list[Attempt]:
    """Send the hostile links (one tab) and uploads (another tab) in turn, over and over, until `stop` is set."""
    sends = [(name, lambda p, q=q: _link(p, url, q, timeout_s)) for name, q in links()]
    ups = [(name, lambda p, n=name, t=task: _upload(p, url, n, t, built[n], timeout_s)) for name, task, _ in UPLOADS]
    attempts: list[Attempt] = []

    async def tab(plan) -> None:
        ctx = await browser.new_context(viewport={"width": 1280, "height": 1000})
        try:
            page = await ctx.new_page()
            while not stop.is_set():
                for what, send in plan:
                    if stop.is_set():
                        break
                    t0 = time.monotonic()
                    try:
                        outcome = await send(page)
                    except Exception as e:  # noqa: BLE001 — a page that never answers is a finding, not a crash
                        outcome = f"no answer: {type(e).__name__}: {str(e)[:120]}"
                    attempts.append(Attempt(what, time.monotonic() - t0, outcome))
        finally:
            await ctx.close()

    await asyncio.gather(tab(sends), tab(ups))
    return attempts
