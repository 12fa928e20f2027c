"""Shared fixtures: an isolated cache, and small datasets for every task that need no files."""

from __future__ import annotations

import os
import tempfile

# Before anything imports Keras: keep tests off the user's caches and never reach for the network.
_TMP = tempfile.mkdtemp(prefix="headlab-tests-")
# Forced, not defaulted: some tests damage cache entries on purpose and must never touch a real cache.
os.environ["HEADLAB_CACHE"] = os.path.join(_TMP, "cache")
os.environ["KERAS_HOME"] = os.path.join(_TMP, "keras")
# No background warm-up of every lesson (lib/serve/warmup.py) in AppTests and the servers tests start (they
# inherit this environment): it would train all 15 lessons beside every test. tests/test_warmup.py drives it directly.
os.environ["HEADLAB_WARM_LESSONS"] = "0"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lib.data.taskdata import TaskData  # noqa: E402


def rendered(markdown: str) -> tuple[str, str]:
    """(HTML, the text a reader sees) of a Markdown string as CommonMark renders it: what AppTest's
    element values (Markdown source, escaped where it quotes users) look like on the page."""
    import re

    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").render(markdown)
    text = re.sub(r"<[^>]+>", "", html)
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&amp;", "&")):
        text = text.replace(entity, char)
    return html, " ".join(text.split())


def visible(markdown: str) -> str:
    """The text a reader sees of a Markdown string, without the invisible word joiners md_escape adds."""
    return rendered(markdown)[1].replace("\u2060", "")

# The bundled ImageNet MobileNetV2 at 64 px: pretrained (random MobileNets give near-zero features, so
# nothing could be learned from them), offline, and fast enough for the whole suite.
TEST_BACKBONE = {"backbone": "mobilenet_v2", "input_size": 64, "weights": "auto"}


def toy_data(task: str, n: int = 160, seed: int = 0, cache_on_disk: bool = True) -> TaskData:
    """Images whose targets are written into them (bright quadrants), so even random features can learn.

    They stand in for a sample dataset, so their features may be cached on disk; cache_on_disk=False
    makes them behave like an upload (features in memory only).
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 80, (n, 32, 32, 3), dtype=np.uint8)
    quads = [(slice(0, 16), slice(0, 16)), (slice(0, 16), slice(16, 32)),
             (slice(16, 32), slice(0, 16)), (slice(16, 32), slice(16, 32))]
    if task == "binary":
        y = (np.arange(n) % 2).astype(np.int32)
        names = ("dark", "bright")
        for i in np.where(y == 1)[0]:
            images[i, :16, :, :] = 230
    elif task == "multiclass":
        y = (np.arange(n) % 4).astype(np.int32)
        names = ("top-left", "top-right", "bottom-left", "bottom-right")
        for i, k in enumerate(y):
            images[(i, *quads[k])] = 230
    elif task == "multilabel":
        y = (rng.random((n, 3)) < 0.45).astype(np.float32)
        names = ("red", "green", "blue")
        for i in range(n):
            for c in range(3):
                if y[i, c]:
                    images[i, :, :, c] = 220
    else:
        y = rng.uniform(10, 500, n).astype(np.float32)
        names = ("area",)
        for i in range(n):
            side = int(np.sqrt(y[i]))
            images[i, :side, :side, :] = 250
    is_val = np.random.default_rng(seed + 1).permutation(n) < n // 4
    return TaskData("toy", task, images, y, is_val, names, unit="px" if task == "regression" else "",
                    cache_on_disk=cache_on_disk)


@pytest.fixture(scope="session")
def toy():
    """toy(task) -> TaskData, built once per task."""
    cache: dict[str, TaskData] = {}

    def get(task: str) -> TaskData:
        if task not in cache:
            cache[task] = toy_data(task)
        return cache[task]

    return get


@pytest.fixture(scope="session")
def tiny_backbone():
    """The bundled pretrained MobileNetV2 at 64 px (session-wide; tests never train it in place)."""
    from lib.backbones.registry import BUNDLED, load_backbone

    bb = load_backbone(TEST_BACKBONE["backbone"], TEST_BACKBONE["input_size"], TEST_BACKBONE["weights"])
    assert bb.weights == BUNDLED, "the ImageNet weights package is missing: run `make test` to install it"
    return bb


THREAD_WAIT = 300  # seconds: only a bound for a hung thread on a loaded machine, never a measurement


@pytest.fixture
def empty_sweep_cache():
    """The server's shared sweep cache, empty before and after the test (tests that train through it)."""
    from lib.serve import sweep_cache

    sweep_cache.clear()
    yield
    sweep_cache.clear()
