"""The committed sample datasets (sample_data/): their cards, and each one loaded for one task with its
fixed split. A dataset's images are decoded once per process and shared read-only.
"""

from __future__ import annotations

import copy
import csv
import json
from functools import cache, lru_cache

import numpy as np
from PIL import Image

from lib.common.errors import DataError
from lib.common.paths import SAMPLE_DATA
from lib.data.limits import _check_task
from lib.data.taskdata import TaskData


@cache
def _cards() -> dict[str, dict]:
    """Every sample dataset's card.json, by name."""
    cards = {}
    for path in sorted(SAMPLE_DATA.glob("*/card.json")):
        card = json.loads(path.read_text(encoding="utf-8"))
        cards[card["name"]] = card
    return cards


def list_datasets() -> list[dict]:
    """Cards of the sample datasets (photos first): name, title, source, licence, sizes, tasks."""
    cards = sorted(_cards().values(), key=lambda c: (c.get("kind") != "photo", c["name"]))
    return copy.deepcopy(cards)


def dataset_card(name: str) -> dict:
    """The card of one sample dataset (a copy: callers may change it freely)."""
    return copy.deepcopy(_card(name))


def _card(name: str) -> dict:
    cards = _cards()
    if name not in cards:
        raise DataError(f"There is no sample dataset {name!r}. Sample datasets: {', '.join(sorted(cards))}.")
    return cards[name]


def default_dataset(task: str) -> str:
    """The sample dataset used when none is chosen: a real-photo one where it has the task."""
    _check_task(task)
    for card in list_datasets():  # photos come first
        if task in card["tasks"]:
            return card["name"]
    raise DataError(f"No sample dataset has the {task} task.")


@lru_cache(maxsize=8)
def _sample_table(name: str) -> tuple[list[dict], np.ndarray]:
    """(labels.csv rows, read-only uint8 RGB images) of one sample dataset, decoded once."""
    folder = SAMPLE_DATA / name
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with Image.open(folder / rows[0]["filename"]) as first:
        images = np.empty((len(rows), first.height, first.width, 3), np.uint8)
    for i, row in enumerate(rows):
        with Image.open(folder / row["filename"]) as im:
            images[i] = np.asarray(im.convert("RGB"))
    images.flags.writeable = False  # shared by every call: nobody may change it in place
    return rows, images


def _sample_targets(rows: list[dict], task: str, spec: dict) -> np.ndarray:
    """The task's y array from the label columns the card names."""
    if task == "binary":
        return np.array([int(r[spec["column"]]) for r in rows], np.int32)
    if task == "multiclass":
        index = {n: i for i, n in enumerate(spec["label_names"])}
        return np.array([index[r[spec["column"]]] for r in rows], np.int32)
    if task == "multilabel":
        return np.array([[float(r[c]) for c in spec["columns"]] for r in rows], np.float32)
    return np.array([float(r[spec["column"]]) for r in rows], np.float32)


def load_sample(name: str, task: str) -> TaskData:
    """One committed sample dataset for one task, with its fixed split."""
    _check_task(task)
    card = _card(name)
    if task not in card["tasks"]:
        raise DataError(
            f"The sample dataset {name!r} has no {task} task; it has: {', '.join(card['tasks'])}. "
            f"For {task}, try {default_dataset(task)!r}."
        )
    spec = card["tasks"][task]
    rows, images = _sample_table(name)
    notes = ()
    if card.get("colour", "RGB") != "RGB":
        notes = (f"Grayscale photos loaded as RGB (channel replicated) at {images.shape[2]}x{images.shape[1]} px.",)
    return TaskData(
        dataset=name,
        task=task,
        images=images,
        y=_sample_targets(rows, task, spec),
        is_val=np.array([r["split"] == "val" for r in rows]),
        label_names=tuple(spec["label_names"]),
        unit=spec.get("unit", ""),
        description=spec["meaning"],
        notes=notes,
        cache_on_disk=True,
    )
