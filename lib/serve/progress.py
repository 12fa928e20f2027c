"""When a training page should redraw its progress bar and live loss curves.

Every redraw is a message to the browser, and under a workshop's load those messages queue behind one
another: a 4-head sweep trains in a quarter of a second, so redrawing per head and epoch cost more than
the training it showed. The bar moves a few times a second; live curves appear only for runs long
enough to watch.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RedrawThrottle:
    """due() says, for one progress event, whether to redraw the bar and whether to redraw the curves.

    The clock starts at the first event (the first epoch), not at creation: time spent queued for a
    training slot does not count towards `curves_after`.
    """

    def __init__(self, bar_every: float = 0.25, curves_after: float = 1.5, curves_every: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bar_every, self.curves_after, self.curves_every = bar_every, curves_after, curves_every
        self.clock = clock
        self.started: float | None = None
        self._last_bar = self._last_curves = float("-inf")

    def due(self, together: int = 1) -> tuple[bool, bool]:
        """`together`: how many sessions' sweeps train in the batch this one is in. Each of them redraws
        its own page, so each redraws that many times less often: the server draws as much for a batch
        as for one sweep (29 pages redrawing their curves every second starved a batch's training: 106 s
        to results in bench/load.py, 9–10 s once throttled)."""
        now = self.clock()
        if self.started is None:
            self.started = now
        n = max(1, together)
        bar = now - self._last_bar >= self.bar_every * max(1.0, n / 4)
        if bar:
            self._last_bar = now
        curves = now - self.started >= self.curves_after * n and now - self._last_curves >= self.curves_every * n
        if curves:
            self._last_curves = now
        return bar, curves


def live_loss_rows(history: dict[int, list[float]], labels: list[str]) -> list[dict]:
    """Long-format rows {epoch, head, training loss} for the live chart: epochs (from 1) on the x axis
    and one line per head. Heads are numbered ("1. …") so that two heads with the same label stay two
    lines, and their legend sorts in head order (up to 9 heads, more than MAX_HEADS). Non-finite losses
    (a diverging head) are left out: a chart cannot draw them."""
    import math

    rows = []
    for i, losses in sorted(history.items()):
        head = f"{i + 1}. {labels[i]}"
        rows.extend({"epoch": k + 1, "head": head, "training loss": v}
                    for k, v in enumerate(losses) if math.isfinite(v))
    return rows
