"""One Train click's sweep: the shared one when any session (or the lesson warm-up) already ran it, else
trained behind the server's gate and shared from then on.

The Lessons and Experiment pages and the lesson warm-up (`lib.serve.warmup`) all go through `shared_key`,
so a lesson the warm-up trained is found by a participant's first click under exactly the same key.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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


# Cross-session batching: how much one batch may hold. Thirty participants' 4-head sweeps are 120 heads
# (a few stacks); beyond the heads, a batch must fit the server's budget for one Train (memory and
# multiply-adds, `check_budget`), so merging never lets one slot hold more than one big Train would.
# $HEADLAB_BATCH_HEADS changes it; 0 turns batching off (every click trains alone, in arrival order).
_BATCH_ENV = os.environ.get("HEADLAB_BATCH_HEADS", "").strip()
MAX_BATCH_HEADS = int(_BATCH_ENV) if _BATCH_ENV.isdigit() else 128
_STARTED = object()  # a queued request's signal that the batch it is in has started training
_DONE = object()


@dataclass(eq=False)
class _Request:
    """One click waiting at the gate; whoever gets a slot first may take it into their batch."""

    heads: tuple[HeadConfig, ...]
    data: TaskData
    loaded: LoadedBackbone
    epochs: int
    seed: int
    key: tuple  # the sweep cache's
    gate: TrainingGate  # only clicks queued at the same gate train together
    events: queue.Queue = field(default_factory=queue.Queue)  # progress for its own page, relayed by its thread
    taken: threading.Event = field(default_factory=threading.Event)
    result: SweepResult | None = None
    shared: bool = False
    error: BaseException | None = None

    def merge_key(self) -> tuple:
        """What requests must share to train in one batch: the data (and what its results show of it), the
        backbone as loaded, and the epochs."""
        d, b = self.data, self.loaded
        return (id(self.gate), d.fingerprint, d.dataset, d.task, tuple(d.label_names), d.unit, b.name, b.size,
                b.weights_id, self.epochs)


_PENDING: list[_Request] = []  # requests queued at the gate, oldest first
_PENDING_LOCK = threading.Lock()


def _take_batch(leader: _Request) -> list[_Request]:
    """The leader (if nobody took it first) and the compatible requests queued behind it, oldest first,
    as many as MAX_BATCH_HEADS and the budget of one Train allow; [] when another batch took the leader."""
    from lib.common.errors import ConfigError
    from lib.train.trainer import check_budget, check_part

    with _PENDING_LOCK:
        if leader.taken.is_set():
            return []
        leader.taken.set()
        _PENDING.remove(leader)
        batch, heads, distinct = [leader], list(leader.heads), {leader.key}
        for other in list(_PENDING):
            if other.merge_key() != leader.merge_key():
                continue
            more = [] if other.key in distinct else list(other.heads)  # the same sweep is trained once
            if len(heads) + len(more) > MAX_BATCH_HEADS:
                continue
            try:
                check_part(other.heads, leader.data, other.seed)
                if more:
                    check_budget(heads + more, leader.data, leader.loaded, leader.epochs)
            except ConfigError:
                continue  # it trains in a batch of its own, where its error is its own
            other.taken.set()
            _PENDING.remove(other)
            batch.append(other)
            heads += more
            distinct.add(other.key)
        return batch


def _train_batch(batch: list[_Request], progress: ProgressFn | None, on_start: Callable[[], None] | None) -> None:
    """Train the batch's distinct sweeps together and give every request its result (or error); the
    leader's progress and on_start are called here, the others' go to their own queues.

    Whatever happens to the leader's page (Streamlit stops a script that reruns or whose tab closed by
    raising inside its callbacks), the others' sweeps finish and every request is answered; the leader's
    exception is raised at the end, and stops the training early only when nobody else is in the batch.
    """
    from lib.train.diagnostics import annotate
    from lib.train.trainer import SweepPart, train, train_together

    leader = batch[0]
    firsts: dict[tuple, _Request] = {}
    for r in batch:
        firsts.setdefault(r.key, r)
    owners = list(firsts.values())
    stopped: list[BaseException] = []

    def to_leader(fn: Callable, *args) -> None:
        if fn is not None and not stopped:
            try:
                fn(*args)
            except BaseException as e:  # noqa: BLE001 - raised once the others have their results
                stopped.append(e)

    def leader_progress(event: dict) -> None:
        to_leader(progress, event)

    parts = [SweepPart(r.heads, r.seed, leader_progress if r is leader else r.events.put) for r in owners]
    try:
        to_leader(on_start)
        for r in owners[1:]:
            r.events.put(_STARTED)
        try:
            sweeps = train_together(parts, leader.data, epochs=leader.epochs, loaded=leader.loaded,
                                    cancelled=lambda: bool(stopped) and len(parts) == 1)
            results: list[SweepResult | BaseException] = [annotate(s) for s in sweeps]
        except Exception as e:  # noqa: BLE001 - one request's failure must not be the others'
            if len(parts) == 1:
                results = [e]
            else:  # train each alone, so an error is only its own sweep's
                results = []
                for part, r in zip(parts, owners, strict=True):
                    try:
                        results.append(annotate(train(part.configs, r.data, epochs=r.epochs, seed=r.seed,
                                                      loaded=r.loaded, progress=part.progress)))
                    except Exception as alone:  # noqa: BLE001 - handed to that request's page
                        results.append(alone)
        by_key = dict(zip(firsts, results, strict=True))
        for key, result in by_key.items():
            # A sweep stopped early (its lone page went away, or the time limit) has fewer epochs than the
            # click asked for: it is that page's answer, never the shared one for the next identical click.
            if not isinstance(result, BaseException) and not result.stopped:
                sweep_cache.put(key, result)
                _WARMED.discard(key)  # trained by this click (the warm-up's copy had been evicted)
        for r in batch:
            result = by_key[r.key]
            if isinstance(result, BaseException):
                r.error = result
            else:
                r.result, r.shared = sweep_cache.for_requester(result, r.heads), r is not firsts[r.key]
    except BaseException as e:  # noqa: BLE001 - answered below, so no waiting page hangs
        for r in batch:
            if r.result is None and r.error is None:
                r.error = e
        raise
    finally:
        for r in batch[1:]:
            r.events.put(_DONE)
    if stopped:
        raise stopped[0]


def _relay(request: _Request, progress: ProgressFn | None, on_start: Callable[[], None] | None) -> SharedSweep:
    """Wait, in this session's own thread, for the batch another session took this request into: its
    progress and start reach this page from here. Raises what training it raised."""
    while True:
        event = request.events.get()
        if event is _DONE:
            break
        if event is _STARTED:
            if on_start is not None:
                on_start()
        elif progress is not None:
            progress(event)
    return _answer(request)


def _answer(request: _Request) -> SharedSweep:
    """What its batch gave a request: its own sweep, or the error training raised for it."""
    if request.error is not None:
        raise request.error
    return SharedSweep(request.result, shared=request.shared)


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

    Clicks queued at the gate together train together: the first to get a slot takes every compatible
    request waiting (same data, backbone and epochs; `_take_batch`) into one `train_together`, and each
    waiting session gets its own results and progress, in its own thread, exactly as if it had trained
    alone.
    """
    from lib.train.trainer import check_budget

    heads = tuple(heads)
    key = shared_key(heads, data, loaded, epochs, seed, owner)
    found = sweep_cache.get(key)
    if found is None:
        check_budget(heads, data, loaded, epochs)
        the_gate = training_gate or gate()
        request = _Request(heads, data, loaded, epochs, seed, key, the_gate)
        with _PENDING_LOCK:
            _PENDING.append(request)
        try:
            with the_gate.slot(on_wait=on_wait, until=request.taken.is_set) as held:
                if held:
                    found = sweep_cache.get(key)  # someone ahead in the queue may have run the same sweep
                    batch = [] if found is not None else _take_batch(request)
                    if batch:
                        the_gate.wake()  # the requests taken along leave the line now
                        _train_batch(batch, progress, on_start)
                        return _answer(request)
        finally:
            with _PENDING_LOCK:
                if request in _PENDING:
                    _PENDING.remove(request)
        if found is None:  # another session's batch took this request: its results come from there
            return _relay(request, progress, on_start)
    # the same heads, data and seed give the same curves: no need to train again
    return SharedSweep(sweep_cache.for_requester(found, heads), shared=True, warmed=key in _WARMED)
