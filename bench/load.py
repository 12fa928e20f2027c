"""Load test: N people click Train at (about) the same moment on one Head Lab server.

Starts `streamlit run app.py` on 127.0.0.1 with a fresh HEADLAB_CACHE, warms it with one session's
run (features extracted and cached), times one session alone (median of --single-runs), then opens N
sessions on the Experiment page, each with its own 4-head sweep link (seed varies per session, or
one shared seed with --same-sweep), clicks Train on all of them together and waits for every
session's results ("Trained 4 heads" and the loss chart with a train and a validation curve per head).

Two kinds of client (--client):
  ws       (default) Streamlit's own websocket protocol (bench/st_client.py): everything the server
           does for a session, nothing drawn. In a workshop each participant's browser draws on their
           own laptop; 30 Chromium renderers on this machine would take the server's cores instead.
  browser  one headless Chromium page per session (real drawing, on this machine's cores); times
           run to "charts drawn", measured in the page's own clock.
With --watcher (ws client), one more participant in a real Chromium page presses Train just after
everyone else and is timed to charts drawn, against the same page alone: what the last in line sees.

Per session it records click → results time, whether it was queued behind the server's training
gate and the highest place in line it saw, and errors (timeouts, an exception box or error alert on
the page, a lost connection; the per-head diagnoses the results show as red boxes with a "Knob:" —
this sweep includes a one-unit softmax on purpose — are findings, not failures). The server's memory
(VmRSS / VmHWM of the streamlit process) is sampled every 0.5 s.

With --classroom (bench/classroom.py), a teacher's page runs a lesson and opens a room from it, --sessions
participants join with its code, all vote within one second, and after Reveal every participant's page
shows the results: vote → the teacher's screen and reveal → results are timed, and every vote is
checked to be counted exactly once, on the teacher's page and in the room database.

With --hostile, --sessions - 1 participants run the burst twice: alone, then while one more participant
in a real page keeps sending the worst links and uploads of issue 9 (bench/hostile.py); the p95 of the
two bursts and the server's peak memory are compared.

    python bench/load.py [--client ws|browser] [--watcher | --hostile] [--sessions 30] [--epochs 20] [--heads 4] [--slots N]
                         [--same-sweep] [--single-runs 3] [--timeout 1800] [--port N]
    python bench/load.py --classroom [--sessions 30] [--lesson sigmoid-vs-softmax] [--rounds 1|2] [--cold-reveal] [--db-url URL | --postgres] [--profile]

Exits non-zero when any session errored. Only loopback addresses are used; the server is always
terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# the app warms every lesson in the background at start (lib/serve/warmup.py): off, so this measures only its own clicks
os.environ.setdefault("HEADLAB_WARM_LESSONS", "0")

HEADS = ["activation=sigmoid", "activation=softmax,units=1",
         "activation=softmax,units=2,loss=sparse_categorical_crossentropy", "activation=linear,from_logits=true",
         "activation=sigmoid,units=1", "activation=softmax,units=2,loss=sparse_categorical_crossentropy"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Installed in every page before clicking: records the click moment, every "Queued: N" place seen,
# the moment results are complete, and any error box / lost connection — all in the page's clock,
# so the figures do not depend on how quickly this script gets round to polling 30 pages.
WATCH_JS = r"""
(nHeads) => {
  if (window.__hl) return;
  const st = window.__hl = {clickAt: null, doneAt: null, maxPlace: 0, queued: false, errors: [],
                            disconnected: false, successText: null,
                            barAt: null, startAt: null, trainedAt: null};  // phases, for where time goes
  document.addEventListener('click', (e) => {
    const b = e.target.closest && e.target.closest('button');
    if (b && st.clickAt === null && /Train/.test(b.textContent)) st.clickAt = performance.now();
  }, true);
  const want = `Trained ${nHeads} heads`;
  const check = () => {
    if (st.clickAt === null) return;
    for (const el of document.querySelectorAll('[data-testid=stProgress]')) {
      if (st.barAt === null) st.barAt = performance.now();  // the script reached train_with_progress
      if (st.startAt === null && !/Waiting for a training slot|Queued:/.test(el.textContent))
        st.startAt = performance.now();  // holds a training slot
      const m = /Queued: place (\d+)/.exec(el.textContent);
      if (m) { st.queued = true; st.maxPlace = Math.max(st.maxPlace, +m[1]); }
    }
    for (const el of document.querySelectorAll('[data-testid=stException], [data-testid=stAlertContentError]')) {
      // a head's diagnosis in the results ("... Knob: units") is an expected finding, not a failure
      if (el.getAttribute('data-testid') == 'stAlertContentError' && el.textContent.includes('Knob:')) continue;
      const t = (el.getAttribute('data-testid') + ': ' + el.textContent).slice(0, 300);
      if (!st.errors.includes(t)) st.errors.push(t);
    }
    if (document.querySelector('[data-testid=stConnectionStatus]')) st.disconnected = true;
    if (st.doneAt === null) {
      const ok = [...document.querySelectorAll('[data-testid=stAlertContentSuccess]')]
        .find(el => el.textContent.includes(want));
      if (ok && st.trainedAt === null) st.trainedAt = performance.now();
      const plot = document.querySelector('.js-plotly-plot');
      if (ok && plot && plot.querySelectorAll('g.trace.scatter').length == 2 * nHeads) {
        st.doneAt = performance.now(); st.successText = ok.textContent;
      }
    }
  };
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true, characterData: true});
  setInterval(check, 250);
}
"""


@dataclass
class Session:
    index: int
    seed: int
    seconds: float | None = None
    queued: bool = False
    max_place: int = 0
    errors: list[str] = field(default_factory=list)
    disconnected: bool = False
    success_text: str | None = None
    phases: dict = field(default_factory=dict)  # click → bar shown, → slot held, → "Trained", → charts


class MemorySampler(threading.Thread):
    """Every `interval` s: VmRSS of `pid` (peak kept) and VmHWM (the kernel's own peak)."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss_kb = 0
        self.hwm_kb = 0
        self.samples = 0
        self._stop = threading.Event()

    def sample(self) -> None:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        for key in ("VmRSS", "VmHWM"):
            m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
            if m:
                kb = int(m.group(1))
                if key == "VmRSS":
                    self.peak_rss_kb = max(self.peak_rss_kb, kb)
                else:
                    self.hwm_kb = max(self.hwm_kb, kb)
        self.samples += 1

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self.sample()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, seconds: float = 120, where: str = "") -> None:
    """Return once the Streamlit server at url answers its health check; raise if it exits or takes too long."""
    healthy_by = time.monotonic() + seconds
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}; {where}".rstrip("; "))
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return
        except OSError:
            pass
        if time.monotonic() > healthy_by:
            raise RuntimeError(f"server not healthy within {seconds:.0f} s")
        time.sleep(0.5)


def _query(heads: int, epochs: int, seed: int) -> str:
    from lib.experiment import Experiment
    from lib.heads.config import parse_head_string

    exp = Experiment(task="binary", dataset="fashion", epochs=epochs, seed=seed,
                     heads=tuple(parse_head_string("binary", h) for h in HEADS[:heads]))
    return urllib.parse.urlencode(exp.to_query(), doseq=True)


def _p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (for 30 values: the 29th smallest)."""
    s = sorted(values)
    return s[max(0, math.ceil(0.95 * len(s)) - 1)]


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        left = max(1.0, self.end - time.monotonic())
        return min(left, cap) if cap else left

    def ms(self, cap: float | None = None) -> float:
        return self.left(cap) * 1000


async def _open(browser, url: str, s: Session, args, deadline: Deadline):
    """A fresh browser context on the session's link, watcher installed, Train button ready."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(deadline.ms(300))
    page = await ctx.new_page()
    await page.goto(f"{url}/experiment?{_query(args.heads, args.epochs, s.seed)}", timeout=deadline.ms(300))
    await page.get_by_role("button", name="Train").wait_for(timeout=deadline.ms(300))
    await page.evaluate(WATCH_JS, args.heads)
    return ctx, page


async def _wait_result(page, s: Session, deadline: Deadline, poll: float = 0.5) -> None:
    """Poll the page's watcher until results are drawn, an error shows, or time runs out."""
    state: dict = {}
    while True:
        try:
            state = await asyncio.wait_for(page.evaluate("() => window.__hl"), timeout=deadline.left(60))
        except Exception as e:  # noqa: BLE001 — a page that stops answering is this session's error
            s.errors.append(f"page did not answer: {type(e).__name__}: {str(e)[:200]}")
            return
        s.queued, s.max_place = state["queued"], state["maxPlace"]
        s.disconnected = state["disconnected"]
        if state["errors"]:
            s.errors.extend(state["errors"])
            return
        if state["doneAt"] is not None:
            s.seconds = (state["doneAt"] - state["clickAt"]) / 1000
            s.success_text = state["successText"]
            marks = [state["clickAt"], state["barAt"], state["startAt"], state["trainedAt"], state["doneAt"]]
            if all(m is not None for m in marks):
                s.phases = {k: (b - a) / 1000 for k, a, b in zip(("to_gate", "queued", "train", "draw"),
                                                                   marks, marks[1:])}
            return
        if time.monotonic() >= deadline.end:
            s.errors.append("timeout: no results before the overall deadline"
                            + (" (the page lost its connection)" if s.disconnected else ""))
            return
        await asyncio.sleep(poll)


async def _one_alone(browser, url: str, s: Session, args, deadline: Deadline) -> Session:
    ctx, page = await _open(browser, url, s, args, deadline)
    try:
        await page.wait_for_timeout(500)
        await page.get_by_role("button", name="Train").click(timeout=deadline.ms(60))
        await _wait_result(page, s, deadline)
    finally:
        await ctx.close()
    return s


async def _burst(browser, url: str, sessions: list[Session], args, deadline: Deadline) -> float:
    """Open every session, then click all Train buttons together; returns the click spread (s)."""
    ready = await _open_all(lambda s: _open(browser, url, s, args, deadline), sessions)
    await asyncio.sleep(1.0)

    async def click(s: Session, page) -> float | None:
        try:
            await page.get_by_role("button", name="Train").click(timeout=deadline.ms(60))
            return time.monotonic()
        except Exception as e:  # noqa: BLE001
            s.errors.append(f"click failed: {type(e).__name__}: {str(e)[:200]}")
            return None

    t0 = time.monotonic()
    clicked = await asyncio.gather(*(click(s, o[1]) for s, o in ready))
    spread = max((c for c in clicked if c), default=t0) - t0
    try:
        await asyncio.gather(*(_wait_result(o[1], s, deadline) for (s, o), c in zip(ready, clicked) if c))
    finally:
        await asyncio.gather(*(o[0].close() for _, o in ready), return_exceptions=True)
    return spread


# ---- websocket client (default): the server's work only, as when every participant has a laptop ----
async def _ws_open(url: str, s: Session, args, deadline: Deadline):
    from st_client import StreamlitSession

    client = StreamlitSession(url, "experiment", _query(args.heads, args.epochs, s.seed))
    await client.open(timeout=deadline.left(60))
    if not await client.wait_until(lambda st: st.finished and st.button("Train") is not None,
                                   time.monotonic() + deadline.left(300)):
        await client.close()
        raise RuntimeError(f"page did not load ({client.closed or 'no Train button'})")
    return client


async def _ws_run(client, s: Session, args, deadline: Deadline, clicks: list[float] | None = None) -> None:
    """Click Train and follow the session's page until its results are complete (or it fails)."""
    from streamlit.proto.Alert_pb2 import Alert

    want = f"Trained {args.heads} heads"
    runs_before = len(client.state.finished)
    marks: dict[str, float] = {}

    def check(st) -> bool:
        now = time.monotonic()
        texts = st.progress_texts()
        if texts:
            marks.setdefault("bar", now)
            for t in texts:
                m = re.search(r"Queued: place (\d+)", t)
                if m:
                    s.queued, s.max_place = True, max(s.max_place, int(m.group(1)))
                elif "Waiting for a training slot" not in t:
                    marks.setdefault("start", now)
        if any(want in a for a in st.alerts(Alert.SUCCESS)):
            marks.setdefault("trained", now)
        if st.errors():
            return True
        return len(st.finished) > runs_before and "trained" in marks

    t0 = marks["click"] = time.monotonic()
    await client.click("Train")
    if clicks is not None:
        clicks.append(time.monotonic())
    await client.wait_until(check, deadline.end)
    errors = client.state.errors()
    if errors:
        s.errors.extend(errors)
    elif "trained" not in marks or len(client.state.finished) <= runs_before:
        s.errors.append("timeout: no results before the overall deadline" if not client.closed
                        else f"lost connection: {client.closed}")
    else:
        traces = client.state.plotly_trace_counts()
        if 2 * args.heads not in traces:  # the loss chart: train + validation per head
            s.errors.append(f"results without the loss chart (plotly traces per chart: {traces})")
            return
        s.seconds = time.monotonic() - t0
        s.success_text = next(a for a in client.state.alerts(Alert.SUCCESS) if want in a)
        s.disconnected = client.closed is not None
        order = ["click", "bar", "start", "trained"]
        if all(k in marks for k in order):
            end = t0 + s.seconds
            points = [marks[k] for k in order] + [end]
            s.phases = {k: b - a for k, a, b in zip(("to_gate", "queued", "train", "draw"), points, points[1:])}


async def _ws_one_alone(url: str, s: Session, args, deadline: Deadline) -> Session:
    client = await _ws_open(url, s, args, deadline)
    try:
        await asyncio.sleep(0.5)
        await _ws_run(client, s, args, deadline)
    finally:
        await client.close()
    return s


async def _ws_burst(url: str, sessions: list[Session], args, deadline: Deadline, watcher=None) -> float:
    """Open every session, then click all Train buttons together; returns the click spread (s).

    watcher: (browser, Session) — one more participant in a real page, who clicks just after all the
    others (so is last in line) and is timed to charts drawn, as they would see it.
    """
    ready = await _open_all(lambda s: _ws_open(url, s, args, deadline), sessions)
    page = None
    if watcher is not None:
        browser, w = watcher
        ctx, page = await _open(browser, url, w, args, deadline)
    await asyncio.sleep(1.0)
    clicks: list[float] = []
    try:
        runs = asyncio.gather(*(_ws_run(c, s, args, deadline, clicks) for s, c in ready))
        if page is not None:
            while len(clicks) < len(ready):  # every other click sent first
                await asyncio.sleep(0.01)
            await page.get_by_role("button", name="Train").click(timeout=deadline.ms(60))
            await _wait_result(page, w, deadline)
        await runs
    finally:
        await asyncio.gather(*(c.close() for _, c in ready), return_exceptions=True)
        if page is not None:
            await ctx.close()
    return max(clicks) - min(clicks) if clicks else 0.0


async def _drive_ws(url: str, args, deadline: Deadline, mem: MemorySampler):
    if not args.watcher:
        return await _measure(lambda s: _ws_one_alone(url, s, args, deadline),
                              lambda sessions: _ws_burst(url, sessions, args, deadline), args, mem)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, timeout=60_000)
        try:
            await _ws_one_alone(url, Session(-49, seed=49), args, deadline)  # features extracted, graphs traced
            alone = await _one_alone(browser, url, Session(-50, seed=50), args, deadline)
            if alone.errors:
                raise RuntimeError(f"watcher alone failed: {alone.errors}")
            seed = 100 if args.same_sweep else 100 + args.sessions
            watcher = Session(args.sessions, seed=seed)
            result = await _measure(lambda s: _ws_one_alone(url, s, args, deadline),
                                    lambda sessions: _ws_burst(url, sessions, args, deadline, (browser, watcher)),
                                    args, mem)
        finally:
            await browser.close()
    if watcher.errors or watcher.seconds is None:
        raise RuntimeError(f"the watcher's page failed: {watcher.errors or 'no result'}")
    print(f"watcher (a real page, one more session, clicking last; highest place in line it saw: "
          f"{watcher.max_place}): {watcher.seconds:.2f} s click → charts drawn under load, {alone.seconds:.2f} s "
          f"alone: {watcher.seconds / alone.seconds:.2f}×", flush=True)
    return result


async def _drive_hostile(url: str, args, deadline: Deadline, mem: MemorySampler):
    """--hostile: the burst of --sessions - 1 participants, then a burst of as many other sweeps while
    one more participant keeps sending the worst links and uploads (bench/hostile.py)."""
    import hostile
    from playwright.async_api import async_playwright

    n = args.sessions - 1
    args.sessions = n
    built = await asyncio.to_thread(hostile.prepare)
    single, calm, _, _, _ = await _measure(lambda s: _ws_one_alone(url, s, args, deadline),
                                           lambda sessions: _ws_burst(url, sessions, args, deadline), args, mem)
    calm_done = [s.seconds for s in calm if s.seconds is not None]
    calm_errors = sum(bool(s.errors) or s.seconds is None for s in calm)
    print(f"without the hostile participant: {n} sessions, {calm_errors} errors, p95 {_p95(calm_done):.2f} s",
          flush=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, timeout=60_000)
        try:
            stop = asyncio.Event()
            attacker = asyncio.create_task(hostile.run(browser, url, stop, built))
            await asyncio.sleep(5)  # its first upload is being decoded when the class clicks Train
            rss_before = mem.peak_rss_kb
            sessions = [Session(i, seed=500 + i) for i in range(n)]
            t0 = time.monotonic()
            spread = await _ws_burst(url, sessions, args, deadline)
            wall = time.monotonic() - t0
            stop.set()
            try:
                attempts = await asyncio.wait_for(attacker, timeout=deadline.left(600))
            except TimeoutError:
                attacker.cancel()
                attempts = []
        finally:
            await browser.close()
    print("the hostile participant's attempts during the burst (seconds to the page's answer):")
    for a in attempts:
        print(f"  {a.seconds:6.1f} s  {a.what}: {a.outcome}")
    done = [s.seconds for s in sessions if s.seconds is not None]
    if done and calm_done:
        print(f"p95 with the hostile participant {_p95(done):.2f} s vs {_p95(calm_done):.2f} s without: "
              f"{_p95(done) / _p95(calm_done):.2f}× (target ≤ 2×)", flush=True)
    return single, sessions, spread, wall, rss_before


# ---- real browsers: what a page shows, but every renderer runs on the server's own cores ----------
async def _drive(url: str, args, deadline: Deadline, mem: MemorySampler):
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS,
                                           timeout=60_000)
        try:
            return await _measure(lambda s: _one_alone(browser, url, s, args, deadline),
                                  lambda sessions: _burst(browser, url, sessions, args, deadline), args, mem)
        finally:
            await browser.close()


# ---- what both clients share ----------------------------------------------------------------------
async def _open_all(open_one, sessions: list[Session]) -> list[tuple[Session, object]]:
    """open_one(session) for every session, a few at a time (30 page loads at once would starve the 2
    cores); a session that fails to open gets the error and is left out."""
    sem = asyncio.Semaphore(6)

    async def guarded(s: Session):
        async with sem:
            try:
                return await open_one(s)
            except Exception as e:  # noqa: BLE001
                s.errors.append(f"page did not load: {type(e).__name__}: {str(e)[:200]}")
                return None

    opened = await asyncio.gather(*(guarded(s) for s in sessions))
    ready = [(s, o) for s, o in zip(sessions, opened) if o is not None]
    print(f"  {len(ready)}/{len(sessions)} sessions open with Train ready; clicking all together", flush=True)
    return ready


async def _measure(one_alone, burst, args, mem: MemorySampler):
    """Warm-up run, then --single-runs sessions alone (median), then the burst of --sessions."""
    warm = await one_alone(Session(-1, seed=0))
    print(f"warm-up: {warm.seconds and f'{warm.seconds:.2f} s'} — {warm.success_text or warm.errors}", flush=True)
    if warm.errors:
        raise RuntimeError(f"warm-up failed: {warm.errors}")
    singles = []
    for k in range(args.single_runs):
        one = await one_alone(Session(-2 - k, seed=1 + k))
        if one.errors:
            raise RuntimeError(f"single-session run failed: {one.errors}")
        print(f"single session alone: {one.seconds:.2f} s — {one.success_text}", flush=True)
        singles.append(one.seconds)
    rss_before = mem.peak_rss_kb
    # --same-sweep: the workshop case, everyone runs the same lesson (served from the shared sweep cache)
    sessions = [Session(i, seed=100 if args.same_sweep else 100 + i) for i in range(args.sessions)]
    t0 = time.monotonic()
    spread = await burst(sessions)
    wall = time.monotonic() - t0
    return statistics.median(singles), sessions, spread, wall, rss_before


def _stop_server(server: subprocess.Popen, mem: MemorySampler, log) -> MemorySampler:
    """Stop sampling, terminate the server (kill it if it lingers), close its log; safe to call twice."""
    mem.stop()
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    log.close()
    return mem


def _on_alarm(*_) -> None:
    raise TimeoutError("overall timeout passed")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=30)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--heads", type=int, default=4, choices=range(1, len(HEADS) + 1))
    p.add_argument("--slots", type=int, default=None,
                   help="HEADLAB_TRAINING_SLOTS for the server (default: the server's own default)")
    p.add_argument("--timeout", type=float, default=1800, help="overall limit in seconds")
    p.add_argument("--same-sweep", action="store_true",
                   help="every session runs the same experiment and seed (a class running one lesson)")
    p.add_argument("--single-runs", type=int, default=3, help="lone-session timings before the burst (median)")
    p.add_argument("--watcher", action="store_true",
                   help="with --client ws: one more participant in a real Chromium page, clicking just after "
                        "everyone else, timed to charts drawn (what the last in line sees)")
    p.add_argument("--hostile", action="store_true",
                   help="with --client ws: --sessions - 1 participants train twice, the second time while one more "
                        "keeps sending the worst links and uploads of issue 9 (bench/hostile.py); compares p95")
    p.add_argument("--classroom", action="store_true",
                   help="the classroom scenario: a teacher's room from a lesson, --sessions participants join and vote "
                        "within one second, then Reveal (bench/classroom.py)")
    p.add_argument("--lesson", default="sigmoid-vs-softmax", help="with --classroom: the lesson the room is about")
    p.add_argument("--rounds", type=int, default=1, choices=(1, 2),
                   help="with --classroom: 2 adds 'Vote again' and a second round before Reveal")
    p.add_argument("--cold-reveal", action="store_true",
                   help="with --classroom: the teacher does not run the lesson first, so Reveal trains it")
    p.add_argument("--vote-within", type=float, default=0.9,
                   help="with --classroom: the class's votes are sent evenly over this many seconds")
    p.add_argument("--db-url", default=None,
                   help="with --classroom: HEADLAB_DB_URL for the server (a postgresql:// URL); default SQLite "
                        "in the run's own HEADLAB_CACHE")
    p.add_argument("--postgres", action="store_true",
                   help="with --classroom: the room database on a throw-away PostgreSQL server (tests/pg_server.py, "
                        "Debian's postgresql package), removed afterwards")
    p.add_argument("--profile", action="store_true",
                   help="with --classroom: sample the server's threads from Reveal until every page has its results "
                        "(bench/profile_server.py); the profile is written next to the server log")
    p.add_argument("--port", type=int, default=None, help="the server's loopback port (default: a free one)")
    p.add_argument("--client", choices=("ws", "browser"), default="ws",
                   help="ws: Streamlit's websocket protocol, no rendering (as when each participant has their own "
                        "laptop); browser: one headless Chromium page per session, on this machine's cores")
    args = p.parse_args()

    deadline = Deadline(args.timeout)
    # backstop: if anything hangs past the deadline, SIGALRM ends the run (the finally still runs)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(args.timeout) + 60)

    pg = None
    if args.postgres and not args.db_url:
        sys.path.insert(0, str(ROOT / "tests"))
        from pg_server import PgServer

        pg = PgServer()
        args.db_url = pg.start()
    try:
        return _run(args, deadline)
    finally:
        if pg is not None:
            pg.stop()


def _run(args, deadline: Deadline) -> int:
    cache = tempfile.mkdtemp(prefix="headlab-load-")
    env = {**os.environ, "HEADLAB_CACHE": cache}
    os.environ["HEADLAB_CACHE"] = cache  # this process reads the same room database (--classroom)
    if args.db_url:
        env["HEADLAB_DB_URL"] = args.db_url
    if args.slots is not None:
        env["HEADLAB_TRAINING_SLOTS"] = str(args.slots)
    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(Path(cache) / "server.log", "w")  # noqa: SIM115 — closed in finally
    profile = Path(cache) / "profile.txt"
    launcher = ([sys.executable, str(ROOT / "bench" / "profile_server.py"), str(profile)] if args.profile
                else [sys.executable, "-m", "streamlit", "run"])
    server = subprocess.Popen([*launcher, "app.py", "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true",
                               "--browser.gatherUsageStats", "false",
                               # no file watcher: other people's edits and test runs in this checkout
                               # must not rerun or prompt the sessions, nor spend the server's CPU
                               "--server.fileWatcherType", "none"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    mem = MemorySampler(server.pid)
    mem.start()
    what = (f"classroom: 1 teacher + {args.sessions} participants, lesson {args.lesson}, {args.rounds} round(s), "
            f"database {'PostgreSQL' if args.db_url else 'SQLite'}" if args.classroom else
            f"{args.sessions} sessions × {args.heads} heads × {args.epochs} epochs")
    print(f"server pid {server.pid} on {url}; cache {cache}; slots "
          f"{args.slots if args.slots is not None else 'default'}; {what}", flush=True)
    try:
        wait_healthy(url, server, where=f"see {log.name}")
        if args.classroom:
            import classroom

            args.server_pid = server.pid if args.profile else None
            rep, people = asyncio.run(asyncio.wait_for(
                classroom.run(url, args, deadline.end, args.db_url), timeout=deadline.left()))
            ok = classroom.print_report(rep, people, _p95, _stop_server(server, mem, log))
            print(f"server log: {Path(cache) / 'server.log'}")
            if args.profile:
                print(f"the server's profile of the reveal (bench/profile_server.py): {profile}")
            return 0 if ok else 1
        drive = _drive_hostile if args.hostile else _drive_ws if args.client == "ws" else _drive
        single, sessions, spread, wall, rss_before = asyncio.run(
            asyncio.wait_for(drive(url, args, deadline, mem), timeout=deadline.left()))
    finally:
        signal.alarm(0)
        _stop_server(server, mem, log)

    print()
    print(f"{'session':>7} {'seed':>5} {'seconds':>8} {'queued':>6} {'max place':>9} "
          f"{'to gate':>8} {'in queue':>8} {'train':>6} {'draw':>6}  errors")
    for s in sessions:
        secs = f"{s.seconds:.2f}" if s.seconds is not None else "-"
        ph = " ".join(f"{s.phases[k]:>{w}.1f}" if k in s.phases else f"{'-':>{w}}"
                      for k, w in (("to_gate", 8), ("queued", 8), ("train", 6), ("draw", 6)))
        print(f"{s.index:>7} {s.seed:>5} {secs:>8} {'yes' if s.queued else 'no':>6} {s.max_place:>9} {ph}  "
              f"{'; '.join(s.errors) if s.errors else ''}{' [connection lost]' if s.disconnected else ''}")
    done = [s.seconds for s in sessions if s.seconds is not None]
    errored = [s for s in sessions if s.errors or s.seconds is None]
    print()
    print(f"sessions: {len(sessions)} (clicked within {spread:.2f} s; burst wall time {wall:.1f} s)")
    print(f"errors: {len(errored)}")
    print(f"results received: {len(done)}/{len(sessions)}")
    print(f"queued sessions: {sum(s.queued for s in sessions)}; max queue place seen: "
          f"{max((s.max_place for s in sessions), default=0)}")
    if done:
        p95 = _p95(done)
        print(f"completion time click → results: median {statistics.median(done):.2f} s, p95 {p95:.2f} s, "
              f"min {min(done):.2f} s, max {max(done):.2f} s")
        print(f"single session alone: {single:.2f} s; p95 / single = {p95 / single:.2f}×")
        slowest = max((s for s in sessions if s.seconds is not None), key=lambda s: s.seconds)
        print(f"slowest session's page said: {slowest.success_text}")  # its batch's training time
        timed = [s.phases for s in sessions if s.phases]
        if timed:
            print("median phases: " + ", ".join(
                f"{name} {statistics.median(ph[k] for ph in timed):.1f} s" for k, name in
                (("to_gate", "click → progress bar"), ("queued", "in queue"), ("train", "training + results"),
                 ("draw", "results → charts drawn"))))
    print(f"server memory: peak RSS {mem.peak_rss_kb / 1024:.0f} MB (VmHWM {mem.hwm_kb / 1024:.0f} MB; "
          f"peak before the burst {rss_before / 1024:.0f} MB; {mem.samples} samples)")
    print(f"server log: {Path(cache) / 'server.log'}")
    return 1 if errored else 0


if __name__ == "__main__":
    raise SystemExit(main())
