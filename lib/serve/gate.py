"""A first-come, first-served gate that bounds how many sweeps train at once on one server.

Thirty people pressing Train together would otherwise run thirty sweeps on two cores and run the
machine out of memory; queued sessions instead see their place in the line.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

BACKGROUND_GRACE = 2.0  # seconds (see TrainingGate.background_grace)


class TrainingGate:
    """At most `slots` holders at a time; waiters are served in arrival order. Besides them, at most one
    piece of background work that only starts when nobody trains and gives way (`idle_slot`)."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._cond = threading.Condition()
        self._running = 0
        self._background = 0  # background work (the lesson warm-up), never counted in `_running`
        self._queue: list[int] = []
        self._tickets = itertools.count(1)
        # How long a participant waits for background work to leave before training alongside it. Waiting
        # for the step it is in (an epoch: milliseconds, up to 2 s for a whole base) is cheaper than sharing
        # the CPU and the traced graphs with it (a concurrent fine-tuning Train retraced its whole base:
        # 28 s instead of 8 s); its longest step (a fresh process's first whole-base trace, ~20 s) is not.
        self.background_grace = BACKGROUND_GRACE

    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def running(self) -> int:
        with self._cond:
            return self._running

    def idle(self) -> bool:
        """No participant holds a slot or waits for one (background work may be running)."""
        with self._cond:
            return self._running == 0 and not self._queue

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the gate to be idle; whether it is."""
        with self._cond:
            return self._cond.wait_for(lambda: self._running == 0 and not self._queue, timeout=timeout)

    def contended(self) -> bool:
        """A participant holds a slot or waits for one."""
        with self._cond:
            return self._running > 0 or bool(self._queue)

    @contextmanager
    def idle_slot(self) -> Iterator[Callable[[], bool] | None]:
        """Room for one piece of background work (the lesson warm-up), taken only when the gate is idle:
        no participant training or queued, and no other background work.

        Yields None (taking nothing) when it is not idle; otherwise yields `contended`, which turns true as
        soon as a participant presses Train: the background work should stop at its next step (an epoch, an
        extraction batch) and leave the block. A participant waits for that at most `background_grace`
        seconds, then trains alongside it; background work never counts against `slots`.
        """
        with self._cond:
            taken = self._running == 0 and not self._queue and self._background == 0
            if taken:
                self._background += 1
        if not taken:
            yield None
            return
        try:
            yield self.contended
        finally:
            with self._cond:
                self._background -= 1
                self._cond.notify_all()

    def _may_start(self, ticket: int, queued: float) -> bool:
        """First in line, a slot free, and no background work left to give way (or it had its grace)."""
        return (self._queue[0] == ticket and self._running < self.slots
                and (not self._background or time.monotonic() - queued >= self.background_grace))

    @contextmanager
    def slot(self, on_wait: Callable[[int], None] | None = None, poll: float = 0.5,
             until: Callable[[], bool] | None = None) -> Iterator[bool]:
        """Hold a training slot for the duration of the block; yields True.

        on_wait(place) is called while queued with the 1-based place in line (1 = next), whenever it
        changes and at least every `poll` seconds, so a page can keep showing it. When `until()` turns
        true while queued (another holder took this work into its batch), the waiter leaves the line
        without a slot and the block runs with False; `wake()` makes waiters look at once.
        """
        with self._cond:
            ticket = next(self._tickets)
            self._queue.append(ticket)
            last, held = None, False
            queued = time.monotonic()
            try:
                while not self._may_start(ticket, queued):
                    if until is not None and until():
                        self._queue.remove(ticket)
                        self._cond.notify_all()
                        break
                    place = self._queue.index(ticket) + 1
                    if on_wait and place != last:
                        last = place
                        self._cond.release()
                        try:
                            on_wait(place)
                        finally:
                            self._cond.acquire()
                        continue
                    timeout = poll
                    if self._background:  # wake up when the grace for background work is over
                        timeout = min(poll, max(0.005, queued + self.background_grace - time.monotonic()))
                    self._cond.wait(timeout=timeout)
                else:
                    self._queue.pop(0)
                    self._running += 1
                    self._cond.notify_all()
                    held = True
            except BaseException:  # a page stopped while queued (a rerun, a closed tab): leave the line
                if ticket in self._queue:
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                raise
        if not held:
            yield False
            return
        try:
            yield True
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def wake(self) -> None:
        """Make every waiter look again now (see `slot`'s `until`)."""
        with self._cond:
            self._cond.notify_all()


def default_slots() -> int:
    """$HEADLAB_TRAINING_SLOTS, else one sweep per two cores (a sweep already uses two threads)."""
    env = os.environ.get("HEADLAB_TRAINING_SLOTS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, len(os.sched_getaffinity(0)) // 2)


_GATE: TrainingGate | None = None
_GATE_LOCK = threading.Lock()


def gate() -> TrainingGate:
    """The process-wide gate every session's Train goes through."""
    global _GATE
    with _GATE_LOCK:
        if _GATE is None:
            _GATE = TrainingGate(default_slots())
        return _GATE
