"""A first-come, first-served gate that bounds how many sweeps train at once on one server.

Thirty people pressing Train together would otherwise run thirty sweeps on two cores and run the
machine out of memory; queued sessions instead see their place in the line.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class TrainingGate:
    """At most `slots` holders at a time; waiters are served in arrival order."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._cond = threading.Condition()
        self._running = 0
        self._background = 0  # of `_running`: slots held by background work (the lesson warm-up)
        self._queue: list[int] = []
        self._tickets = itertools.count(1)

    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def running(self) -> int:
        with self._cond:
            return self._running

    def idle(self) -> bool:
        """Nobody holds a slot and nobody is queued."""
        with self._cond:
            return self._running == 0 and not self._queue

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the gate to be idle; whether it is."""
        with self._cond:
            return self._cond.wait_for(lambda: self._running == 0 and not self._queue, timeout=timeout)

    def contended(self) -> bool:
        """Someone other than background work holds a slot or waits for one."""
        with self._cond:
            return bool(self._queue) or self._running > self._background

    @contextmanager
    def idle_slot(self) -> Iterator[Callable[[], bool] | None]:
        """A slot for background work, taken only when the gate is idle: nobody training, nobody queued.

        Yields None (holding nothing) when the gate is not idle. Otherwise holds a slot for the block and
        yields `contended`, which turns true as soon as a participant queues (or, with several slots,
        takes another one): the background work should then stop at its next chance and leave the block,
        which hands the slot to the first in line at once. Participants' `slot()` calls never wait behind
        anything but the background work's current step.
        """
        with self._cond:
            if self._running or self._queue:
                taken = False
            else:
                taken = True
                self._running += 1
                self._background += 1
        if not taken:
            yield None
            return
        try:
            yield self.contended
        finally:
            with self._cond:
                self._running -= 1
                self._background -= 1
                self._cond.notify_all()

    @contextmanager
    def slot(self, on_wait: Callable[[int], None] | None = None, poll: float = 0.5) -> Iterator[None]:
        """Hold a training slot for the duration of the block.

        on_wait(place) is called while queued with the 1-based place in line (1 = next), whenever it
        changes and at least every `poll` seconds, so a page can keep showing it.
        """
        with self._cond:
            ticket = next(self._tickets)
            self._queue.append(ticket)
            last = None
            while not (self._queue[0] == ticket and self._running < self.slots):
                place = self._queue.index(ticket) + 1
                if on_wait and place != last:
                    last = place
                    self._cond.release()
                    try:
                        on_wait(place)
                    finally:
                        self._cond.acquire()
                    continue
                self._cond.wait(timeout=poll)
            self._queue.pop(0)
            self._running += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
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
