"""Warm lessons: after a server starts, train every lesson into the shared sweep cache in the background,
so that a participant's first click on a lesson is a cache hit instead of a cold sweep in front of a class.

It only starts a sweep when the training gate is idle (`TrainingGate.idle_slot`: nobody training or
queued), and stops as soon as a participant presses Train: between two epochs (the trainer's `cancelled`
hook), or between two batches of a feature extraction (the progress hook raises). A sweep stopped that way
is never cached (it is not what the lesson shows) and is trained again from its start once the gate has
been idle a while. The participant waits for that step at most `TrainingGate.background_grace` (2 s),
then trains alongside it. The steps that cannot be stopped midway: an epoch (the fine-tuning lesson's
whole-base epoch, ~1.5–2 s), a lesson's head set-up and first epoch (the fine-tuning lesson's traces a
whole base: ~20 s in a fresh process, the longest), one extraction batch (~1 s), or building a backbone
(~1 s; the page would have built it too). `bench/bench_warm_lessons.py` measures them and what they cost
a participant.

A lesson's jobs are the seeds its Lessons page click runs by default. Lessons whose base trains
(fine-tuning: seconds per epoch, not milliseconds) come last, so the quick ones are ready first.

Off with HEADLAB_WARM_LESSONS=0 (tests and benchmarks that start servers). Never imports the use cases:
the caller passes the lessons (anything with `.id` and `.experiment`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lib.backbones.registry import LoadedBackbone
from lib.data.taskdata import TaskData
from lib.heads.config import HeadConfig
from lib.serve import sweep_cache
from lib.serve.gate import TrainingGate, gate
from lib.serve.shared_training import mark_warmed, shared_key
from lib.train.seeds import SEED_CHOICES, seed_range

log = logging.getLogger("headlab.warmup")
ENV = "HEADLAB_WARM_LESSONS"

# What one job ended in: trained and cached; already in the cache (a participant ran it first); the gate
# was not idle, or a participant queued mid-sweep (both: try again later); or stopped by the server's time
# budget (not cached: a participant's click would meet the same budget and show it as such).
WARMED, FOUND, BUSY, YIELDED, STOPPED = "warmed", "found", "busy", "yielded", "stopped"


def enabled() -> bool:
    """$HEADLAB_WARM_LESSONS: on unless "0"."""
    return os.environ.get(ENV, "1").strip() != "0"


class ExperimentLike(Protocol):
    task: str
    dataset: str
    backbone: str
    input_size: int
    heads: tuple[HeadConfig, ...]
    epochs: int
    seed: int
    seeds: int


class LessonLike(Protocol):
    id: str
    experiment: ExperimentLike


@dataclass(frozen=True)
class WarmJob:
    """One sweep a lesson's first click runs: its heads on its data, backbone and epochs, at one seed."""

    lesson: str
    task: str
    dataset: str
    backbone: str
    input_size: int
    heads: tuple[HeadConfig, ...]
    epochs: int
    seed: int

    @property
    def trains_base(self) -> bool:
        """Some head trains backbone layers (a fine-tuning sweep: seconds per epoch, not milliseconds)."""
        return any(h.unfrozen > 0 for h in self.heads)

    @property
    def label(self) -> str:
        return f"{self.lesson} (seed {self.seed})"


def click_seeds(n: int) -> int:
    """How many seeds a lesson's Train click runs by default: what the page's seeds picker starts at
    (ui/seeds.seeds_picker: the experiment's own count when it is one of the choices, else 1)."""
    return n if n in SEED_CHOICES else 1


def lesson_jobs(lessons: Sequence[LessonLike]) -> list[WarmJob]:
    """Every sweep the lessons' first clicks run, lesson by lesson and seed by seed; lessons whose base
    trains last (each keeps its place among its kind)."""
    jobs = []
    for lesson in lessons:
        e = lesson.experiment
        for seed in seed_range(e.seed, click_seeds(e.seeds)):
            jobs.append(WarmJob(lesson.id, e.task, e.dataset, e.backbone, e.input_size, tuple(e.heads), e.epochs,
                                seed))
    return sorted(jobs, key=lambda j: j.trains_base)  # a stable sort: the lessons' order otherwise


class _Yield(Exception):
    """Raised from the progress hook to abandon a feature extraction because a participant queued."""


@dataclass
class WarmStats:
    """What the warm-up has done so far (read by tests and the benchmark; the thread writes it)."""

    outcomes: dict[str, list[str]] = field(default_factory=dict)  # outcome -> the jobs' labels, in order
    failed: list[str] = field(default_factory=list)  # jobs that raised (logged), not retried
    started: float = 0.0
    finished: float | None = None

    def add(self, outcome: str, job: WarmJob) -> None:
        self.outcomes.setdefault(outcome, []).append(job.label)

    def count(self, outcome: str) -> int:
        return len(self.outcomes.get(outcome, []))


def _default_backbone(name: str, size: int) -> LoadedBackbone:
    from lib.backbones.registry import load_backbone

    return load_backbone(name, size, "auto")


def _default_data(dataset: str, task: str) -> TaskData:
    from lib.data.samples import load_sample

    return load_sample(dataset, task)


class LessonWarmer:
    """Trains `jobs` into the shared sweep cache, one at a time, only while the gate is idle.

    data_for(dataset, task) and backbone_for(name, size) must return what a page's click uses (the app
    passes its shared, cached loaders, so the warm-up builds no second copy of a backbone). `settle`:
    after the gate was busy, how long it must stay idle before a sweep starts (a class clicks in bursts;
    the next click of a burst should not find the slot taken). observe(job, event), if given, sees every
    progress event of the warm-up's own sweeps.
    """

    def __init__(self, jobs: Sequence[WarmJob], *, data_for: Callable[[str, str], TaskData] = _default_data,
                 backbone_for: Callable[[str, int], LoadedBackbone] = _default_backbone,
                 training_gate: TrainingGate | None = None, settle: float = 1.0, poll: float = 0.5,
                 observe: Callable[[WarmJob, dict], None] | None = None) -> None:
        self.jobs = list(jobs)
        self.data_for, self.backbone_for = data_for, backbone_for
        self.gate = training_gate or gate()
        self.settle, self.poll = settle, poll
        self.observe = observe
        self.stats = WarmStats()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the thread ----
    def start(self) -> LessonWarmer:
        """Run the warm-up in one background daemon thread (a server can stop at any moment)."""
        self._thread = threading.Thread(target=self.run, name="headlab-warm-lessons", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop before the next job (a sweep in progress runs to its end or its next yield)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every job to be done (or failed, or the warm-up stopped); whether it is."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def run(self) -> None:
        """Every job once (a yielded one again later); never raises: a failing job is logged and skipped."""
        self.stats.started = time.monotonic()
        try:
            pending = deque(self.jobs)
            busy = False
            log.info("warming %d lesson sweeps in the background", len(pending))
            while pending and self._wait_for_quiet(busy):
                job = pending[0]
                try:
                    outcome = self.warm(job)
                except Exception:  # a lesson that cannot train must not stop the others, nor the server
                    log.exception("warm-up of lesson %s failed; its first click will train it", job.label)
                    self.stats.failed.append(job.label)
                    pending.popleft()
                    continue
                self.stats.add(outcome, job)
                busy = outcome in (BUSY, YIELDED)
                if busy:
                    log.info("warm-up of %s yielded to a participant (%s); will retry", job.label, outcome)
                else:
                    pending.popleft()
            self.stats.finished = time.monotonic()
            log.info("lesson warm-up finished in %.1f s: %d warmed, %d already cached, %d yields, %d failed",
                     self.stats.finished - self.stats.started, self.stats.count(WARMED), self.stats.count(FOUND),
                     self.stats.count(YIELDED) + self.stats.count(BUSY), len(self.stats.failed))
        except Exception:  # the warm-up is a convenience: whatever happens, the server goes on
            log.exception("lesson warm-up stopped")
        finally:
            self._done.set()

    def _wait_for_quiet(self, busy: bool) -> bool:
        """Until the gate is idle (and, if it was busy, has stayed idle `settle` seconds); False once stopped."""
        while not self._stop.is_set():
            if self.gate.idle():
                if not busy:
                    return True
                if self._stop.wait(self.settle):
                    return False
                if self.gate.idle():
                    return True
            busy = True
            self.gate.wait_idle(self.poll)
        return False

    # ---- one job ----
    def warm(self, job: WarmJob) -> str:
        """Train one job into the sweep cache if the gate is idle; the outcome (WARMED, FOUND, BUSY, ...).

        Raises what loading or training raises (ConfigError for a sweep over the server's budget).
        """
        from lib.train.diagnostics import annotate
        from lib.train.trainer import check_budget, train

        with self.gate.idle_slot() as contended:
            if contended is None:
                return BUSY
            # Loading is inside the slot: building a backbone or decoding a sample is CPU a participant's
            # sweep would otherwise share. (The page's click loads the same objects: no extra work.)
            data = self.data_for(job.dataset, job.task)
            loaded = self.backbone_for(job.backbone, job.input_size)
            key = shared_key(job.heads, data, loaded, job.epochs, job.seed)
            if sweep_cache.get(key) is not None:
                return FOUND
            check_budget(job.heads, data, loaded, job.epochs)
            asked: list[bool] = []

            def cancelled() -> bool:
                if contended():
                    asked.append(True)
                    return True
                return False

            def progress(event: dict) -> None:
                if self.observe is not None:
                    self.observe(job, event)
                # An extraction cannot be cancelled, but it reports after every batch: leave it there.
                if event["stage"] == "features" and cancelled():
                    raise _Yield

            if contended():
                return YIELDED
            try:
                sweep = train(job.heads, data, epochs=job.epochs, seed=job.seed, loaded=loaded, progress=progress,
                              cancelled=cancelled)
            except _Yield:
                return YIELDED
            if sweep.stopped:  # fewer epochs than the lesson's: not what its click shows, never cached
                return YIELDED if asked else STOPPED
            sweep_cache.put(key, annotate(sweep))
            mark_warmed(key)
            return WARMED


def start_warmup(lessons: Sequence[LessonLike], **options) -> LessonWarmer | None:
    """Start warming `lessons` in a background thread (options: see LessonWarmer); None when
    HEADLAB_WARM_LESSONS=0. Call once per server process."""
    if not enabled():
        log.info("lesson warm-up is off (%s=0)", ENV)
        return None
    return LessonWarmer(lesson_jobs(lessons), **options).start()
