"""Finished sweeps, shared by every session of one server.

A sweep is fully determined by its heads, data, backbone, epochs, seed and batch size (the trainer
is deterministic), so when a class of 30 runs the same lesson, the server trains it once and hands
everyone the same result. Results are read-only once stored. Only names are ever different between
sessions, and a session only ever sees its own (see `sweep_key`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

from lib.data.taskdata import TaskData
from lib.heads.config import HeadConfig
from lib.train.trainer import SweepResult, name_runs

# Every lesson's default seeds (15 lessons now: 43 sweeps, warmed at server start by lib/serve/warmup.py)
# with room for as many of the participants' own. A lesson's sweep holds ~0.1–0.3 MB (its snapshots: the
# validation outputs at a few epochs; measured by bench/bench_warm_lessons.py), but an upload's can hold
# far more (5,000 images × 100 classes), so the bytes are bounded too, least recently used out first.
MAX_SWEEPS = 96
MAX_BYTES = 256 * 2**20
_CACHE: OrderedDict[tuple, tuple[SweepResult, int]] = OrderedDict()  # key -> (sweep, its bytes)
_LOCK = threading.Lock()
_bytes = 0


def sweep_key(heads: tuple[HeadConfig, ...], data: TaskData, backbone: str, input_size: int, weights: str,
              epochs: int, seed: int, batch_size: int = 32, owner: str = "") -> tuple:
    """Everything that decides a sweep's numbers, plus everything its results show about the data.

    Head names only label a result, so they are left out (`for_requester` puts the requester's back).
    The dataset's, classes' and unit's names are in: two uploads with the same pixels but other class
    names must never show each other's names. `owner` is the session for data only it has (an upload),
    so an upload's results are never served to another session.
    """
    return (tuple(h.with_(name="") for h in heads), data.fingerprint, data.dataset, tuple(data.label_names),
            data.unit, owner, backbone, input_size, weights, epochs, seed, batch_size)


def for_requester(shared: SweepResult, heads: tuple[HeadConfig, ...]) -> SweepResult:
    """A shared sweep as the requesting session's own: its heads (with its names) on the same runs."""
    runs = [replace(r, config=h) for r, h in zip(shared.runs, heads, strict=True)]
    return replace(shared, runs=name_runs(runs))


def sweep_bytes(sweep: SweepResult) -> int:
    """What a sweep holds in memory, near enough: its arrays (snapshots of outputs and pre-activation values,
    targets) and its per-epoch
    numbers (a Python float in a list: ~32 bytes)."""
    arrays = sweep.y_val.nbytes + sweep.y_train.nbytes
    numbers = 0
    for run in sweep.runs:
        # a linear head's pre-activation values are its outputs: the same arrays, counted once
        seen = {id(a): a for a in [*run.snapshots.values(), *run.pre_activations.values()]}
        arrays += sum(getattr(a, "nbytes", 0) for a in seen.values()) + getattr(run.sample_losses, "nbytes", 0)
        numbers += sum(len(v) for v in run.history.values()) + len(run.epoch_seconds)
    return arrays + 32 * numbers


def get(key: tuple) -> SweepResult | None:
    with _LOCK:
        entry = _CACHE.get(key)
        if entry is None:
            return None
        _CACHE.move_to_end(key)
        return entry[0]


def put(key: tuple, sweep: SweepResult) -> None:
    """Keep a finished sweep (a head Keras refused is refused again, so errors are kept too)."""
    global _bytes
    size = sweep_bytes(sweep)
    with _LOCK:
        old = _CACHE.pop(key, None)
        if old is not None:
            _bytes -= old[1]
        _CACHE[key] = (sweep, size)
        _bytes += size
        while len(_CACHE) > 1 and (len(_CACHE) > MAX_SWEEPS or _bytes > MAX_BYTES):
            _bytes -= _CACHE.popitem(last=False)[1][1]


def stats() -> tuple[int, int]:
    """(sweeps, bytes) held now."""
    with _LOCK:
        return len(_CACHE), _bytes


def clear() -> None:
    global _bytes
    with _LOCK:
        _CACHE.clear()
        _bytes = 0
