"""The classroom scenario of bench/load.py (`--classroom`): one teacher's page and a class of participants.

The teacher opens a lesson, runs it once (as a teacher would before class: the reveal then shows a
result every participant gets from the shared sweep cache; --cold-reveal skips that, so Reveal trains
the lesson while the class waits) and presses "Teach this to a room"; the
room code is read off the teacher's page. Every participant opens the join link, types a nickname and
joins; all of them vote within one second (choices spread over the question's answers); the teacher's
page is followed until its live caption "<v> of <n> have voted (round <r>)" counts every vote. Then
Reveal, and every participant's page is followed until it shows the measured answer, its own vote
marked right or wrong, and the lesson's charts.

Every page is a bench/st_client.py session: the server does all of its work for each page (every
fragment's `run_every` rerun too — the client sends them as the browser does), nothing is drawn.

Figures:
- vote → teacher's screen, per vote: the k-th vote sent (in sending order) is on the teacher's screen
  when the caption first counts k votes. Exact when the server stores votes in the order they are
  sent; otherwise each vote is matched to the count it made, which it cannot be told apart from.
- reveal → results, per participant: from sending the teacher's Reveal to the participant's page
  showing the measured answer, its vote marked and the lesson's charts.
- the room database's own counts after the run: every vote counted exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import statistics
import time
from dataclasses import dataclass, field

# What pages/room.py and the Lessons page show (the contract in the helpers' notes).
TEACH_KEY = "teach-room"
RUN_LESSON_KEY = "run-lesson"
NICKNAME_KEY, JOIN_KEY = "room-nickname", "room-join"
REVEAL_KEY, VOTE_AGAIN_KEY = "room-reveal", "room-vote-again"
VOTED = re.compile(r"(\d+) of (\d+) have voted \(round (\d+)\)")
JOINED = re.compile(r"(\d+) joined")
CODE_IN_QUERY = re.compile(r"(?:^|&)code=([A-Za-z0-9]+)")
MEASURED = "The measured answer:"
# "Your vote in round 2, **A.** text, was :green[**right** :material/check_circle:]"
MARK = re.compile(r"^Your vote in round \d+, .*\bwas\W+(?:\w+\[)?\**(right|wrong)\b", re.S)


@dataclass
class Participant:
    index: int
    nickname: str
    choice: int = -1  # the vote-<i> it presses
    choice_text: str = ""
    vote_sent: dict[int, float] = field(default_factory=dict)  # round -> monotonic time the vote was sent
    vote_seen: dict[int, float] = field(default_factory=dict)  # round -> its own page confirmed the vote
    results_seconds: float | None = None  # reveal sent → measured answer, mark and charts on its page
    answer_seconds: float | None = None  # reveal sent → the measured answer and its vote marked (charts to come)
    mark: str = ""  # "right" / "wrong", as its page says
    errors: list[str] = field(default_factory=list)


@dataclass
class Report:
    code: str = ""
    lesson: str = ""
    n_choices: int = 0
    warm_seconds: float = 0.0  # the teacher's Run it, click → results (trains the lesson once)
    room_seconds: float = 0.0  # Teach this to a room → the teacher's page with the room
    join_seconds: list[float] = field(default_factory=list)
    vote_spread: dict[int, float] = field(default_factory=dict)  # round -> first to last vote sent (s)
    vote_to_teacher: dict[int, list[float]] = field(default_factory=dict)  # round -> per vote (s)
    all_votes_on_teacher: dict[int, float] = field(default_factory=dict)  # round -> last vote sent → caption n/n
    vote_confirmed: dict[int, list[float]] = field(default_factory=dict)  # round -> own page "Your vote …" (s)
    reveal_to_results: list[float] = field(default_factory=list)
    reveal_teacher_seconds: float | None = None  # Reveal → the teacher's own page revealed
    reveal_stored_seconds: float | None = None  # Reveal → the room is "revealed" in the database
    reveal_client_cpu: float = 0.0  # CPU seconds this process (all 31 clients) spent over the reveal
    reveal_wall: float = 0.0
    db_counts: dict[int, list[int]] = field(default_factory=dict)
    expected_counts: dict[int, list[int]] = field(default_factory=dict)
    caption_counts: dict[int, int] = field(default_factory=dict)  # the teacher's final "<v> of n" per round
    caption_timeline: dict[int, list[tuple[float, int]]] = field(default_factory=dict)  # (s after the 1st vote, v)
    fragment_reruns: int = 0  # run_every reruns the clients sent, all pages
    errors: list[str] = field(default_factory=list)  # the teacher's and the run's own


def _voted(state) -> tuple[int, int, int] | None:
    m = state.find_text(VOTED.pattern)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


class CaptionWatch:
    """Follows the teacher's page: the first moment its caption showed each vote count, per round."""

    def __init__(self, client) -> None:
        self.client = client
        self.first_seen: dict[int, dict[int, float]] = {}  # round -> votes -> first monotonic time
        self._task: asyncio.Task | None = None
        self._stopped = False

    def start(self, deadline_end: float) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow(deadline_end))

    async def _follow(self, deadline_end: float) -> None:
        def record(state) -> bool:
            v = _voted(state)
            if v is not None:
                self.first_seen.setdefault(v[2], {}).setdefault(v[0], time.monotonic())
            return self._stopped  # runs until stopped or the deadline

        await self.client.wait_until(record, deadline_end)

    def reached(self, rnd: int, k: int) -> float | None:
        """When the caption first counted at least k votes in this round."""
        times = [t for v, t in self.first_seen.get(rnd, {}).items() if v >= k]
        return min(times) if times else None

    async def stop(self) -> None:
        # A flag, not only cancel(): on Python 3.11 asyncio.wait_for can swallow a cancellation that arrives
        # as its inner wait completes, and the follower would then run on to the deadline (seen once).
        self._stopped = True
        self.client._changed.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5)
            self._task.cancel()


async def _until(client, done, deadline_end: float, what: str, cap: float) -> None:
    """Wait for done(state) at most `cap` seconds (and never past the run's deadline); raise with what it was."""
    if not await client.wait_until(done, min(deadline_end, time.monotonic() + cap)):
        errors = client.state.errors()
        raise RuntimeError(f"{what}: {client.closed or '; '.join(errors) or 'not within ' + format(cap, 'g') + ' s'}")


def _room_code(client) -> str | None:
    m = CODE_IN_QUERY.search(client.state.query_string)
    if m:
        return m.group(1)
    m = client.state.find_text(r"code=([A-HJ-NP-Z2-9]{6})\b") or client.state.find_text(r"\b([A-HJ-NP-Z2-9]{6})\b")
    return m.group(1) if m else None


def _vote_buttons(state) -> list:
    """The participant's vote buttons vote-0, vote-1, … in order."""
    out = []
    for i in range(8):
        b = state.button(key=f"vote-{i}")
        if b is None:
            break
        out.append(b)
    return out


async def _teacher(url: str, lesson: str, rep: Report, deadline_end: float, warm: bool):
    from st_client import StreamlitSession

    t = StreamlitSession(url, "lessons", f"lesson={lesson}")
    await t.open(timeout=60)
    await _until(t, lambda st: st.finished and st.button(key=RUN_LESSON_KEY) is not None, deadline_end,
                 "the lesson page did not load", 300)
    if warm:
        t0 = time.monotonic()
        await t.click(key=RUN_LESSON_KEY)
        await _until(t, lambda st: st.find_text("What we measured:") is not None, deadline_end,
                     "the lesson's run did not finish", 600)
        rep.warm_seconds = time.monotonic() - t0
    await _until(t, lambda st: st.button(key=TEACH_KEY) is not None, deadline_end,
                 "no 'Teach this to a room' button", 60)
    t0 = time.monotonic()
    await t.click(key=TEACH_KEY)
    await _until(t, lambda st: _voted(st) is not None and _room_code(t) is not None, deadline_end,
                 "the teacher's room page did not show", 120)
    rep.room_seconds = time.monotonic() - t0
    rep.code = _room_code(t) or ""
    return t


async def _join(url: str, p: Participant, code: str, deadline_end: float):
    from st_client import StreamlitSession

    c = StreamlitSession(url, "room", f"code={code}")
    t0 = time.monotonic()
    await c.open(timeout=60)
    await _until(c, lambda st: st.finished and st.button(key=JOIN_KEY) is not None
                 and st.widget_and_fragment("text_input", key=NICKNAME_KEY)[0] is not None,
                 deadline_end, "the join page did not load", 120)
    await c.set_text(p.nickname, key=NICKNAME_KEY)
    await c.click(key=JOIN_KEY)
    await _until(c, lambda st: len(_vote_buttons(st)) >= 2, deadline_end, "no vote buttons after Join", 120)
    return c, time.monotonic() - t0


async def _vote_round(pairs, teacher, watch: CaptionWatch, rnd: int, rep: Report, deadline_end: float,
                      within: float) -> None:
    """Every participant votes, the sends spread evenly over `within` seconds; then wait for the
    teacher's caption to count them all and every participant's page to confirm its own vote."""
    n = len(pairs)
    # The schedule reaches this point just after one of the teacher's redraws (it waited for one): a class
    # votes at no particular moment of the teacher's 1 s timer, so the first vote is put at a random one.
    t_start = time.monotonic() + 0.2 + random.random()

    async def vote(k: int, p: Participant, c) -> None:
        p.choice = rnd_choice(p, rnd, rep.n_choices)  # spread; round 2 moves everyone one choice on
        await asyncio.sleep(max(0.0, t_start + within * k / max(1, n - 1) - time.monotonic()))
        try:
            await _until(c, lambda st: st.button(key=f"vote-{p.choice}") is not None, deadline_end,
                         f"round {rnd}: no vote button", 30)
            p.choice_text = c.state.button(key=f"vote-{p.choice}").label
            p.vote_sent[rnd] = time.monotonic()
            await c.click(key=f"vote-{p.choice}")
            want = f"Your vote in round {rnd}: "  # then "A. <the choice's text>"
            await _until(c, lambda st: any(t.startswith(want) and t.endswith(p.choice_text) for t in st.texts()),
                         deadline_end,
                         f"round {rnd}: its vote was not confirmed", 60)
            p.vote_seen[rnd] = time.monotonic()
        except Exception as e:  # noqa: BLE001 — this participant's error, the others go on
            p.errors.append(str(e)[:300])

    await asyncio.gather(*(vote(k, p, c) for k, (p, c) in enumerate(pairs)))
    sent = sorted(p.vote_sent[rnd] for p, _ in pairs if rnd in p.vote_sent)
    rep.vote_spread[rnd] = sent[-1] - sent[0] if sent else 0.0
    rep.vote_confirmed[rnd] = [p.vote_seen[rnd] - p.vote_sent[rnd] for p, _ in pairs if rnd in p.vote_seen]
    # the teacher's caption counts them all (or the deadline / 60 s passes)
    await teacher.wait_until(lambda st: (_voted(st) or (0, 0, 0))[0:3:2] == (n, rnd),
                             min(deadline_end, time.monotonic() + 60))
    final = _voted(teacher.state)
    rep.caption_counts[rnd] = final[0] if final and final[2] == rnd else -1
    if rep.caption_counts[rnd] != n:
        rep.errors.append(f"round {rnd}: the teacher's caption says {final}, not {n} votes")
    rep.vote_to_teacher[rnd] = []
    for k, t_sent in enumerate(sent, start=1):
        seen = watch.reached(rnd, k)
        if seen is None:
            rep.errors.append(f"round {rnd}: vote {k} never on the teacher's screen")
        else:
            rep.vote_to_teacher[rnd].append(max(0.0, seen - t_sent))
    last = watch.reached(rnd, n)
    if last is not None and sent:
        rep.all_votes_on_teacher[rnd] = last - sent[-1]
        rep.caption_timeline[rnd] = sorted((t - sent[0], v) for v, t in watch.first_seen.get(rnd, {}).items()
                                           if v > 0)


def _revealed(p: Participant, runs_before: int, t0: float):
    """Done when the page shows the measured answer, its vote marked and charts, and the full run that
    drew them has ended (the results are complete, not just begun). Notes when the answer and the mark
    first showed (the top of that run)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    def done(state) -> bool:
        if p.answer_seconds is None and state.find_text(re.escape(MEASURED)) and state.find_text(MARK.pattern):
            p.answer_seconds = time.monotonic() - t0
        if ForwardMsg.FINISHED_SUCCESSFULLY not in state.finished[runs_before:]:
            return False
        if state.find_text(re.escape(MEASURED)) is None or not state.of_type("plotly_chart"):
            return False
        m = state.find_text(MARK.pattern)
        if m is None:
            return False
        p.mark = m.group(1)
        return True
    return done


def _room_state(code: str, db_url: str | None) -> str:
    from lib.classroom.store import open_store

    return open_store(db_url).room(code).state


def _db_counts(code: str, rounds: int, db_url: str | None) -> dict[int, list[int]]:
    from lib.classroom.store import open_store

    store = open_store(db_url)
    return {r: list(store.counts(code, r)) for r in range(1, rounds + 1)}


async def run(url: str, args, deadline_end: float, db_url: str | None = None) -> tuple[Report, list[Participant]]:
    """The whole scenario; every page closed at the end."""
    rep = Report(lesson=args.lesson)
    people = [Participant(i, f"p{i + 1:02d}") for i in range(args.sessions)]
    teacher = await _teacher(url, args.lesson, rep, deadline_end, warm=not args.cold_reveal)
    print(("teacher: the lesson not run before (Reveal trains it); " if args.cold_reveal else
           f"teacher: lesson run in {rep.warm_seconds:.1f} s (training it once); ")
          + f"room {rep.code} shown {rep.room_seconds:.2f} s after 'Teach this to a room'", flush=True)
    watch = CaptionWatch(teacher)
    pairs: list = []
    try:
        sem = asyncio.Semaphore(6)  # a class does not open its 30 pages in the same millisecond either

        async def join(p: Participant):
            async with sem:
                try:
                    c, secs = await _join(url, p, rep.code, deadline_end)
                    rep.join_seconds.append(secs)
                    return p, c
                except Exception as e:  # noqa: BLE001
                    p.errors.append(f"join: {str(e)[:300]}")
                    return None

        pairs = [x for x in await asyncio.gather(*(join(p) for p in people)) if x is not None]
        n = len(pairs)
        rep.n_choices = len(_vote_buttons(pairs[0][1].state)) if pairs else 0
        await teacher.wait_until(lambda st: (m := st.find_text(JOINED.pattern)) is not None and int(m.group(1)) >= n,
                                 min(deadline_end, time.monotonic() + 30))
        print(f"{n}/{len(people)} participants joined (median {statistics.median(rep.join_seconds or [0]):.2f} s "
              f"page open → vote buttons); {rep.n_choices} choices; voting", flush=True)
        watch.start(deadline_end)
        await asyncio.sleep(1.5)  # every page's fragment timer running, as in a class that has settled
        for rnd in range(1, args.rounds + 1):
            if rnd > 1:
                await teacher.click(key=VOTE_AGAIN_KEY)
                await _until(teacher, lambda st, r=rnd: (_voted(st) or (0, 0, 0))[2] == r, deadline_end,
                             "Vote again did not start round 2", 60)
                await asyncio.sleep(1.5)  # every participant's timer has ticked once in round 2
            await _vote_round(pairs, teacher, watch, rnd, rep, deadline_end, args.vote_within)
            v = rep.vote_to_teacher[rnd]
            if v:
                print(f"round {rnd}: {len(v)} votes sent within {rep.vote_spread[rnd]:.2f} s; vote → teacher's "
                      f"screen median {statistics.median(v):.2f} s, max {max(v):.2f} s", flush=True)
        rep.expected_counts = {r: [sum(1 for p in people if rnd_choice(p, r, rep.n_choices) == i)
                                   for i in range(rep.n_choices)] for r in range(1, args.rounds + 1)}
        rep.db_counts = await asyncio.to_thread(_db_counts, rep.code, args.rounds, db_url)
        for r in rep.expected_counts:
            if rep.db_counts.get(r) != rep.expected_counts[r]:
                rep.errors.append(f"round {r}: the database counts {rep.db_counts.get(r)}, the class voted "
                                  f"{rep.expected_counts[r]}")
        # Reveal: every participant's page follows its own fragment timer to the results
        before = {id(c): len(c.state.finished) for _, c in pairs}
        pid = getattr(args, "server_pid", None)
        if pid:
            os.kill(pid, signal.SIGUSR1)  # bench/profile_server.py: start sampling
        cpu0 = time.process_time()
        t0 = time.monotonic()
        await teacher.click(key=REVEAL_KEY)

        async def stored() -> None:  # the teacher's server work: the lesson's result found, the room revealed
            while time.monotonic() < min(deadline_end, t0 + 120):
                if await asyncio.to_thread(_room_state, rep.code, db_url) == "revealed":
                    rep.reveal_stored_seconds = time.monotonic() - t0
                    return
                await asyncio.sleep(0.05)

        async def follow(p: Participant, c) -> None:
            try:
                await _until(c, _revealed(p, before[id(c)], t0), deadline_end, "no results after Reveal", 120)
                p.results_seconds = time.monotonic() - t0
            except Exception as e:  # noqa: BLE001
                p.errors.append(str(e)[:300])

        async def teacher_revealed() -> None:
            if await teacher.wait_until(lambda st: st.find_text(re.escape(MEASURED)) is not None,
                                        min(deadline_end, time.monotonic() + 120)):
                rep.reveal_teacher_seconds = time.monotonic() - t0

        await asyncio.gather(stored(), teacher_revealed(), *(follow(p, c) for p, c in pairs))
        rep.reveal_client_cpu = time.process_time() - cpu0
        rep.reveal_wall = time.monotonic() - t0
        if pid:
            os.kill(pid, signal.SIGUSR2)  # stop sampling, write the profile
        rep.reveal_to_results = [p.results_seconds for p, _ in pairs if p.results_seconds is not None]
        answer = _answer_text(teacher.state, pairs)
        for p, c in pairs:
            if p.mark and answer is not None and (p.mark == "right") != (p.choice_text == answer):
                p.errors.append(f"marked {p.mark} for {p.choice_text!r}; the measured answer is {answer!r}")
            p.errors.extend(c.state.errors())
            if c.closed:
                p.errors.append(f"lost connection: {c.closed}")
        rep.errors.extend(teacher.state.errors())
        if teacher.closed:
            rep.errors.append(f"the teacher lost the connection: {teacher.closed}")
        rep.fragment_reruns = teacher.auto_reruns + sum(c.auto_reruns for _, c in pairs)
    finally:
        await watch.stop()
        await asyncio.gather(teacher.close(), *(c.close() for _, c in pairs), return_exceptions=True)
    return rep, people


def rnd_choice(p: Participant, rnd: int, n_choices: int) -> int:
    """The choice participant p votes in round rnd (as _vote_round picks it)."""
    return (p.index + rnd - 1) % n_choices if n_choices else -1


def _answer_text(state, pairs) -> str | None:
    """The measured answer's choice text, from the line "The measured answer: …" (the longest choice it names)."""
    line = next((t for t in state.texts() if MEASURED in t), None)
    if line is None:
        return None
    labels = {p.choice_text for p, _ in pairs}
    named = [lab for lab in labels if lab and lab in line]
    return max(named, key=len) if named else None


def print_report(rep: Report, people: list[Participant], p95, mem) -> bool:
    """Print the figures; True when every target held."""
    print()
    print(f"{'who':>4} {'nick':>5} {'choice':>6} {'confirmed r1':>12} {'results':>8} {'mark':>5}  errors")
    for p in people:
        conf = p.vote_seen.get(1, 0) - p.vote_sent.get(1, 0) if 1 in p.vote_seen else None
        print(f"{p.index:>4} {p.nickname:>5} {p.choice:>6} {conf if conf is None else f'{conf:.2f}':>12} "
              f"{'-' if p.results_seconds is None else f'{p.results_seconds:.2f}':>8} {p.mark:>5}  "
              f"{'; '.join(p.errors)}")
    errored = [p for p in people if p.errors or p.results_seconds is None]
    n_errors = len(errored) + len(rep.errors)
    print()
    print(f"room {rep.code}, lesson {rep.lesson}, {rep.n_choices} choices, {len(people)} participants")
    ok = n_errors == 0
    for rnd, v in sorted(rep.vote_to_teacher.items()):
        conf = rep.vote_confirmed.get(rnd, [])
        print(f"round {rnd}: votes sent within {rep.vote_spread[rnd]:.2f} s; teacher's caption "
              f"{rep.caption_counts.get(rnd)} of {len(people)}; database {rep.db_counts.get(rnd)} "
              f"(the class voted {rep.expected_counts.get(rnd)})")
        if v:
            print(f"  vote → teacher's screen: median {statistics.median(v):.2f} s, p95 {p95(v):.2f} s, "
                  f"max {max(v):.2f} s (target p95 ≤ 3 s); last vote sent → all counted "
                  f"{rep.all_votes_on_teacher.get(rnd, float('nan')):.2f} s")
            ok &= p95(v) <= 3.0 and len(v) == len(people)
        line = rep.caption_timeline.get(rnd)
        if line:
            print("  the teacher's caption counted (s after the first vote sent: votes): "
                  + ", ".join(f"+{t:.2f}: {v}" for t, v in line))
        if conf:
            print(f"  vote → the participant's own page confirms it: median {statistics.median(conf):.2f} s, "
                  f"p95 {p95(conf):.2f} s")
    r = rep.reveal_to_results
    if r:
        print(f"reveal → results on the participant's page: median {statistics.median(r):.2f} s, p95 {p95(r):.2f} s, "
              f"max {max(r):.2f} s, {len(r)} of {len(people)} pages (target p95 ≤ 5 s); the teacher's own page "
              f"{rep.reveal_teacher_seconds if rep.reveal_teacher_seconds is None else f'{rep.reveal_teacher_seconds:.2f} s'}")
        a = [p.answer_seconds for p in people if p.answer_seconds is not None]
        if a:
            print(f"  reveal → the measured answer and the participant's vote marked (the top of that page; its "
                  f"charts follow): median {statistics.median(a):.2f} s, p95 {p95(a):.2f} s")
        stored = rep.reveal_stored_seconds
        print(f"  of which Reveal → the room revealed in the database (the teacher's run finding the lesson's "
              f"result): {'-' if stored is None else f'{stored:.2f} s'}")
        print(f"  the 31 clients' own CPU over the reveal: {rep.reveal_client_cpu:.2f} s in {rep.reveal_wall:.2f} s "
              "(the same 2 cores as the server)")
        ok &= p95(r) <= 5.0 and len(r) == len(people)
    else:
        ok = False
    marks = [p.mark for p in people]
    print(f"marked right / wrong: {marks.count('right')} / {marks.count('wrong')}")
    print(f"errors: {n_errors}" + (f" — run: {'; '.join(rep.errors)}" if rep.errors else ""))
    print(f"fragment reruns sent by the pages' run_every timers: {rep.fragment_reruns}")
    print(f"server memory: peak RSS {mem.peak_rss_kb / 1024:.0f} MB (VmHWM {mem.hwm_kb / 1024:.0f} MB; "
          f"{mem.samples} samples)")
    print("targets (0 errors, every vote counted once, vote → teacher p95 ≤ 3 s, reveal → results p95 ≤ 5 s): "
          + ("all held" if ok else "NOT all held"))
    return ok
