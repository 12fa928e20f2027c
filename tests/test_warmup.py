"""Warm lessons: the background warm-up fills the shared sweep cache with exactly what a lesson's first
click would train, and gives way to participants: it never starts while someone trains or waits, and a
warm sweep stops between epochs (or extraction batches) once someone queues, without caching the part."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import TEST_BACKBONE, THREAD_WAIT, toy_data

from lib.experiment import Experiment
from lib.heads.config import parse_head_string
from lib.serve import sweep_cache
from lib.serve.gate import TrainingGate
from lib.serve.shared_training import find_shared, shared_key, train_shared
from lib.serve.warmup import (
    BUSY,
    FOUND,
    WARMED,
    YIELDED,
    LessonWarmer,
    WarmJob,
    lesson_jobs,
    start_warmup,
)
from lib.train.trainer import train

WAIT = THREAD_WAIT
pytestmark = pytest.mark.usefixtures("empty_sweep_cache")


def lesson(lesson_id: str, task: str, specs: tuple[str, ...], epochs: int = 3, seeds: int = 1):
    """A stand-in for a lib.lessons Lesson (the warm-up reads only `.id` and `.experiment`) on toy data."""
    heads = tuple(parse_head_string(task, s) for s in specs)
    exp = Experiment(task=task, dataset="toy", backbone=TEST_BACKBONE["backbone"],
                     input_size=TEST_BACKBONE["input_size"], heads=heads, epochs=epochs, seeds=seeds)
    return SimpleNamespace(id=lesson_id, experiment=exp)


def warmer(toy, tiny_backbone, jobs, gate: TrainingGate, **options) -> LessonWarmer:
    return LessonWarmer(jobs, data_for=lambda dataset, task: toy(task), backbone_for=lambda name, size: tiny_backbone,
                        training_gate=gate, settle=0.0, poll=0.05, **options)


def key_of(job: WarmJob, data, tiny_backbone) -> tuple:
    return shared_key(job.heads, data, tiny_backbone, job.epochs, job.seed)


def assert_same_sweep(a, b) -> None:
    assert len(a.runs) == len(b.runs) and a.epochs == b.epochs and a.seed == b.seed
    for ra, rb in zip(a.runs, b.runs, strict=True):
        assert ra.status == rb.status
        for what in ("loss", "val_loss", "accuracy"):
            if what in rb.history:
                np.testing.assert_allclose(ra.history[what], rb.history[what], rtol=1e-6, atol=1e-7)
        assert sorted(ra.snapshots) == sorted(rb.snapshots)
        for epoch in rb.snapshots:
            np.testing.assert_allclose(ra.snapshots[epoch], rb.snapshots[epoch], rtol=1e-5, atol=1e-6)


class Participant:
    """A session pressing Train on another thread: it queues at the gate and holds a slot until released."""

    def __init__(self, gate: TrainingGate) -> None:
        self.gate = gate
        self.holding, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.seen: dict = {}

    def _run(self) -> None:
        with self.gate.slot(poll=0.05):
            self.holding.set()
            self.release.wait(WAIT)

    def queue(self) -> Participant:
        """Start and return once it is queued or holding a slot."""
        waiting_before, running_before = self.gate.waiting(), self.gate.running()
        self.thread.start()
        while not (self.holding.is_set() or self.gate.waiting() > waiting_before
                   or self.gate.running() > running_before):
            self.holding.wait(0.01)
        return self

    def done(self) -> None:
        self.release.set()
        self.thread.join(WAIT)


# ---- which sweeps ----------------------------------------------------------------------------------
def test_the_jobs_are_each_lessons_default_seeds_with_the_base_training_lessons_last():
    from lib.lessons import LESSONS
    from lib.train.seeds import SEED_CHOICES

    jobs = lesson_jobs(LESSONS)
    for les in LESSONS:
        e = les.experiment
        n = e.seeds if e.seeds in SEED_CHOICES else 1  # what the Lessons page's seeds picker starts at
        assert [j.seed for j in jobs if j.lesson == les.id] == list(range(e.seed, e.seed + n))
    trains_base = [j.trains_base for j in jobs]
    assert any(trains_base) and trains_base == sorted(trains_base)  # every base-training job after the others
    assert "fine-tuning" in {j.lesson for j in jobs if j.trains_base}
    quick = [j.lesson for j in jobs if not j.trains_base]
    assert quick == sorted(quick, key=[les.id for les in LESSONS].index)  # otherwise in the lessons' order
    # every lesson's seeds fit the shared cache with room for the participants' own sweeps
    assert 2 * len(jobs) <= sweep_cache.MAX_SWEEPS


# ---- the gate's idle slot ----------------------------------------------------------------------------
def test_the_idle_slot_is_taken_only_when_nobody_trains_or_waits_and_gives_way_to_a_participant():
    gate = TrainingGate(1)
    gate.background_grace = WAIT  # the participant waits for the background work to leave
    with gate.idle_slot() as contended:
        assert contended is not None and not contended()
        with gate.idle_slot() as second:
            assert second is None  # one piece of background work at a time
        someone = Participant(gate).queue()
        assert gate.waiting() == 1 and contended()  # told to stop at its next step
        with gate.idle_slot() as meanwhile:
            assert meanwhile is None
    assert someone.holding.wait(WAIT)  # leaving the block let the participant in at once
    with gate.idle_slot() as contended:
        assert contended is None  # a participant trains
    someone.done()
    assert gate.idle()


def test_a_participant_trains_alongside_background_work_that_does_not_leave_within_the_grace():
    gate = TrainingGate(1)
    gate.background_grace = 0.05
    with gate.idle_slot() as contended:
        someone = Participant(gate).queue()
        assert someone.holding.wait(WAIT)  # while the background work still holds its place
        assert contended() and gate.running() == 1  # background work never counts against the slots
        someone.done()


# ---- warming -------------------------------------------------------------------------------------------
def test_after_the_warm_up_a_lesson_click_comes_from_the_cache_and_equals_training_it(toy, tiny_backbone):
    lessons = [lesson("binary-two", "binary", ("learning_rate=0.01", "activation=softmax,learning_rate=0.01")),
               lesson("multiclass-seeds", "multiclass", ("learning_rate=0.01",), seeds=3)]
    jobs = lesson_jobs(lessons)
    assert [j.label for j in jobs] == ["binary-two (seed 0)", "multiclass-seeds (seed 0)",
                                       "multiclass-seeds (seed 1)", "multiclass-seeds (seed 2)"]
    gate = TrainingGate(1)
    w = warmer(toy, tiny_backbone, jobs, gate).start()
    assert w.join(WAIT)
    assert w.stats.count(WARMED) == len(jobs) and not w.stats.failed
    for job in jobs:
        data = toy(job.task)
        mine = tuple(h.with_(name=f"my head {i}") for i, h in enumerate(job.heads))  # a participant's own names
        started: list[int] = []
        click = train_shared(mine, data, tiny_backbone, job.epochs, job.seed, on_start=lambda s=started: s.append(1),
                             training_gate=gate)
        assert click.shared and click.warmed and not started  # a cache hit: nothing trained for the click
        assert [r.config.name for r in click.sweep.runs] == [h.name for h in mine]
        assert [r.config.name for r in find_shared(mine, data, tiny_backbone, job.epochs, job.seed).runs] == \
            [h.name for h in mine]  # the look-up alone (a room's participant after the reveal)
        direct = train(job.heads, data, epochs=job.epochs, seed=job.seed, loaded=tiny_backbone)
        assert_same_sweep(click.sweep, direct)
    # a sweep a participant trained is shared, but not as the warm-up's
    other = tuple(h.with_(learning_rate=0.05) for h in jobs[0].heads)
    assert not train_shared(other, toy("binary"), tiny_backbone, 3, 0, training_gate=gate).shared
    next_click = train_shared(other, toy("binary"), tiny_backbone, 3, 0, training_gate=gate)
    assert next_click.shared and not next_click.warmed
    # a second warm-up finds everything cached and trains nothing
    again = warmer(toy, tiny_backbone, jobs, gate)
    again.run()
    assert again.stats.count(FOUND) == len(jobs) and again.stats.count(WARMED) == 0


def test_the_warm_up_starts_no_sweep_while_a_participant_holds_or_waits_for_the_gate(toy, tiny_backbone):
    jobs = lesson_jobs([lesson("waits", "binary", ("learning_rate=0.01",), epochs=2)])
    gate = TrainingGate(1)
    events = []
    w = warmer(toy, tiny_backbone, jobs, gate, observe=lambda job, event: events.append(event))
    data = toy("binary")
    first = Participant(gate).queue()
    assert first.holding.wait(WAIT)
    second = Participant(gate).queue()  # queued behind the first
    assert gate.waiting() == 1
    assert w.warm(jobs[0]) == BUSY
    first.done()
    assert second.holding.wait(WAIT)
    assert w.warm(jobs[0]) == BUSY
    assert events == [] and sweep_cache.get(key_of(jobs[0], data, tiny_backbone)) is None
    second.done()
    assert w.warm(jobs[0]) == WARMED and events
    assert sweep_cache.get(key_of(jobs[0], data, tiny_backbone)) is not None


def test_a_warm_sweep_stops_between_epochs_when_someone_queues_is_not_cached_and_is_retried(toy, tiny_backbone):
    jobs = lesson_jobs([lesson("long", "multiclass", ("learning_rate=0.01", "hidden=8:relu,learning_rate=0.01"),
                               epochs=8)])
    job, data = jobs[0], toy("multiclass")
    key = key_of(job, data, tiny_backbone)
    gate = TrainingGate(1)
    gate.background_grace = WAIT  # the participant waits for the warm sweep to leave, however slow the machine
    epochs_seen: list[int] = []
    at_slot: dict = {}
    someone: list[Participant] = []

    def observe(job: WarmJob, event: dict) -> None:
        if event["stage"] != "epoch":
            return
        epochs_seen.append(event["epoch"])
        if event["epoch"] == 2 and not someone:  # a participant presses Train during epoch 2
            p = Participant(gate)
            someone.append(p.queue())  # queued: the warm sweep learns it after this epoch

            def when_the_warm_up_has_yielded() -> None:
                p.holding.wait(WAIT)
                at_slot.update(epochs=max(epochs_seen), cached=sweep_cache.get(key))
                p.done()

            threading.Thread(target=when_the_warm_up_has_yielded, daemon=True).start()

    w = warmer(toy, tiny_backbone, jobs, gate, observe=observe).start()
    assert w.join(WAIT)
    assert at_slot["epochs"] == 2  # the warm sweep stopped after the epoch that was running
    assert at_slot["cached"] is None  # the stopped sweep was never cached
    assert w.stats.outcomes[YIELDED] == [job.label] and w.stats.outcomes[WARMED] == [job.label]
    warm = sweep_cache.get(key)
    assert warm is not None and not warm.stopped and all(len(r.history["loss"]) == 8 for r in warm.runs)
    assert_same_sweep(warm, train(job.heads, data, epochs=8, seed=job.seed, loaded=tiny_backbone))


def test_a_participant_queueing_during_feature_extraction_stops_it_after_one_batch(tiny_backbone):
    from lib.backbones.features import cache_path, find_cut

    data = toy_data("binary", n=192, seed=4242)  # data nothing else extracts, so its features are not cached yet
    job = lesson_jobs([lesson("extracts", "binary", ("learning_rate=0.01",), epochs=2)])[0]
    gate = TrainingGate(1)
    fractions: list[float] = []
    someone: list[Participant] = []

    def observe(job: WarmJob, event: dict) -> None:
        if event["stage"] == "features":
            fractions.append(event["fraction"])
            if not someone:
                someone.append(Participant(gate).queue())  # holds a slot: the warm-up must leave

    w = LessonWarmer([job], data_for=lambda d, t: data, backbone_for=lambda n, s: tiny_backbone,
                     training_gate=gate, settle=0.0, poll=0.05, observe=observe)
    assert w.warm(job) == YIELDED
    assert len(fractions) == 1 and fractions[0] < 1  # left after the first batch
    assert not cache_path(tiny_backbone, find_cut(tiny_backbone.model, 0), data).exists()
    assert sweep_cache.get(key_of(job, data, tiny_backbone)) is None
    someone[0].done()


def test_warm_up_errors_are_logged_and_never_stop_the_thread_or_the_other_lessons(toy, tiny_backbone, caplog):
    jobs = lesson_jobs([lesson("broken", "binary", ("learning_rate=0.01",)),
                        lesson("fine", "binary", ("learning_rate=0.02",))])

    def data_for(dataset: str, task: str):
        if data_for.calls == 0:
            data_for.calls += 1
            raise RuntimeError("the sample's files are gone")
        return toy(task)

    data_for.calls = 0
    w = LessonWarmer(jobs, data_for=data_for, backbone_for=lambda n, s: tiny_backbone, training_gate=TrainingGate(1),
                     settle=0.0, poll=0.05)
    with caplog.at_level(logging.ERROR, logger="headlab.warmup"):
        w.start()
        assert w.join(WAIT)
    assert w.stats.failed == ["broken (seed 0)"] and w.stats.outcomes[WARMED] == ["fine (seed 0)"]
    assert any("broken (seed 0)" in r.getMessage() and r.exc_info for r in caplog.records)
    assert not w._thread.is_alive()


def test_headlab_warm_lessons_0_turns_the_warm_up_off(monkeypatch):
    monkeypatch.setenv("HEADLAB_WARM_LESSONS", "0")
    assert start_warmup([lesson("off", "binary", ("learning_rate=0.01",))]) is None


def test_the_shared_cache_is_bounded_by_bytes_as_well_as_by_count(monkeypatch, toy, tiny_backbone):
    sweep = train([parse_head_string("binary", "learning_rate=0.01")], toy("binary"), epochs=2, seed=0,
                  loaded=tiny_backbone)
    size = sweep_cache.sweep_bytes(sweep)
    assert size >= sum(a.nbytes for a in sweep.runs[0].snapshots.values()) + sweep.y_val.nbytes
    monkeypatch.setattr(sweep_cache, "MAX_BYTES", int(2.5 * size))
    for k in range(4):
        sweep_cache.put(("k", k), sweep)
    assert sweep_cache.stats() == (2, 2 * size)  # the two least recently used went first
    assert sweep_cache.get(("k", 0)) is None and sweep_cache.get(("k", 3)) is sweep
    sweep_cache.put(("k", 3), sweep)  # the same key again replaces, never counts twice
    assert sweep_cache.stats() == (2, 2 * size)
