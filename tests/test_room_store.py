"""The room database (lib/classroom/store.py) and room codes: every store test runs twice, on SQLite (a
temp file) and on a real PostgreSQL server that this module starts itself (tests/pg_server.py) — never
skipped: without PostgreSQL's binaries the fixture fails and says how to install them.

Time is a fake clock the tests move forward (expiry, the flood window); nothing here is timed.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from lib.classroom import codes
from lib.classroom import store as store_module
from lib.classroom.store import (
    MAX_SHARES_PER_PARTICIPANT,
    MAX_WRITES_PER_MINUTE,
    ROOM_TTL_SECONDS,
    TABLES,
    Room,
    RoomError,
    RoomStore,
    connect_store,
    open_store,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pg_server import MISSING, PREFIX, PgServer, PgServerError, find_bin_dir, remove_leftovers  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
T0 = 1_800_000_000.0


class Clock:
    """A clock that moves only when a test says so."""

    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    name: str
    url: str


@pytest.fixture(scope="session")
def pg_url():
    """A throw-away PostgreSQL cluster for the whole session; FAILS (never skips) without the binaries."""
    if find_bin_dir() is None:
        pytest.fail(MISSING, pytrace=False)
    server = PgServer()
    try:
        url = server.start()
    except PgServerError as e:
        pytest.fail(f"Could not start the throw-away PostgreSQL server: {e}", pytrace=False)
    yield url
    server.stop()


_schemas = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path) -> Backend:
    """An empty database: a fresh SQLite file, or a fresh schema on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'rooms.sqlite3'}")
    base = request.getfixturevalue("pg_url")
    schema = f"t{next(_schemas)}"
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    # every connection of this URL finds (and creates) its tables in the test's own schema
    return Backend("postgresql", f"{base}&options={quote(f'-c search_path={schema}', safe='')}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(backend, clock):
    s = connect_store(backend.url, clock=clock)
    yield s
    s.close()


def joined_room(store: RoomStore, n_choices: int = 3, people: int = 1) -> tuple[Room, str, list[str]]:
    room, secret = store.create_room("lesson:sigmoid", n_choices)
    pids = [f"p{i}" for i in range(people)]
    for pid in pids:
        store.join(room.code, pid, f"nick {pid}")
    return room, secret, pids


# ---------------------------------------------------------------- codes


def test_codes_are_six_unambiguous_characters():
    made = {codes.new_code() for _ in range(300)}
    assert len(made) > 290  # random, not a counter or a constant
    for code in made:
        assert len(code) == 6 and set(code) <= set(codes.ALPHABET)
    assert not set("0O1IL") & set(codes.ALPHABET) and len(codes.ALPHABET) == 31
    assert len({codes.new_secret() for _ in range(50)}) == 50 and len(codes.new_secret()) >= 40
    assert len({codes.new_participant_id() for _ in range(50)}) == 50


@pytest.mark.parametrize("typed, code", [
    ("K7QH2W", "K7QH2W"), ("k7qh2w", "K7QH2W"), (" k7q-h2w ", "K7QH2W"), ("K7Q H2W", "K7QH2W"),
    ("k7q–h2w", "K7QH2W"), ("K7QH2", None), ("K7QH2WX", None), ("K0QH2W", None), ("KLQH2W", None),
    ("", None), (None, None), (123456, None),
])
def test_typed_codes_are_normalised(typed, code):
    assert codes.normalize_code(typed) == code


# ---------------------------------------------------------------- rooms, votes, rounds


def test_a_room_is_created_joined_and_voted_in(store, clock):
    room, secret = store.create_room("lesson:sigmoid", 4)
    assert (room.subject, room.n_choices, room.state, room.round, room.answer, room.answer_note) == \
        ("lesson:sigmoid", 4, "voting", 1, None, "")
    assert room.created == room.last_active == T0
    assert store.room(room.code) == room
    typed = f" {room.code[:3].lower()}-{room.code[3:].lower()} "  # as a phone keyboard may type it
    assert store.room(typed).code == room.code
    assert store.n_joined(room.code) == 0
    store.join(typed, "ann", "Ann")
    store.join(room.code, "bob")
    assert store.n_joined(room.code) == 2
    assert store.nickname(room.code, "ann") == "Ann" and store.nickname(room.code, "bob") == ""
    assert store.nickname(room.code, "nobody") is None
    store.vote(room.code, "ann", 2)
    store.vote(typed, "bob", 0)
    assert store.counts(room.code, 1) == [1, 0, 1, 0]
    assert store.counts(room.code, 2) == [0, 0, 0, 0]
    assert store.my_vote(room.code, "ann", 1) == 2 and store.my_vote(room.code, "bob", 1) == 0
    assert store.my_vote(room.code, "ann", 2) is None
    assert store.is_teacher(room.code, secret) and store.is_teacher(typed, secret)


def test_joining_again_is_idempotent_and_may_rename(store):
    room, _, _ = joined_room(store, people=0)
    store.join(room.code, "ann", "Ann")
    store.join(room.code, "ann", "Ann")
    store.join(room.code, "ann")  # a reloaded page joining again keeps the name
    assert store.n_joined(room.code) == 1 and store.nickname(room.code, "ann") == "Ann"
    store.join(room.code, "ann", "Annie")
    assert store.n_joined(room.code) == 1 and store.nickname(room.code, "ann") == "Annie"


def test_a_second_vote_in_a_round_replaces_the_first(store):
    room, _, (ann, bob) = joined_room(store, people=2)
    store.vote(room.code, ann, 0)
    store.vote(room.code, bob, 0)
    store.vote(room.code, ann, 2)
    store.vote(room.code, ann, 1)
    assert store.counts(room.code, 1) == [1, 1, 0]
    assert store.my_vote(room.code, ann, 1) == 1
    assert store.row_counts()["room_votes"] == 2


def test_round_two_keeps_round_one(store):
    room, secret, (ann, bob) = joined_room(store, people=2)
    store.vote(room.code, ann, 0)
    store.vote(room.code, bob, 0)
    again = store.vote_again(room.code, secret)
    assert (again.round, again.state) == (2, "voting")
    assert store.vote_again(room.code, secret).round == 2  # a double click: still round 2
    assert store.counts(room.code, 2) == [0, 0, 0]
    store.vote(room.code, ann, 1)
    assert store.counts(room.code, 1) == [2, 0, 0]
    assert store.counts(room.code, 2) == [0, 1, 0]
    assert store.my_vote(room.code, ann, 1) == 0 and store.my_vote(room.code, ann, 2) == 1
    assert store.my_vote(room.code, bob, 2) is None


def test_reveal_closes_the_vote(store):
    room, secret, (ann, bob) = joined_room(store, people=2)
    store.vote(room.code, ann, 2)
    revealed = store.reveal(room.code, secret, 1, "The sigmoid head reached 0.91 accuracy.")
    assert (revealed.state, revealed.answer, revealed.answer_note, revealed.round) == \
        ("revealed", 1, "The sigmoid head reached 0.91 accuracy.", 1)
    assert store.room(room.code) == revealed
    with pytest.raises(RoomError, match="closed: the teacher has revealed the answer"):
        store.vote(room.code, bob, 0)
    with pytest.raises(RoomError, match="closed"):
        store.vote(room.code, ann, 0)  # not even a change of mind
    assert store.counts(room.code, 1) == [0, 0, 1] and store.my_vote(room.code, ann, 1) == 2
    with pytest.raises(RoomError, match="already revealed"):
        store.vote_again(room.code, secret)
    with pytest.raises(RoomError, match="not one of this question's 3 choices"):
        store.reveal(room.code, secret, 3, "")
    assert store.reveal(room.code, secret, None, "No choice holds.").answer is None  # a run may support none


def test_next_subject_starts_a_new_question_and_clears_the_votes(store):
    room, secret, (ann, bob) = joined_room(store, people=2)
    store.vote(room.code, ann, 2)
    store.vote_again(room.code, secret)
    store.vote(room.code, bob, 1)
    store.share(room.code, ann, "2 heads: zeros · hidden 64 relu", "task=binary&heads=a,b")
    store.reveal(room.code, secret, 2, "measured")
    nxt = store.next_subject(room.code, secret, "lesson:softmax", 5)
    assert (nxt.code, nxt.subject, nxt.n_choices, nxt.state, nxt.round, nxt.answer, nxt.answer_note) == \
        (room.code, "lesson:softmax", 5, "voting", 1, None, "")
    assert store.counts(room.code, 1) == [0] * 5 and store.counts(room.code, 2) == [0] * 5
    assert store.my_vote(room.code, ann, 1) is None
    assert store.row_counts()["room_votes"] == 0
    assert store.n_joined(room.code) == 2 and len(store.shared(room.code)) == 1  # people and shares stay
    store.vote(room.code, bob, 4)
    assert store.counts(room.code, 1) == [0, 0, 0, 0, 1]


# ---------------------------------------------------------------- who may do what


def test_teacher_operations_need_the_secret(store):
    room, secret, (ann,) = joined_room(store)
    other, other_secret = store.create_room("lesson:other", 3)
    store.vote(room.code, ann, 0)
    for wrong in (room.code, room.code.lower(), other_secret, secret[:-1], secret + "x", "", None, 42):
        assert not store.is_teacher(room.code, wrong)
        for operation in (lambda s: store.vote_again(room.code, s),
                          lambda s: store.reveal(room.code, s, 0, "x"),
                          lambda s: store.next_subject(room.code, s, "lesson:x", 3)):
            with pytest.raises(RoomError, match=f"Only the teacher of room {room.code} can do that"):
                operation(wrong)
    now = store.room(room.code)
    assert (now.subject, now.state, now.round, now.answer) == ("lesson:sigmoid", "voting", 1, None)
    assert store.counts(room.code, 1) == [1, 0, 0]
    assert store.is_teacher(other.code, other_secret) and not store.is_teacher(other.code, secret)


def test_only_a_hash_of_the_secret_is_stored(backend, store):
    room, secret = store.create_room("lesson:sigmoid", 3)
    if backend.name == "sqlite":
        import sqlite3

        raw = sqlite3.connect(backend.url[len("sqlite:///"):]).execute("SELECT * FROM rooms").fetchall()
    else:
        import psycopg

        with psycopg.connect(backend.url) as conn:
            raw = conn.execute("SELECT * FROM rooms").fetchall()
    assert len(raw) == 1 and room.code in raw[0]
    assert not any(secret in str(value) for value in raw[0])
    assert store_module._hash_secret(secret) in raw[0]


def test_a_vote_needs_a_participant_who_joined(store):
    room, _, _ = joined_room(store)
    with pytest.raises(RoomError, match=f"You have not joined room {room.code} yet: press Join first"):
        store.vote(room.code, "stranger", 0)
    other, _ = store.create_room("lesson:other", 3)
    with pytest.raises(RoomError, match="not joined"):
        store.vote(other.code, "p0", 0)  # joined another room only
    with pytest.raises(RoomError, match="not joined"):
        store.share(room.code, "stranger", "x", "task=binary")
    with pytest.raises(RoomError, match="no participant id"):
        store.vote(room.code, "", 0)
    assert store.counts(room.code, 1) == [0, 0, 0] and store.counts(other.code, 1) == [0, 0, 0]


@pytest.mark.parametrize("choice", [-1, 3, 99, 1.0, True, "1", None])
def test_a_choice_out_of_range_is_refused(store, choice):
    room, _, (ann,) = joined_room(store)
    with pytest.raises(RoomError, match="There is no such choice in this question: pick one of the 3"):
        store.vote(room.code, ann, choice)
    assert store.counts(room.code, 1) == [0, 0, 0]


def test_a_numpy_integer_is_a_choice(store):
    np = pytest.importorskip("numpy")
    room, _, (ann,) = joined_room(store)
    store.vote(room.code, ann, np.int64(2))
    assert store.counts(room.code, 1) == [0, 0, 1]


def test_a_flood_of_votes_from_one_participant_is_bounded(store, clock):
    room, _, (ann, bob) = joined_room(store, people=2)
    for i in range(MAX_WRITES_PER_MINUTE):
        store.vote(room.code, ann, i % 3)
        clock.advance(1)
    with pytest.raises(RoomError, match=r"Too many votes from this page \(20 in a minute\): wait 40 s"):
        store.vote(room.code, ann, 0)
    store.vote(room.code, bob, 0)  # someone else is not held back
    assert store.counts(room.code, 1) == [1, 1, 0]  # ann's 20th vote (19 % 3 = 1) stands
    clock.advance(40)
    store.vote(room.code, ann, 2)
    assert store.my_vote(room.code, ann, 1) == 2


# ---------------------------------------------------------------- expiry and bad codes


def test_a_room_expires_12_hours_after_its_last_use_with_everything_in_it(store, clock):
    old, old_secret, (ann, bob) = joined_room(store, people=2)
    store.vote(old.code, ann, 1)
    store.vote_again(old.code, old_secret)
    store.vote(old.code, bob, 2)
    store.share(old.code, ann, "my heads", "task=binary")
    clock.advance(ROOM_TTL_SECONDS - 3600)
    kept, _, _ = joined_room(store)  # creating a room expires old ones: the first is not old enough yet
    assert store.room(old.code).code == old.code
    assert store.row_counts() == {"rooms": 2, "room_participants": 3, "room_votes": 2, "room_shares": 1}
    clock.advance(3600 + 1)
    with pytest.raises(RoomError) as caught:  # gone for the users at once, even before expire() runs
        store.room(old.code)
    assert str(caught.value) == (f"There is no open room with the code {old.code}: check the code with your "
                                 "teacher (rooms close 12 hours after their last use).")
    for operation in (lambda: store.join(old.code, "new"), lambda: store.vote(old.code, ann, 0),
                      lambda: store.counts(old.code, 1), lambda: store.n_joined(old.code),
                      lambda: store.reveal(old.code, old_secret, 0, "")):
        with pytest.raises(RoomError, match="There is no open room"):
            operation()
    assert store.expire() == 1
    assert store.row_counts() == {"rooms": 1, "room_participants": 1, "room_votes": 0, "room_shares": 0}
    assert store.room(kept.code).code == kept.code
    assert store.expire(now=clock.now + ROOM_TTL_SECONDS + 1) == 1
    assert store.row_counts() == dict.fromkeys(TABLES, 0)


def test_creating_a_room_deletes_the_expired_ones(store, clock):
    old, _, (ann,) = joined_room(store)
    store.vote(old.code, ann, 0)
    clock.advance(ROOM_TTL_SECONDS + 1)
    new, _ = store.create_room("lesson:next", 3)
    assert store.row_counts() == {"rooms": 1, "room_participants": 0, "room_votes": 0, "room_shares": 0}
    assert store.room(new.code).subject == "lesson:next"


def test_use_keeps_a_room_open(store, clock):
    room, _, (ann,) = joined_room(store)
    clock.advance(ROOM_TTL_SECONDS - 60)
    store.vote(room.code, ann, 0)
    clock.advance(ROOM_TTL_SECONDS - 60)  # 24 h after creation, 12 h minus a minute after the vote
    assert store.expire() == 0 and store.room(room.code).last_active == T0 + ROOM_TTL_SECONDS - 60


def test_unknown_and_malformed_codes_get_one_clear_line(store):
    with pytest.raises(RoomError) as caught:
        store.room("abc-234")
    assert str(caught.value) == ("There is no open room with the code ABC234: check the code with your "
                                 "teacher (rooms close 12 hours after their last use).")
    for typed in ("ABC12", "hello world", "", "A\nB<b>C"):
        with pytest.raises(RoomError) as caught:
            store.join(typed, "ann")
        message = str(caught.value)
        assert "is not a room code: a room code is the 6 letters and digits" in message
        assert "\n" not in message


def test_create_room_retries_when_a_code_is_taken(store, monkeypatch):
    first, _ = store.create_room("lesson:a", 3)
    drawn = iter([first.code, first.code, "ZZZZZ2"])
    monkeypatch.setattr(codes, "new_code", lambda: next(drawn))
    second, _ = store.create_room("lesson:b", 3)
    assert second.code == "ZZZZZ2" and store.room(first.code).subject == "lesson:a"


@pytest.mark.parametrize("subject, n_choices", [("", 3), ("lesson:a", 1), ("lesson:a", 11), ("lesson:a", 2.5)])
def test_a_room_needs_a_subject_and_a_sensible_number_of_choices(store, subject, n_choices):
    with pytest.raises(RoomError, match="A room"):
        store.create_room(subject, n_choices)
    assert store.row_counts()["rooms"] == 0


# ---------------------------------------------------------------- user text


HOSTILE = "**Bob**\n![x](http://evil.example/t.png) \u202egnp.exe\u202c <script>alert(1)</script> :red[hi] $x$"


def test_a_nickname_with_markdown_newlines_and_rtl_is_stored_as_plain_text(store):
    room, _, _ = joined_room(store, people=0)
    store.join(room.code, "ann", HOSTILE)
    name = store.nickname(room.code, "ann")
    assert name == "**Bob** ![x](http://evil.exam…"  # one line, cut at 30 characters, Markdown left as text
    assert len(name) == 30 and "\n" not in name and "\u202e" not in name
    store.join(room.code, "bob", "  Zoë  \t  Ünal ")
    assert store.nickname(room.code, "bob") == "Zoë Ünal"


def test_shared_experiments_are_text_bounded_and_newest_first(store, clock):
    room, _, (ann, bob) = joined_room(store, people=2)
    store.share(room.code, ann, HOSTILE, "task=binary&heads=zeros")
    clock.advance(1)
    store.share(room.code, bob, "bob's", "task=multiclass")
    shared = store.shared(room.code)
    assert [(s.nickname, s.query, s.when) for s in shared] == \
        [("nick p1", "task=multiclass", T0 + 1), ("nick p0", "task=binary&heads=zeros", T0)]
    assert "\n" not in shared[1].summary and "\u202e" not in shared[1].summary
    assert shared[1].summary.startswith("**Bob** ![x](http://evil.example/t.png) gnp.exe <script>")
    clock.advance(1)
    store.share(room.code, ann, "now 3 heads", "task=binary&heads=zeros")  # the same experiment: updated
    assert [(s.summary, s.when) for s in store.shared(room.code) if s.query.endswith("zeros")] == \
        [("now 3 heads", T0 + 2)]
    for i in range(MAX_SHARES_PER_PARTICIPANT + 3):
        clock.advance(1)
        store.share(room.code, ann, f"try {i}", f"task=binary&seed={i}")
    mine = [s for s in store.shared(room.code) if s.nickname == "nick p0"]
    assert [s.summary for s in mine] == [f"try {i}" for i in reversed(range(3, MAX_SHARES_PER_PARTICIPANT + 3))]
    with pytest.raises(RoomError, match="no experiment to share"):
        store.share(room.code, bob, "x", "  ")
    with pytest.raises(RoomError, match="too long to share"):
        store.share(room.code, bob, "x", "a=" + "b" * 5000)


# ---------------------------------------------------------------- several stores, processes, threads


def test_two_stores_on_one_database_see_each_others_votes(backend, store, clock):
    other = connect_store(backend.url, clock=clock)
    try:
        room, secret = store.create_room("lesson:sigmoid", 3)
        other.join(room.code, "ann", "Ann")
        store.join(room.code, "bob", "Bob")
        other.vote(room.code, "ann", 1)
        store.vote(room.code, "bob", 1)
        assert store.counts(room.code, 1) == other.counts(room.code, 1) == [0, 2, 0]
        assert other.reveal(room.code, secret, 1, "seen").state == "revealed"
        assert store.room(room.code).state == "revealed"
        with pytest.raises(RoomError, match="closed"):
            store.vote(room.code, "bob", 0)
    finally:
        other.close()


VOTER = textwrap.dedent("""
    import sys
    from lib.classroom.store import connect_store
    url, code, who = sys.argv[1:4]
    store = connect_store(url)
    if code == "new":
        room, secret = store.create_room("lesson:from-" + who, 3)
        print(room.code)
    else:
        for i in range(5):
            pid = f"{who}-{i}"
            store.join(code, pid, pid)
            store.vote(code, pid, i % 3)
        print(store.counts(code, 1))
""")


def _processes(url: str, code: str, names: list[str]) -> list[str]:
    running = [subprocess.Popen([sys.executable, "-c", VOTER, url, code, name], cwd=REPO, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in names]
    out = []
    for p in running:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        out.append(stdout.strip())
    return out


def test_two_processes_start_at_once_on_a_fresh_database_and_share_rooms(backend, clock):
    # both create the schema at the same moment on an empty database, then each creates a room
    codes_made = _processes(backend.url, "new", ["a", "b"])
    assert len(set(codes_made)) == 2
    store = connect_store(backend.url)  # real clock: the rooms were made now
    try:
        assert sorted(store.room(c).subject for c in codes_made) == ["lesson:from-a", "lesson:from-b"]
        # two processes vote in one room at once; a third (this one) sees all ten votes
        _processes(backend.url, codes_made[0], ["x", "y"])
        assert store.counts(codes_made[0], 1) == [4, 4, 2] and store.n_joined(codes_made[0]) == 10
    finally:
        store.close()


def test_thirty_participants_voting_at_once_are_each_counted_once(store):
    room, secret, pids = joined_room(store, people=30)
    start = threading.Barrier(30)
    errors: list[BaseException] = []

    def participant(i: int, pid: str) -> None:
        try:
            start.wait(timeout=60)
            store.vote(room.code, pid, (i + 1) % 3)  # a first thought…
            store.vote(room.code, pid, i % 3)  # …replaced at once
            store.counts(room.code, 1)  # and the teacher's page reads while others write
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=participant, args=(i, pid)) for i, pid in enumerate(pids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert store.counts(room.code, 1) == [10, 10, 10]
    assert [store.my_vote(room.code, pid, 1) for pid in pids] == [i % 3 for i in range(30)]
    assert store.row_counts()["room_votes"] == 30


# ---------------------------------------------------------------- opening a store


def test_open_store_is_one_per_process_per_url(tmp_path, monkeypatch):
    monkeypatch.delenv(store_module.ENV_URL, raising=False)
    monkeypatch.setattr(store_module, "_STORES", {})
    default = open_store()
    assert default is open_store()
    assert default.url == f"sqlite:///{store_module.cache_dir() / 'rooms.sqlite3'}"
    url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    assert open_store(url) is open_store(url) is not default
    monkeypatch.setenv(store_module.ENV_URL, url)
    assert open_store() is open_store(url)
    room, _ = default.create_room("lesson:a", 3)
    assert (store_module.cache_dir() / "rooms.sqlite3").is_file()
    with pytest.raises(RoomError):
        open_store(url).room(room.code)  # a different database
    for s in store_module._STORES.values():
        s.close()


def test_a_wrong_database_url_says_what_to_fix():
    with pytest.raises(RoomError, match="HEADLAB_DB_URL must be a postgresql:// URL .* fix it and restart"):
        connect_store("mysql://user:pw@host/db")


def test_an_unreachable_database_is_one_line_to_act_on(tmp_path):
    dead = connect_store(f"postgresql://postgres@/postgres?host={quote(str(tmp_path), safe='')}&port=1")
    with pytest.raises(RoomError) as caught:
        dead.room("ABC234")
    assert str(caught.value).startswith("The room database did not answer (")
    assert "try again in a moment" in str(caught.value) and "\n" not in str(caught.value)


def test_the_test_server_says_how_to_install_postgresql_when_it_is_missing(tmp_path):
    assert find_bin_dir([tmp_path]) is None
    server = PgServer(parent=tmp_path)
    server.bin_dir = None  # as on a machine without the postgresql package
    with pytest.raises(PgServerError, match=r"not installed.*run `make postgres`"):
        server.start()
    assert list(tmp_path.iterdir()) == []


def test_a_cluster_left_by_a_killed_run_is_removed_by_the_next_start(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    left, mine = tmp_path / f"{PREFIX}left", tmp_path / f"{PREFIX}mine"
    for root, pid in ((left, finished.stdout.strip()), (mine, str(os.getpid()))):
        (root / "data").mkdir(parents=True)
        (root / "owner.pid").write_text(pid)
    assert remove_leftovers(tmp_path, find_bin_dir()) == [left]
    assert not left.exists() and mine.exists()
