"""Finished sweeps, shared by every session of one server.

A sweep is fully determined by its heads, data, backbone, epochs, seed and batch size (the trainer
is deterministic), so when a class of 30 runs the same lesson, the server trains it once and hands
everyone the same result. Results are read-only once stored.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from lib.heads import HeadConfig
from lib.training import SweepResult

MAX_SWEEPS = 32
_CACHE: OrderedDict[tuple, SweepResult] = OrderedDict()
_LOCK = threading.Lock()


def sweep_key(heads: tuple[HeadConfig, ...], data_fingerprint: str, backbone: str, input_size: int,
              weights: str, epochs: int, seed: int, batch_size: int = 32) -> tuple:
    """Everything that decides a sweep's numbers (names only label the result, so they are left out)."""
    return (tuple(h.with_(name="") for h in heads), data_fingerprint, backbone, input_size, weights, epochs, seed,
            batch_size)


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
