"""`streamlit run` with a sampling profiler, for finding where a load run's server time goes.

    python bench/profile_server.py OUT.txt [streamlit run's arguments…]

Runs Streamlit in this process. SIGUSR1 starts sampling, SIGUSR2 stops it and writes OUT.txt: every
5 ms, the stack of every thread (grouped as the script runs — Streamlit's ScriptRunner threads, one
per session's run —, the server's event loop, and the rest). Counts are thread-samples: a thread
waiting for the GIL is counted where it waits, so with many runs at once the counts share out the
wall time in proportion to the work each place does. Listed: the project's own functions and
Streamlit's / Plotly's by inclusive share (the time spent in them and everything they call), and the
top functions by self share.

cProfile would see only the thread that starts it; this sees all of them.
"""

from __future__ import annotations

import collections
import signal
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INTERVAL = 0.005


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True, name="headlab-profiler")
        self.on = threading.Event()
        self.samples: dict[str, int] = collections.Counter()  # group -> thread-samples
        self.inclusive: dict[tuple[str, str], int] = collections.Counter()  # (group, frame) -> samples
        self.self_: dict[tuple[str, str], int] = collections.Counter()
        self.ticks = 0
        self.started = 0.0
        self.wall = 0.0

    @staticmethod
    def _where(code) -> str:
        path = code.co_filename
        if path.startswith(str(ROOT)) and "/.venv/" not in path:
            path = path[len(str(ROOT)) + 1:]
        elif "site-packages/" in path:
            path = path.split("site-packages/", 1)[1]
        return f"{path}:{code.co_firstlineno} {code.co_name}"

    def run(self) -> None:
        names: dict[int, str] = {}
        refreshed = 0.0
        me = threading.get_ident()
        while True:
            self.on.wait()
            time.sleep(INTERVAL)
            if not self.on.is_set():
                continue
            now = time.monotonic()
            if now - refreshed > 0.5:
                names = {t.ident: t.name for t in threading.enumerate()}
                refreshed = now
            self.ticks += 1
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                name = names.get(ident, "")
                group = ("script runs" if name.startswith("ScriptRunner") else
                         "event loop" if name == "MainThread" else "other threads")
                self.samples[group] += 1
                seen = set()
                top = True
                while frame is not None:
                    where = self._where(frame.f_code)
                    if top:
                        self.self_[(group, where)] += 1
                        top = False
                    if where not in seen:
                        seen.add(where)
                        self.inclusive[(group, where)] += 1
                    frame = frame.f_back

    def start_sampling(self) -> None:
        self.samples.clear()
        self.inclusive.clear()
        self.self_.clear()
        self.ticks = 0
        self.started = time.monotonic()
        self.on.set()

    def report(self) -> str:
        self.on.clear()
        wall = time.monotonic() - self.started
        lines = [f"sampled {wall:.2f} s of wall time, {self.ticks} ticks of {INTERVAL * 1000:.0f} ms"]
        for group in ("script runs", "event loop"):
            total = self.samples.get(group, 0)
            if not total:
                continue
            lines.append("")
            lines.append(f"== {group}: {total} thread-samples (≈ {total / max(1, self.ticks):.1f} threads busy "
                         f"or waiting on average)")
            inc = sorted(((n, w) for (g, w), n in self.inclusive.items() if g == group), reverse=True)
            ours = [(n, w) for n, w in inc if not w.startswith(("streamlit/", "plotly/", "tornado/", "asyncio/",
                                                               "threading", "<", "/"))]
            lines.append("-- the project's functions, inclusive")
            lines += [f"{100 * n / total:6.1f}%  {w}" for n, w in ours[:40]]
            lines.append("-- every function, inclusive")
            lines += [f"{100 * n / total:6.1f}%  {w}" for n, w in inc[:45]]
            lines.append("-- self")
            slf = sorted(((n, w) for (g, w), n in self.self_.items() if g == group), reverse=True)
            lines += [f"{100 * n / total:6.1f}%  {w}" for n, w in slf[:30]]
        return "\n".join(lines) + "\n"


def main() -> None:
    out = Path(sys.argv[1])
    sampler = Sampler()
    sampler.start()
    signal.signal(signal.SIGUSR1, lambda *_: sampler.start_sampling())
    signal.signal(signal.SIGUSR2, lambda *_: out.write_text(sampler.report()))
    sys.argv = ["streamlit", "run", *sys.argv[2:]]
    from streamlit.web import cli

    cli.main()


if __name__ == "__main__":
    main()
