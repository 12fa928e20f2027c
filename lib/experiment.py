"""An experiment (dataset, task, backbone, heads, seed, epochs) and its round trip through a URL.

Anything odd in a link — unknown names, absurd numbers, damaged heads, a huge query — falls back
to defaults or is clamped, and each fallback is reported as a notice the page shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from lib.backbones.registry import DEFAULT_BACKBONE, REGISTRY
from lib.common.errors import HeadLabError
from lib.data.taskdata import TASKS
from lib.heads.config import HeadConfig, default_head
from lib.train.seeds import MAX_SEEDS, SeedSweeps, train_seeds

MAX_HEADS = 6
MAX_EPOCHS = 200
MAX_QUERY_CHARS = 8000
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Experiment:
    """What one Train click runs."""

    task: str = "binary"
    dataset: str = "fashion"
    backbone: str = DEFAULT_BACKBONE
    input_size: int = 96
    heads: tuple[HeadConfig, ...] = field(default_factory=lambda: (default_head("binary"),))
    epochs: int = 20
    seed: int = 0
    seeds: int = 1  # repeat over seeds seed, seed+1, … (1 to MAX_SEEDS): findings judged against the spread

    def to_query(self) -> dict[str, str | list[str]]:
        """Query parameters for a shareable link (heads in their short URL form; `seeds` only when > 1)."""
        query = {"task": self.task, "ds": self.dataset, "bb": self.backbone, "size": str(self.input_size),
                 "epochs": str(self.epochs), "seed": str(self.seed), "h": [h.to_url() for h in self.heads]}
        return query | ({"seeds": str(self.seeds)} if self.seeds != 1 else {})

    def with_(self, **changes) -> Experiment:
        return replace(self, **changes)


def default_experiment(task: str = "binary") -> Experiment:
    """The textbook head on the default sample dataset for a task."""
    from lib.data.samples import default_dataset

    return Experiment(task=task, dataset=default_dataset(task), heads=(default_head(task),))


def _int_param(params: Mapping, key: str, default: int, lo: int, hi: int, notices: list[str]) -> int:
    raw = params.get(key)
    if raw is None:
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        notices.append(f"'{key}={str(raw)[:40]}' is not a whole number; using {default}.")
        return default
    if not lo <= value <= hi:
        clamped = min(max(value, lo), hi)
        notices.append(f"'{key}={value}' is outside {lo}–{hi}; using {clamped}.")
        return clamped
    return value


def from_query(params: Mapping[str, str | list[str]]) -> tuple[Experiment, list[str]]:
    """Rebuild an experiment from query parameters; returns it with the notices to show.

    `params` maps a key to a string, or to a list for the repeated `h` key (one per head).
    """
    notices: list[str] = []
    total = sum(len(str(k)) + sum(len(x) for x in (v if isinstance(v, list) else [v])) for k, v in params.items())
    if total > MAX_QUERY_CHARS:
        return default_experiment(), ["The link is too long to be a Head Lab experiment; starting from the defaults."]
    single = {k: (v[-1] if isinstance(v, list) and v else v) for k, v in params.items()}

    task = single.get("task", "binary")
    if task not in TASKS:
        notices.append(f"Unknown task '{str(task)[:40]}' in the link; using binary.")
        task = "binary"
    base = default_experiment(task)
    from lib.data.samples import list_datasets

    sample_tasks = {card["name"]: card["tasks"] for card in list_datasets()}  # the dataset cards say
    dataset = single.get("ds", base.dataset)
    if dataset not in sample_tasks or task not in sample_tasks[dataset]:
        if "ds" in single:
            notices.append(f"Dataset '{str(dataset)[:40]}' is not a sample dataset with a {task} task; "
                           f"using {base.dataset}.")
        dataset = base.dataset
    backbone = single.get("bb", base.backbone)
    if backbone not in REGISTRY:
        notices.append(f"Unknown backbone '{str(backbone)[:40]}'; using {base.backbone}.")
        backbone = base.backbone
    sizes = REGISTRY[backbone].sizes()
    size = _int_param(single, "size", base.input_size if base.input_size in sizes else sizes[0], sizes[0], sizes[-1], notices)
    if size not in sizes:
        nearest = min(sizes, key=lambda s: abs(s - size))
        notices.append(f"Input size {size} is not offered for this backbone; using {nearest}.")
        size = nearest
    epochs = _int_param(single, "epochs", base.epochs, 1, MAX_EPOCHS, notices)
    seed = _int_param(single, "seed", base.seed, 0, MAX_SEED, notices)
    seeds = _int_param(single, "seeds", 1, 1, MAX_SEEDS, notices)

    raw_heads = params.get("h", [])
    raw_heads = raw_heads if isinstance(raw_heads, list) else [raw_heads]
    heads: list[HeadConfig] = []
    for i, text in enumerate(raw_heads, 1):
        try:
            head = HeadConfig.from_url(str(text))
        except HeadLabError as e:
            notices.append(f"Head {i} in the link could not be read ({e}); it was left out.")
            continue
        if head.task != task:
            notices.append(f"Head {i} in the link is for a {head.task} task, not {task}; it was left out.")
            continue
        heads.append(head)
    if len(heads) > MAX_HEADS:
        notices.append(f"The link has {len(heads)} heads; keeping the first {MAX_HEADS}.")
        heads = heads[:MAX_HEADS]
    if not heads:
        heads = list(base.heads)
    exp = Experiment(task=task, dataset=dataset, backbone=backbone, input_size=size, heads=tuple(heads),
                     epochs=epochs, seed=seed, seeds=seeds)
    return exp, notices


def train_experiment(exp: Experiment, seeds: int | None = None, **train_kwargs) -> SeedSweeps:
    """Train an experiment on its sample dataset over `seeds` (default: its own) consecutive seeds.

    The backbone is loaded once and its features cached, so each extra seed retrains only the heads.
    Extra keyword arguments go to `lib.train.trainer.train` (e.g. progress, budget).
    """
    from lib.backbones.registry import load_backbone
    from lib.data.loader import load_dataset
    from lib.train.diagnostics import annotate
    from lib.train.trainer import train

    data = load_dataset(exp.dataset, exp.task)
    bb = train_kwargs.pop("loaded", None) or load_backbone(exp.backbone, exp.input_size, "auto")

    def one(seed: int):
        return annotate(train(exp.heads, data, epochs=exp.epochs, seed=seed, loaded=bb, **train_kwargs))

    return train_seeds(one, exp.seed, exp.seeds if seeds is None else seeds)
