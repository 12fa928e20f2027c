"""What the Data page shows about a dataset: example picks, captions, thumbnails, balance, facts.

Everything works on a `TaskData` (a sample dataset or a validated upload) and, for the sample
datasets, their card (`lib.data.dataset_card`). Only numpy, PIL and plotly are imported here (no
Keras, no Streamlit), so the page stays quick to load.

Text that comes from users (class names from folder names, CSV headers) is escaped before it
reaches plotly (`html.escape`, its labels accept a subset of HTML) or markdown (`md_escape`).
"""

from __future__ import annotations

import html
import math

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageOps

from lib.common.text import md_escape
from lib.data.messages import _plural
from lib.data.taskdata import TaskData

THUMB_SIZE = 96
TRAIN_COLOR = "#4c72b0"
VAL_COLOR = "#dd8452"  # also the frame of validation thumbnails, so chart and grid agree
FRAME_WIDTH = 4
NO_LABEL = "(no label)"
REGRESSION_BINS = 8
TASK_TITLES = {
    "binary": "binary (two classes)",
    "multiclass": "multiclass (one of K classes)",
    "multilabel": "multilabel (any number of labels)",
    "regression": "regression (a number)",
}


# ---------------------------------------------------------------- formatting


def format_value(value: float, unit: str = "") -> str:
    """A regression target for people: '534 px', '12.35 kg', '0.0012'."""
    v = float(value)
    if not math.isfinite(v):
        text = str(v)
    elif v == round(v) and abs(v) < 1e9:
        text = f"{int(round(v)):,}"
    else:
        text = f"{v:,.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return f"{text} {unit}".strip()


def present_labels(data: TaskData, i: int) -> list[str]:
    """Multilabel: the names of the labels image i has."""
    return [name for name, v in zip(data.label_names, data.y[i], strict=True) if v > 0.5]


def caption(data: TaskData, i: int) -> str:
    """Image i's target as text: class name; present labels joined by ', '; or the value with unit."""
    if data.task in ("binary", "multiclass"):
        return str(data.label_names[int(data.y[i])])
    if data.task == "multilabel":
        return ", ".join(present_labels(data, i)) or NO_LABEL
    return format_value(data.y[i], data.unit)


def split_name(data: TaskData, i: int) -> str:
    """'val' or 'train'."""
    return "val" if data.is_val[i] else "train"


def grid_caption(data: TaskData, i: int) -> str:
    """A grid caption: the target, then which split the image is in ('Sneaker · val')."""
    return f"{caption(data, i)} · {split_name(data, i)}"


# ---------------------------------------------------------------- choosing examples


def _groups(data: TaskData) -> list[np.ndarray]:
    """Index groups to balance over: one per class, or per label (rarest first) plus unlabelled."""
    if data.task in ("binary", "multiclass"):
        return [np.flatnonzero(data.y == c) for c in range(data.n_classes)]
    y = np.asarray(data.y) > 0.5
    order = np.argsort(y.sum(axis=0), kind="stable")  # rarest label first: it gets its picks first
    groups = [np.flatnonzero(y[:, j]) for j in order]
    groups.append(np.flatnonzero(~y.any(axis=1)))
    return groups


def _wants_val(j: int, fraction: float, phase: float = 0.5) -> bool:
    """Whether a group's pick number j should be a validation image, so that its picks 0..j hold
    about (j + 1) * fraction of them, spread evenly. Groups use different phases so that small
    groups (2-3 picks each) do not all skip validation, or all take it at the same turn."""
    return math.floor((j + 1) * fraction + phase) > math.floor(j * fraction + phase)


_GOLDEN = (math.sqrt(5) - 1) / 2  # group g's phase is g * _GOLDEN mod 1: well spread for any count


def _take(train: list[int], val: list[int], want_val: bool) -> int:
    """Pop from the wanted split's queue, or from the other one when it has run out."""
    first, second = (val, train) if want_val else (train, val)
    return int((first or second).pop(0))


def example_indices(data: TaskData, k: int = 24, seed: int = 0) -> np.ndarray:
    """Up to k image indices that show every class (label, or part of the target range) fairly.

    binary / multiclass: classes take turns, so their counts differ by at most one unless a class
    runs out; the result is ordered by class. multilabel: labels take turns from the rarest (an
    image is picked once even when it has several labels); images with no label count as one
    more group. regression: one image from each of k equal-count slices of the sorted targets,
    ordered from the smallest value to the largest. Training and validation images appear in the
    dataset's proportion (where the groups allow). Within a group the pick is random but fixed by
    seed.
    """
    n = len(data.y)
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    is_val = np.asarray(data.is_val, bool)
    fraction = float(is_val.mean())

    def queues(members: np.ndarray) -> tuple[list[int], list[int]]:
        members = rng.permutation(members)
        return [int(i) for i in members if not is_val[i]], [int(i) for i in members if is_val[i]]

    if data.task == "regression":
        by_value = np.argsort(np.asarray(data.y, np.float64), kind="stable")
        picks = [_take(*queues(chunk), _wants_val(m, fraction))
                 for m, chunk in enumerate(np.array_split(by_value, k))]
        return np.array(picks, np.int64)

    groups = [queues(g) for g in _groups(data)]
    chosen: set[int] = set()
    picked: list[list[int]] = [[] for _ in groups]
    while len(chosen) < k and any(t or v for t, v in groups):
        for g, (train, val) in enumerate(groups):
            for queue in (train, val):  # multilabel: drop images already picked for another label
                while queue and queue[0] in chosen:
                    queue.pop(0)
            if (train or val) and len(chosen) < k:
                i = _take(train, val, _wants_val(len(picked[g]), fraction, (0.5 + g * _GOLDEN) % 1.0))
                chosen.add(i)
                picked[g].append(i)
    return np.array([i for group in picked for i in group], np.int64)


# ---------------------------------------------------------------- thumbnails


def thumbnail(image: np.ndarray, size: int = THUMB_SIZE, frame: str | None = None) -> Image.Image:
    """An (H, W, 3) uint8 image scaled so its longer side is `size` px.

    Small images are enlarged with nearest-neighbour, so their pixels stay sharp squares instead
    of a blur; larger ones are reduced smoothly. `frame` (a '#rrggbb' colour) draws a border
    inside the thumbnail, so its size does not change.
    """
    im = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    h, w = image.shape[:2]
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    im = im.resize(new, resample)
    if frame:
        bw = min(FRAME_WIDTH, max(1, min(new) // 8))
        inner = im.crop((bw, bw, new[0] - bw, new[1] - bw))
        im = ImageOps.expand(inner, border=bw, fill=frame)
    return im


def gallery(data: TaskData, indices: np.ndarray, size: int = THUMB_SIZE) -> tuple[list[Image.Image], list[str]]:
    """(thumbnails, captions) for the grid; validation images get a frame in VAL_COLOR. Captions are
    Markdown-escaped (st.image renders them as Markdown; class names come from users)."""
    thumbs = [thumbnail(data.images[i], size, VAL_COLOR if data.is_val[i] else None) for i in indices]
    return thumbs, [md_escape(grid_caption(data, int(i))) for i in indices]


# ---------------------------------------------------------------- balance


def _nice_step(span: float, bins: int) -> float:
    """A round bin width (1, 2, 2.5 or 5 times a power of ten) giving about `bins` bins."""
    raw = span / bins
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _regression_edges(y: np.ndarray, bins: int) -> np.ndarray:
    """Bin edges at round numbers covering [min, max]; a single edge pair when all values agree."""
    lo, hi = float(np.min(y)), float(np.max(y))
    if hi <= lo:
        return np.array([lo, lo])
    step = _nice_step(hi - lo, bins)
    start = math.floor(lo / step) * step
    n = max(1, math.ceil((hi - start) / step - 1e-9))
    if start + n * step <= hi:  # the maximum belongs in the last bin, not past it
        n += 1
    return start + step * np.arange(n + 1)


def balance_table(data: TaskData, bins: int = REGRESSION_BINS) -> list[dict]:
    """Rows of {'label', 'train', 'val', 'total'} image counts.

    binary / multiclass: one row per class. multilabel: one row per label (images that have it;
    an image with two labels counts in both), plus a NO_LABEL row when some images have none.
    regression: one row per equal-width range of the target ('250 – 500 px', with its 'low' and
    'high' ends), low to high, starting and ending at round numbers.
    """
    train, val = ~np.asarray(data.is_val, bool), np.asarray(data.is_val, bool)

    def row(label: str, member: np.ndarray) -> dict:
        t, v = int((member & train).sum()), int((member & val).sum())
        return {"label": label, "train": t, "val": v, "total": t + v}

    if data.task in ("binary", "multiclass"):
        return [row(name, data.y == c) for c, name in enumerate(data.label_names)]
    if data.task == "multilabel":
        y = np.asarray(data.y) > 0.5
        rows = [row(name, y[:, j]) for j, name in enumerate(data.label_names)]
        none = ~y.any(axis=1)
        if none.any():
            rows.append(row(NO_LABEL, none))
        return rows
    y = np.asarray(data.y, np.float64)
    edges = _regression_edges(y, bins)
    if len(edges) == 2 and edges[0] == edges[1]:
        only = {"low": float(edges[0]) - 0.5, "high": float(edges[0]) + 0.5}  # all values agree
        return [{**row(format_value(edges[0], data.unit), np.ones(len(y), bool)), **only}]
    which = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        r = row(f"{format_value(edges[b])} – {format_value(edges[b + 1], data.unit)}", which == b)
        rows.append({**r, "low": float(edges[b]), "high": float(edges[b + 1])})
    return rows


def balance_figure(data: TaskData, height: int | None = None) -> go.Figure:
    """Training and validation counts as stacked bars (from `balance_table`).

    Classes and labels are horizontal bars (long names stay readable); regression target ranges
    are vertical bars from low to high, i.e. a histogram.
    """
    rows = balance_table(data)
    labels = [html.escape(r["label"], quote=False) for r in rows]
    horizontal = data.task != "regression"
    fig = go.Figure()
    for key, name, color in (("train", "training", TRAIN_COLOR), ("val", "validation", VAL_COLOR)):
        counts = [r[key] for r in rows]
        if horizontal:
            fig.add_bar(y=labels, x=counts, name=name, orientation="h", marker_color=color,
                        hovertemplate="%{y}: %{x} " + name + " images<extra></extra>")
        else:  # a histogram on a numeric axis: bars as wide as their range
            lows, highs = (np.array([r.get(e, 0.0) for r in rows]) for e in ("low", "high"))
            fig.add_bar(x=(lows + highs) / 2, width=np.maximum(highs - lows, 1e-12), y=counts, name=name,
                        marker=dict(color=color, line=dict(color="white", width=1)), customdata=labels,
                        hovertemplate="%{customdata}: %{y} " + name + " images<extra></extra>")
    title = {
        "binary": "Images per class",
        "multiclass": "Images per class",
        "multilabel": "Images with each label",
        "regression": f"Distribution of {html.escape(data.label_names[0], quote=False)}",
    }[data.task]
    if height is None:
        height = max(220, 90 + 26 * len(rows)) if horizontal else 300
    fig.update_layout(
        barmode="stack", template="plotly_white", height=height, title=dict(text=title, x=0.01),
        margin=dict(l=10, r=10, t=60, b=10), font=dict(size=13),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0, traceorder="normal"),
    )
    if horizontal:
        fig.update_yaxes(autorange="reversed", automargin=True)  # first class on top
        fig.update_xaxes(title_text="images")
    else:
        fig.update_xaxes(title_text=html.escape(data.unit or "value", quote=False), automargin=True)
        fig.update_yaxes(title_text="images")
    return fig


# ---------------------------------------------------------------- facts


def image_size_text(data: TaskData) -> str:
    """'28×28 px' (width × height)."""
    return f"{data.images.shape[2]}×{data.images.shape[1]} px"


def split_text(data: TaskData) -> str:
    """'800 images: 600 training, 200 validation'."""
    n_val = int(np.sum(data.is_val))
    return f"{_plural(len(data.y), 'image')}: {len(data.y) - n_val:,} training, {n_val:,} validation"


def targets_text(data: TaskData) -> str:
    """What the targets are: '10 classes: a, b, ...', '4 labels: ...', or the target and its range."""
    names = ", ".join(data.label_names)
    if data.task in ("binary", "multiclass"):
        extra = f" (0 = {data.label_names[0]}, 1 = {data.label_names[1]})" if data.task == "binary" else ""
        return f"{len(data.label_names)} classes: {names}{extra}"
    if data.task == "multilabel":
        return f"{_plural(len(data.label_names), 'label')}: {names}"
    y = np.asarray(data.y, np.float64)
    unit = f" in {data.unit}" if data.unit else ""
    return f"{data.label_names[0]}{unit}, from {format_value(y.min())} to {format_value(y.max(), data.unit)}"


def data_facts(data: TaskData) -> list[tuple[str, str]]:
    """(field, value) rows describing any TaskData: size and split, image size, targets."""
    return [
        ("Size", split_text(data)),
        ("Image size", image_size_text(data)),
        ("Labels" if data.task == "multilabel" else "Target" if data.task == "regression" else "Classes",
         targets_text(data)),
    ]


def card_facts(card: dict, task: str) -> list[tuple[str, str]]:
    """(field, value) rows of a sample dataset's card for one task (plain text, not escaped)."""
    spec = card["tasks"][task]
    w, h = card["image_size"]
    labels = ", ".join(spec["label_names"])
    if task == "regression":
        labels = f"{labels} ({spec['unit']})" if spec.get("unit") else labels
    return [
        ("Source", card["source"]),
        ("Licence", card["licence"]),
        ("Size", f"{card['n_images']:,} images: {card['n_train']:,} training, {card['n_val']:,} validation"),
        ("Image size", f"{w}×{h} px, {card.get('colour', 'RGB')}"),
        ("Split", card.get("split", "")),
        ("Target" if task == "regression" else "Labels" if task == "multilabel" else "Classes", labels),
    ]


def facts_markdown(rows: list[tuple[str, str]]) -> str:
    """(field, value) rows as a markdown bullet list, values escaped."""
    return "\n".join(f"- **{field}:** {md_escape(value)}" for field, value in rows if value)


def grid_note(data: TaskData, n_shown: int) -> str:
    """One line under the grid: how many of how many, chosen how, what the frame means."""
    how = {
        "binary": "balanced across the classes",
        "multiclass": "balanced across the classes",
        "multilabel": "balanced across the labels",
        "regression": "spread from the smallest to the largest value",
    }[data.task]
    return (f"{n_shown} of {len(data.y):,} images, {how}. Captions say the label and the split; "
            "validation images have an orange frame.")
