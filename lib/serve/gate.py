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
    """At most `slots` holders at a time; waiters are served in arrival order. Besides them, at most one
    piece of background work that only starts when nobody trains and gives way (`idle_slot`)."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._cond = threading.Condition()
        self._running = 0
        self._background = 0  # background work (the lesson warm-up), never counted in `_running`
        self._queue: list[int] = []
        self._tickets = itertools.count(1)

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
        soon as a participant presses Train: the background work should stop at its next step and leave the
        block. Participants never wait for it: their `slot()` does not count background work, so a Train
        starts at once and shares the CPU only with the background's current step (measured in
        bench/bench_warm_lessons.py); waiting for that step instead cost up to the step's whole length.
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
