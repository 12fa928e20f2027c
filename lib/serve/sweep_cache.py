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

MAX_SWEEPS = 32
_CACHE: OrderedDict[tuple, SweepResult] = OrderedDict()
_LOCK = threading.Lock()


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


def get(key: tuple) -> SweepResult | None:
    with _LOCK:
        sweep = _CACHE.get(key)
        if sweep is not None:
            _CACHE.move_to_end(key)
        return sweep


def put(key: tuple, sweep: SweepResult) -> None:
    """Keep a finished sweep (a head Keras refused is refused again, so errors are kept too)."""
    with _LOCK:
        _CACHE[key] = sweep
        _CACHE.move_to_end(key)
        while len(_CACHE) > MAX_SWEEPS:
            _CACHE.popitem(last=False)


def clear() -> None:
    with _LOCK:
        _CACHE.clear()
