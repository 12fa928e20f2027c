"""One Train click's sweep: the shared one when any session (or the lesson warm-up) already ran it, else
trained behind the server's gate and shared from then on.

The Lessons and Experiment pages and the lesson warm-up (`lib.serve.warmup`) all go through `shared_key`,
so a lesson the warm-up trained is found by a participant's first click under exactly the same key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lib.backbones.registry import LoadedBackbone
from lib.data.taskdata import TaskData
from lib.heads.config import HeadConfig
from lib.serve import sweep_cache
from lib.serve.gate import TrainingGate, gate
from lib.train.trainer import ProgressFn, SweepResult


@dataclass(frozen=True)
class SharedSweep:
    """A click's result: the sweep (with the requester's head names) and whether it was someone else's run."""

    sweep: SweepResult
    shared: bool  # True: found in the shared cache (another session or the warm-up trained it), not trained now
    warmed: bool = False  # True: the lesson warm-up trained it ahead of time (no one had clicked it yet)


# Keys the lesson warm-up put in the cache (at most one per lesson seed), so a page can say who ran a sweep.
_WARMED: set[tuple] = set()


def mark_warmed(key: tuple) -> None:
    """Record that the warm-up, not a participant, trained the sweep under `key`."""
    _WARMED.add(key)


def shared_key(heads: Sequence[HeadConfig], data: TaskData, loaded: LoadedBackbone, epochs: int, seed: int,
               owner: str = "") -> tuple:
    """The sweep cache's key for these heads on this data and loaded backbone (see `sweep_cache.sweep_key`).

    The backbone is named as it was loaded (its size and the weights actually used), not as asked, so a
    server without some ImageNet weights never mixes its random-weight results with pretrained ones.
    """
    return sweep_cache.sweep_key(tuple(heads), data, loaded.name, loaded.size, loaded.weights, epochs, seed,
                                 owner=owner)


def find_shared(heads: Sequence[HeadConfig], data: TaskData, loaded: LoadedBackbone, epochs: int, seed: int,
                owner: str = "") -> SweepResult | None:
    """The shared sweep as the requester's own (their head names), if the server holds it; never trains."""
    found = sweep_cache.get(shared_key(heads, data, loaded, epochs, seed, owner))
    return None if found is None else sweep_cache.for_requester(found, tuple(heads))


def train_shared(heads: Sequence[HeadConfig], data: TaskData, loaded: LoadedBackbone, epochs: int, seed: int,
                 owner: str = "", *, on_wait: Callable[[int], None] | None = None,
                 on_start: Callable[[], None] | None = None, progress: ProgressFn | None = None,
                 training_gate: TrainingGate | None = None) -> SharedSweep:
    """The shared sweep for these heads if the server has it, else train it behind the gate and share it.

    `owner` is the session for data only it has (an upload): such results are never served to anyone
    else. A sweep over the server's budget raises ConfigError before queueing (a refusal is said at once,
    not after waiting in line). on_wait(place) is called while queued; on_start() once this call trains
    (not when someone ahead in the queue turned out to have run the same sweep); progress gets the
    trainer's events. Raises what training raises (HeadLabError: one line a user can act on).
    """
    from lib.train.diagnostics import annotate
    from lib.train.trainer import check_budget, train

    heads = tuple(heads)
    key = shared_key(heads, data, loaded, epochs, seed, owner)
    found = sweep_cache.get(key)
    if found is None:
        check_budget(heads, data, loaded, epochs)
        with (training_gate or gate()).slot(on_wait=on_wait):
            found = sweep_cache.get(key)  # someone ahead in the queue may have run the same sweep
            if found is None:
                if on_start is not None:
                    on_start()
                sweep = annotate(train(heads, data, epochs=epochs, seed=seed, loaded=loaded, progress=progress))
                sweep_cache.put(key, sweep)
                _WARMED.discard(key)  # trained by this click (the warm-up's copy had been evicted)
                return SharedSweep(sweep, shared=False)
    # the same heads, data and seed give the same curves: no need to train again
    return SharedSweep(sweep_cache.for_requester(found, heads), shared=True, warmed=key in _WARMED)
