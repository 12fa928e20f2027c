"""Cross-session batching at the training gate (lib/serve/shared_training.py): clicks queued together train
together, and every session gets exactly its own results, progress and start, in its own thread."""

from __future__ import annotations

import contextlib
import threading

import pytest
from conftest import THREAD_WAIT
from test_stacked import _assert_same_runs

import lib.train.trainer as T
from lib.heads.config import parse_head_string
from lib.serve import shared_training
from lib.serve.gate import TrainingGate
from lib.serve.shared_training import train_shared

WAIT = THREAD_WAIT
pytestmark = pytest.mark.usefixtures("empty_sweep_cache")


@pytest.fixture
def calls(monkeypatch):
    """Every train_together call's parts' seeds, in order."""
    seen: list[list[int]] = []
    real = T.train_together

    def recording(parts, *args, **kwargs):
        seen.append([p.seed for p in parts])
        return real(parts, *args, **kwargs)

    monkeypatch.setattr(T, "train_together", recording)
    return seen


def heads(*specs):
    return tuple(parse_head_string("binary", s) for s in specs)


class Click:
    """One session's Train click in its own thread, recording where its callbacks ran."""

    def __init__(self, name, configs, data, loaded, epochs, seed, gate, fail_progress=False):
        self.name, self.configs, self.epochs, self.seed = name, configs, epochs, seed
        self.events, self.threads, self.started, self.result, self.error = [], set(), 0, None, None
        self.fail_progress = fail_progress

        def progress(event):
            self.threads.add(threading.get_ident())
            self.events.append(event)
            if fail_progress and event["stage"] == "epoch":
                raise KeyboardInterrupt("the tab was closed")  # what Streamlit's StopException is: a BaseException

        def start():
            self.threads.add(threading.get_ident())
            self.started += 1

        def body():
            try:
                self.result = train_shared(configs, data, loaded, epochs, seed, on_start=start, progress=progress,
                                           training_gate=gate)
            except BaseException as e:  # noqa: BLE001 - checked by the test
                self.error = e

        self.thread = threading.Thread(target=body, name=name)

    def start(self):
        self.thread.start()
        return self


@contextlib.contextmanager
def _slot_held_elsewhere(gate):
    """Another session holds the gate's only slot (in its own thread) until the block ends."""
    release, holding = threading.Event(), threading.Event()

    def holder():
        with gate.slot():
            holding.set()
            release.wait(WAIT)

    h = threading.Thread(target=holder)
    h.start()
    assert holding.wait(WAIT)
    try:
        yield
    finally:
        release.set()
        h.join(WAIT)


def _queue_behind_a_holder(gate, clicks):
    """Start the clicks one by one while another session holds the only slot; release it once all wait."""
    with _slot_held_elsewhere(gate):
        for n, c in enumerate(clicks, 1):
            c.start()
            while gate.waiting() < n:  # in arrival order
                threading.Event().wait(0.01)
    for c in clicks:
        c.thread.join(WAIT)
        assert not c.thread.is_alive(), c.name


def test_clicks_queued_together_train_in_one_batch_and_each_gets_its_own(toy, tiny_backbone, calls):
    data, gate = toy("binary"), TrainingGate(1)
    a = Click("a", heads("activation=sigmoid", "activation=softmax,units=1"), data, tiny_backbone, 4, 1, gate)
    b = Click("b", heads("activation=sigmoid", "hidden=8:relu"), data, tiny_backbone, 4, 2, gate)
    c = Click("c", heads("activation=sigmoid"), data, tiny_backbone, 3, 5, gate)  # other epochs: not mergeable
    a2 = Click("a again", a.configs, data, tiny_backbone, 4, 1, gate)  # the same sweep as a: trained once
    _queue_behind_a_holder(gate, [a, b, c, a2])
    for click in (a, b, c, a2):
        assert click.error is None, (click.name, click.error)
    assert calls == [[1, 2], [5]]  # a led a batch with b (a again shares a's); c trained on its own
    for click in (a, b, c):
        alone = T.train(click.configs, data, epochs=click.epochs, seed=click.seed, loaded=tiny_backbone)
        _assert_same_runs(alone, click.result.sweep)
        assert not click.result.shared and click.started == 1
        # progress and start reached each session in its own thread, and only its own runs' epochs
        assert click.threads == {click.thread.ident}
        epochs = [e for e in click.events if e["stage"] == "epoch"]
        assert len(epochs) == click.epochs * len(click.configs)
        assert sorted({e["run"] for e in epochs}) == list(range(len(click.configs)))
    assert a.result.sweep.timing["sweeps_trained_together"] == 2
    assert a2.result.shared and a2.started == 0 and a2.result.sweep.runs[0].history == a.result.sweep.runs[0].history
    assert gate.waiting() == 0 and gate.running() == 0 and not shared_training._PENDING


def test_a_leader_whose_page_goes_away_still_trains_the_others(toy, tiny_backbone, calls):
    data, gate = toy("binary"), TrainingGate(1)
    leader = Click("leader", heads("activation=sigmoid"), data, tiny_backbone, 3, 1, gate, fail_progress=True)
    other = Click("other", heads("activation=sigmoid"), data, tiny_backbone, 3, 2, gate)
    _queue_behind_a_holder(gate, [leader, other])
    assert calls == [[1, 2]]
    assert isinstance(leader.error, KeyboardInterrupt)  # its own page's stop, raised in its own thread
    assert other.error is None and len(other.result.sweep.runs[0].history["epoch"]) == 3
    alone = T.train(other.configs, data, epochs=3, seed=2, loaded=tiny_backbone)
    _assert_same_runs(alone, other.result.sweep)
    assert gate.waiting() == 0 and gate.running() == 0


def test_a_sweep_stopped_when_its_page_went_away_is_never_served_to_the_next_click(toy, tiny_backbone, calls):
    """A lone click whose tab closes stops its training after the first epoch; that partial sweep must not
    be shared: the next identical click trains every epoch itself (found in the browser: a lesson run after
    a closed tab showed 'Stopped after epoch 1 of 20: cancelled' as someone else's finished sweep)."""
    data, gate = toy("binary"), TrainingGate(1)
    gone = Click("gone", heads("activation=sigmoid"), data, tiny_backbone, 4, 3, gate, fail_progress=True).start()
    gone.thread.join(WAIT)
    assert isinstance(gone.error, KeyboardInterrupt)
    again = Click("again", gone.configs, data, tiny_backbone, 4, 3, gate).start()
    again.thread.join(WAIT)
    assert again.error is None and not again.result.shared and again.started == 1
    assert calls == [[3], [3]] and not again.result.sweep.stopped
    assert len(again.result.sweep.runs[0].history["epoch"]) == 4


def test_a_batch_never_holds_more_than_one_train_is_allowed(toy, tiny_backbone, calls, monkeypatch):
    monkeypatch.setattr(shared_training, "MAX_BATCH_HEADS", 3)
    data, gate = toy("binary"), TrainingGate(1)
    clicks = [Click(f"s{i}", heads("activation=sigmoid", "activation=linear,from_logits=true"), data,
                    tiny_backbone, 2, i, gate) for i in range(3)]
    _queue_behind_a_holder(gate, clicks)
    assert calls == [[0], [1], [2]]  # 2 + 2 heads would exceed 3
    assert all(c.error is None for c in clicks)


def test_a_waiter_whose_page_stops_while_queued_leaves_the_line():
    gate = TrainingGate(1)

    def stopped_page(place):
        raise KeyboardInterrupt("rerun")  # Streamlit stops a script from inside its callbacks

    with _slot_held_elsewhere(gate):
        with pytest.raises(KeyboardInterrupt), gate.slot(on_wait=stopped_page):
            pass
        assert gate.waiting() == 0  # its ticket did not stay first in line, blocking everyone behind it
    with gate.slot() as held:  # the next click gets the slot
        assert held and gate.running() == 1
