"""The progress throttle: few redraws for a quick sweep, live curves only for runs long enough to watch."""

from __future__ import annotations

import pytest

from lib.serve.progress import RedrawThrottle


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _events(throttle: RedrawThrottle, clock: FakeClock, seconds: float, every: float = 0.01, together: int = 1):
    """Feed one progress event every `every` s for `seconds`; return the times of bar and curve redraws."""
    bars, curves = [], []
    start = clock.t
    for _ in range(round(seconds / every)):
        bar, curve = throttle.due(together)
        if bar:
            bars.append(clock.t - start)
        if curve:
            curves.append(clock.t - start)
        clock.t += every
    return bars, curves


def test_a_quarter_second_sweep_redraws_the_bar_a_few_times_and_draws_no_curves():
    clock = FakeClock()
    bars, curves = _events(RedrawThrottle(clock=clock), clock, seconds=0.25 * 3)  # 75 events
    assert bars[0] == 0.0  # the first epoch shows at once
    assert 2 <= len(bars) <= 4
    assert curves == []


def test_a_long_run_shows_live_curves_from_curves_after_then_once_a_second():
    clock = FakeClock()
    bars, curves = _events(RedrawThrottle(bar_every=0.25, curves_after=1.5, curves_every=1.0, clock=clock), clock, 6.0)
    assert len(bars) == 24
    assert [round(c, 2) for c in curves] == [1.5, 2.5, 3.5, 4.5, 5.5]


def test_time_spent_queued_before_the_first_epoch_does_not_count():
    clock = FakeClock()
    throttle = RedrawThrottle(curves_after=1.5, clock=clock)
    clock.t += 60  # a minute in the queue
    bars, curves = _events(throttle, clock, seconds=0.5)
    assert curves == [] and bars


def test_a_page_in_a_batch_of_sessions_redraws_that_many_times_less_often():
    clock = FakeClock()
    alone_bars, alone_curves = _events(RedrawThrottle(clock=clock), clock, 600.0)
    clock = FakeClock()
    bars, curves = _events(RedrawThrottle(clock=clock), clock, 600.0, together=30)
    # 30 pages together draw the curves about as often as one page alone (the server's drawing stays flat)
    assert 30 * len(curves) == pytest.approx(len(alone_curves), rel=0.1)
    assert bars[0] == 0.0 and len(bars) * 30 / 4 == pytest.approx(len(alone_bars), rel=0.1)
