"""The room database: rooms, who joined them, their votes and the experiments shared with them.

One small module over two databases. SQLite (standard library) is the embedded default: one file,
`cache_dir()/rooms.sqlite3`, in WAL mode, so several Head Lab processes on one machine share their
rooms. PostgreSQL (psycopg 3) is used when $HEADLAB_DB_URL is a postgresql:// URL, for several
machines behind a load balancer.

Why plain `sqlite3` + `psycopg` and not SQLAlchemy Core: both drivers take the same SQL here (the
upsert `INSERT … ON CONFLICT … DO UPDATE`, `UPDATE … RETURNING`, `BEGIN`/`COMMIT` on an autocommit
connection, cursors with `fetchone`/`fetchall`/`rowcount`), so the dialect difference is four small
things in `_Dialect` (placeholder, auto-increment key, how a write transaction begins and locks a
row, how concurrent schema creation is serialised), and every query has a single code path already.
SQLAlchemy Core would add a dependency and a layer of per-call overhead to remove those four lines.

Measured (2 shared cores, load average ≈ 7 from other work; PostgreSQL 15 on a local Unix socket):
a vote (one write transaction) takes 0.13 ms median on SQLite (WAL, synchronous=NORMAL) and 1.1 ms on
PostgreSQL (0.7 ms with fsync off, as in the tests); reading a round's counts 0.04 ms vs 0.2 ms.
30 threads voting and reading the counts at the same instant: all 30 done in 12–17 ms on SQLite and
50–90 ms on PostgreSQL, per operation p95 ≤ 20 ms / ≤ 170 ms, whatever the pool size (1, 4 or 8: the
differences were within the noise), every vote counted once. The database is never the bottleneck of a
30-person room (the issue's target is 3 s from vote to the teacher's screen). The pool holds 4
connections: as fast as a single locked connection here, and PostgreSQL can use the extra ones.

Threads. Streamlit runs every script run (every rerun, every `run_every` fragment tick) in a new
thread, so a connection per thread would open a new database connection about once per second per
browser (a new PostgreSQL backend process each time). Instead a store keeps a small pool of
connections: an operation borrows one, runs, and gives it back. A pool of 1 is a global lock; more
lets SQLite readers run beside a writer (WAL) and PostgreSQL run statements in parallel.

Consistency. Every write is one transaction. SQLite's `BEGIN IMMEDIATE` takes the write lock up front
(so two writers never deadlock upgrading a read lock; `busy_timeout` makes the second wait). On
PostgreSQL a vote reads its room `FOR SHARE`, so a reveal (which updates the room row) waits for votes
in flight and no vote lands after the reveal; votes of different participants do not wait for each
other. The room's last activity is refreshed at most once a minute, outside the vote's transaction,
so 30 voters do not queue on the room's row.

Trust. Only a SHA-256 of the teacher's secret is stored, compared with `hmac.compare_digest`; the room
code is public and never enough. A participant votes only after joining, once per round (a new vote
replaces the old one), only while the room is voting, and at most MAX_WRITES_PER_MINUTE times a minute
(a fixed one-minute window per participant, kept in its row).
Nicknames and share summaries are cleaned with `lib.common.text.clean_name` and stored as plain text
(the pages show them as text); nothing a participant uploads is stored here, only the experiment's
URL query and a one-line summary. Rooms expire ROOM_TTL_SECONDS after their last activity and are
deleted with everything in them (foreign keys ON DELETE CASCADE); `expire()` also runs on create_room.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.classroom import codes
from lib.common.errors import HeadLabError
from lib.common.paths import cache_dir
from lib.common.text import clean_name

ROOM_TTL_SECONDS = 12 * 3600
# A participant's writes (votes and shares) per minute: a person clicking fast changes their mind a
# few times; a script looping on the vote button is cut off after this many and told to wait.
MAX_WRITES_PER_MINUTE = 20
FLOOD_WINDOW_SECONDS = 60
# Peer Instruction asks twice: alone, then after discussing with a neighbour.
MAX_ROUNDS = 2
MIN_CHOICES, MAX_CHOICES = 2, 10
NICKNAME_CHARS = 30
SUMMARY_CHARS = 200
MAX_QUERY_CHARS = 4000
MAX_SUBJECT_CHARS = 4000
MAX_NOTE_CHARS = 4000
MAX_PARTICIPANTS = 500
MAX_SHARES_PER_PARTICIPANT = 5
# The room's last_active is rewritten only when it is older than this: 30 votes in a second are one
# write to the room's row, not 30, and a 12-hour expiry does not need better than a minute.
TOUCH_EVERY_SECONDS = 60
DEFAULT_POOL_SIZE = 4
BUSY_TIMEOUT_MS = 5000
SQLITE_FILE = "rooms.sqlite3"
ENV_URL = "HEADLAB_DB_URL"


class RoomError(HeadLabError):
    """A room that cannot be used or an action on it that is refused; one line the user can act on."""


@dataclass(frozen=True)
class Room:
    """A room as it is now. state: 'voting' or 'revealed'; round: 1, or 2 after 'Vote again'."""

    code: str
    subject: str
    n_choices: int
    state: str
    round: int
    answer: int | None
    answer_note: str
    created: float
    last_active: float


@dataclass(frozen=True)
class Shared:
    """An experiment a participant shared with the room: their nickname, a one-line summary, its URL query."""

    nickname: str
    summary: str
    query: str
    when: float


# ---------------------------------------------------------------- the two dialects


@dataclass(frozen=True)
class _Dialect:
    """All that differs between SQLite and PostgreSQL for this module's SQL."""

    name: str
    placeholder: str  # written '?' in this module
    autoincrement_key: str
    begin_write: str
    lock_shared: str  # appended to a SELECT that must keep the row from changing until commit
    lock_update: str  # appended to a SELECT of a row this transaction will update
    schema_lock: str | None  # run first in the schema's transaction, so two processes create it in turn

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


SQLITE = _Dialect("sqlite", "?", "INTEGER PRIMARY KEY AUTOINCREMENT", "BEGIN IMMEDIATE", "", "", None)
POSTGRES = _Dialect("postgresql", "%s", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BEGIN",
                    " FOR SHARE", " FOR UPDATE",
                    # any constant: one lock id for "the room schema" in this database
                    "SELECT pg_advisory_xact_lock(7301139)")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rooms (
        code TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        subject TEXT NOT NULL,
        n_choices INTEGER NOT NULL,
        state TEXT NOT NULL,
        round INTEGER NOT NULL,
        answer INTEGER,
        answer_note TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        last_active DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS rooms_last_active ON rooms (last_active)",
    """CREATE TABLE IF NOT EXISTS room_participants (
        code TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
        pid TEXT NOT NULL,
        nickname TEXT NOT NULL,
        joined DOUBLE PRECISION NOT NULL,
        window_start DOUBLE PRECISION NOT NULL,
        writes INTEGER NOT NULL,
        PRIMARY KEY (code, pid))""",
    """CREATE TABLE IF NOT EXISTS room_votes (
        code TEXT NOT NULL,
        round INTEGER NOT NULL,
        pid TEXT NOT NULL,
        choice INTEGER NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (code, round, pid),
        FOREIGN KEY (code, pid) REFERENCES room_participants (code, pid) ON DELETE CASCADE)""",
    """CREATE TABLE IF NOT EXISTS room_shares (
        id {autoincrement_key},
        code TEXT NOT NULL,
        pid TEXT NOT NULL,
        summary TEXT NOT NULL,
        query TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        UNIQUE (code, pid, query),
        FOREIGN KEY (code, pid) REFERENCES room_participants (code, pid) ON DELETE CASCADE)""",
)
TABLES = ("rooms", "room_participants", "room_votes", "room_shares")
_ROOM_COLUMNS = "code, subject, n_choices, state, round, answer, answer_note, created, last_active"


# ---------------------------------------------------------------- connections


class _Pool:
    """At most `size` connections, each used by one thread at a time and given back after each operation."""

    def __init__(self, connect: Callable[[], Any], size: int, is_broken: Callable[[Any], bool]):
        self._connect = connect
        self._is_broken = is_broken
        self._idle: list[Any] = []
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        if not self._slots.acquire(timeout=BUSY_TIMEOUT_MS / 1000 * 2):
            raise RoomError("The room database is busy: try again in a moment.")
        conn = None
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect()
                with self._lock:
                    self._all.append(conn)
            yield conn
        except HeadLabError:
            raise  # refused by the store's own checks: the transaction was rolled back, the connection is fine
        except BaseException:
            # A connection that failed mid-operation may be broken (server restarted) or left inside a
            # transaction: the next operation gets a fresh one.
            if conn is not None:
                self._discard(conn)
                conn = None
            raise
        finally:
            if conn is not None:
                if self._is_broken(conn):
                    self._discard(conn)
                else:
                    with self._lock:
                        self._idle.append(conn)
            self._slots.release()

    def _discard(self, conn: Any) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        with self._lock:
            conns, self._all, self._idle = self._all, [], []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: autocommit, so a read is one statement and writes say BEGIN themselves;
    # check_same_thread=False: the pool hands the connection to one thread at a time.
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _set_wal(conn)
    # In WAL mode NORMAL loses at most the last commits on a power cut, never corrupts: fine for votes.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _set_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode, waiting out another process that is doing the same.

    Switching a fresh file to WAL needs an exclusive lock, and SQLite answers "database is locked" at once
    (no busy handler) when two servers start together on an empty database; the mode is stored in the file,
    so once one has switched it the other finds it already set.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _postgres_connect(url: str) -> Any:
    import psycopg

    # autocommit: a read is one statement, a write says BEGIN/COMMIT itself, as on SQLite.
    return psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="headlab-rooms")


def _sqlite_is_broken(conn: sqlite3.Connection) -> bool:
    return conn.in_transaction


def _postgres_is_broken(conn: Any) -> bool:
    from psycopg.pq import TransactionStatus

    return conn.broken or conn.closed or conn.info.transaction_status != TransactionStatus.IDLE


def _operational_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.OperationalError]
    try:
        import psycopg

        errors.append(psycopg.OperationalError)
    except ImportError:  # only SQLite in use
        pass
    return tuple(errors)


# ---------------------------------------------------------------- the store


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _room(row: tuple) -> Room:
    code, subject, n_choices, state, round_, answer, note, created, last_active = row
    return Room(code, subject, int(n_choices), state, int(round_), None if answer is None else int(answer),
                note, float(created), float(last_active))


def _no_room(code: str) -> RoomError:
    return RoomError(f"There is no open room with the code {code}: check the code with your teacher "
                     f"(rooms close {ROOM_TTL_SECONDS // 3600} hours after their last use).")


def _not_teacher(code: str) -> RoomError:
    return RoomError(f"Only the teacher of room {code} can do that: open the room from the teacher's "
                     "link (the one with teacher= in it), or create a new room.")


def _not_joined(code: str) -> RoomError:
    return RoomError(f"You have not joined room {code} yet: press Join first (a reloaded page may need "
                     "to join again).")


class RoomStore:
    """Rooms in one database (see the module docstring). Thread-safe; every method that takes a code
    normalises it and raises RoomError for a code that is not an open room.

    clock: where "now" comes from (tests move it forward to expire rooms).
    """

    def __init__(self, dialect: _Dialect, connect: Callable[[], Any], *, clock: Callable[[], float] = time.time,
                 pool_size: int = DEFAULT_POOL_SIZE, url: str = "", description: str = ""):
        self.dialect = dialect
        self.url = url
        self.description = description
        self.clock = clock
        is_broken = _sqlite_is_broken if dialect is SQLITE else _postgres_is_broken
        self._pool = _Pool(connect, pool_size, is_broken)
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._errors = _operational_errors()
        self._sql_cache: dict[str, str] = {}

    # ------------------------------------------------------------ plumbing

    def _sql(self, text: str) -> str:
        sql = self._sql_cache.get(text)
        if sql is None:
            sql = self._sql_cache[text] = self.dialect.sql(text)
        return sql

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Any]:
        try:
            with self._pool.connection() as conn:
                if not self._schema_ready:
                    self._create_schema(conn)
                yield conn
        except self._errors as e:
            detail = clean_name(str(e).splitlines()[0] if str(e) else type(e).__name__, 120)
            raise RoomError(f"The room database did not answer ({detail}): try again in a moment; if it "
                            f"keeps failing, check {ENV_URL} or the cache folder's disk.") from e

    def _create_schema(self, conn: Any) -> None:
        with self._schema_lock:
            if self._schema_ready:
                return
            with self._transaction(conn):
                if self.dialect.schema_lock:
                    conn.execute(self.dialect.schema_lock)
                for statement in _SCHEMA:
                    conn.execute(statement.format(autoincrement_key=self.dialect.autoincrement_key))
            self._schema_ready = True

    @contextlib.contextmanager
    def _transaction(self, conn: Any) -> Iterator[None]:
        conn.execute(self.dialect.begin_write)
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        """A connection inside one write transaction (committed on success, rolled back on any error)."""
        with self._conn() as conn, self._transaction(conn):
            yield conn

    def _one(self, conn: Any, sql: str, params: tuple = ()) -> tuple | None:
        return conn.execute(self._sql(sql), params).fetchone()

    def _all(self, conn: Any, sql: str, params: tuple = ()) -> list[tuple]:
        return conn.execute(self._sql(sql), params).fetchall()

    def _run(self, conn: Any, sql: str, params: tuple = ()) -> int:
        return conn.execute(self._sql(sql), params).rowcount

    def _alive_since(self) -> float:
        return self.clock() - ROOM_TTL_SECONDS

    def _locked_room(self, conn: Any, code: str, lock: str) -> Room:
        row = self._one(conn, f"SELECT {_ROOM_COLUMNS} FROM rooms WHERE code = ? AND last_active >= ?{lock}",
                        (code, self._alive_since()))
        if row is None:
            raise _no_room(code)
        return _room(row)

    def _touch(self, conn: Any, code: str, now: float) -> None:
        self._run(conn, "UPDATE rooms SET last_active = ? WHERE code = ? AND last_active < ?",
                  (now, code, now - TOUCH_EVERY_SECONDS))

    def close(self) -> None:
        """Close this store's connections (a later call opens new ones)."""
        self._pool.close()

    def row_counts(self) -> dict[str, int]:
        """How many rows each of the store's tables holds (for tests and the load benchmark)."""
        with self._conn() as conn:
            return {table: int(self._one(conn, f"SELECT COUNT(*) FROM {table}")[0]) for table in TABLES}

    # ------------------------------------------------------------ rooms

    def create_room(self, subject: str, n_choices: int) -> tuple[Room, str]:
        """A new room voting on `subject` with n_choices choices, and the teacher's secret (shown once,
        kept by the teacher's session or link; only its hash is stored)."""
        subject = _subject(subject)
        n_choices = _n_choices(n_choices)
        self.expire()
        secret = codes.new_secret()
        for _ in range(20):
            code = codes.new_code()
            now = self.clock()
            with self._write() as conn:
                inserted = self._run(
                    conn, "INSERT INTO rooms (code, secret_hash, subject, n_choices, state, round, answer, "
                    "answer_note, created, last_active) VALUES (?, ?, ?, ?, 'voting', 1, NULL, '', ?, ?) "
                    "ON CONFLICT (code) DO NOTHING",
                    (code, _hash_secret(secret), subject, n_choices, now, now))
            if inserted == 1:
                return Room(code, subject, n_choices, "voting", 1, None, "", now, now), secret
        raise RoomError("Could not find a free room code: try again in a moment.")

    def room(self, code: str) -> Room:
        """The open room with this code (as typed: case, spaces and dashes do not matter)."""
        code = _code(code)
        with self._conn() as conn:
            return self._locked_room(conn, code, "")

    def expire(self, now: float | None = None) -> int:
        """Delete rooms whose last activity is more than ROOM_TTL_SECONDS before `now` (default: the
        clock), with their participants, votes and shares. Returns how many rooms were deleted."""
        now = self.clock() if now is None else now
        with self._write() as conn:
            return self._run(conn, "DELETE FROM rooms WHERE last_active < ?", (now - ROOM_TTL_SECONDS,))

    # ------------------------------------------------------------ participants

    def join(self, code: str, participant_id: str, nickname: str = "") -> None:
        """Join the room (again: nothing changes, or a new non-empty nickname replaces the old one; an
        empty one keeps it, so a reloaded page that joins again keeps its name)."""
        code, pid = _code(code), _pid(participant_id)
        nickname = clean_name(nickname, NICKNAME_CHARS)
        now = self.clock()
        with self._write() as conn:
            self._locked_room(conn, code, self.dialect.lock_shared)
            known = self._one(conn, "SELECT nickname FROM room_participants WHERE code = ? AND pid = ?"
                              f"{self.dialect.lock_update}", (code, pid))
            if known is not None:
                if nickname and nickname != known[0]:
                    self._run(conn, "UPDATE room_participants SET nickname = ? WHERE code = ? AND pid = ?",
                              (nickname, code, pid))
            else:
                (n,) = self._one(conn, "SELECT COUNT(*) FROM room_participants WHERE code = ?", (code,))
                if n >= MAX_PARTICIPANTS:
                    raise RoomError(f"Room {code} is full ({MAX_PARTICIPANTS} participants): ask your "
                                    "teacher to open a second room.")
                self._run(conn, "INSERT INTO room_participants (code, pid, nickname, joined, window_start, "
                          "writes) VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (code, pid) DO NOTHING",
                          (code, pid, nickname, now, now))
        with self._conn() as conn:
            self._touch(conn, code, now)

    def n_joined(self, code: str) -> int:
        """How many participants have joined the room."""
        code = _code(code)
        with self._conn() as conn:
            row = self._one(conn, "SELECT COUNT(p.pid) FROM rooms r LEFT JOIN room_participants p "
                            "ON p.code = r.code WHERE r.code = ? AND r.last_active >= ? GROUP BY r.code",
                            (code, self._alive_since()))
        if row is None:
            raise _no_room(code)
        return int(row[0])

    def nickname(self, code: str, participant_id: str) -> str | None:
        """The participant's nickname ('' if they gave none), or None if they have not joined."""
        code, pid = _code(code), _pid(participant_id)
        with self._conn() as conn:
            self._locked_room(conn, code, "")
            row = self._one(conn, "SELECT nickname FROM room_participants WHERE code = ? AND pid = ?",
                            (code, pid))
        return None if row is None else row[0]

    def _participant(self, conn: Any, code: str, pid: str) -> tuple[float, int]:
        """The participant's write window (start, writes so far), locked until commit; RoomError if they
        have not joined."""
        row = self._one(conn, "SELECT window_start, writes FROM room_participants WHERE code = ? AND pid = ?"
                        f"{self.dialect.lock_update}", (code, pid))
        if row is None:
            raise _not_joined(code)
        return float(row[0]), int(row[1])

    def _count_write(self, conn: Any, code: str, pid: str, window: tuple[float, int], now: float) -> None:
        """Count one write of this participant against MAX_WRITES_PER_MINUTE (a fixed one-minute window),
        or raise RoomError when the window is full."""
        window_start, writes = window
        if now - window_start >= FLOOD_WINDOW_SECONDS or now < window_start:
            window_start, writes = now, 0
        if writes >= MAX_WRITES_PER_MINUTE:
            wait = max(1, int(window_start + FLOOD_WINDOW_SECONDS - now + 0.999))
            raise RoomError(f"Too many votes from this page ({MAX_WRITES_PER_MINUTE} in a minute): wait "
                            f"{wait} s, then vote once.")
        self._run(conn, "UPDATE room_participants SET window_start = ?, writes = ? WHERE code = ? AND pid = ?",
                  (window_start, writes + 1, code, pid))

    # ------------------------------------------------------------ votes

    def vote(self, code: str, participant_id: str, choice: int) -> None:
        """The participant's vote in the room's current round (replacing their earlier vote in it)."""
        code, pid = _code(code), _pid(participant_id)
        now = self.clock()
        with self._write() as conn:
            room = self._locked_room(conn, code, self.dialect.lock_shared)
            window = self._participant(conn, code, pid)
            if room.state != "voting":
                raise RoomError(f"Voting in room {code} is closed: the teacher has revealed the answer "
                                "(wait for the next question).")
            choice = _index(choice)
            if choice is None or not 0 <= choice < room.n_choices:
                raise RoomError(f"There is no such choice in this question: pick one of the "
                                f"{room.n_choices} choices shown.")
            self._count_write(conn, code, pid, window, now)
            self._run(conn, "INSERT INTO room_votes (code, round, pid, choice, at) VALUES (?, ?, ?, ?, ?) "
                      "ON CONFLICT (code, round, pid) DO UPDATE SET choice = excluded.choice, at = excluded.at",
                      (code, room.round, pid, choice, now))
        with self._conn() as conn:
            self._touch(conn, code, now)

    def counts(self, code: str, round: int) -> list[int]:
        """How many voted for each choice in this round (a list of n_choices numbers)."""
        code = _code(code)
        with self._conn() as conn:
            rows = self._all(conn, "SELECT r.n_choices, v.choice, COUNT(v.pid) FROM rooms r LEFT JOIN "
                             "room_votes v ON v.code = r.code AND v.round = ? WHERE r.code = ? AND "
                             "r.last_active >= ? GROUP BY r.n_choices, v.choice",
                             (int(round), code, self._alive_since()))
        if not rows:
            raise _no_room(code)
        counts = [0] * int(rows[0][0])
        for _, choice, n in rows:
            if choice is not None and 0 <= choice < len(counts):
                counts[int(choice)] = int(n)
        return counts

    def my_vote(self, code: str, participant_id: str, round: int) -> int | None:
        """The participant's vote in this round, or None."""
        code, pid = _code(code), _pid(participant_id)
        with self._conn() as conn:
            self._locked_room(conn, code, "")
            row = self._one(conn, "SELECT choice FROM room_votes WHERE code = ? AND round = ? AND pid = ?",
                            (code, int(round), pid))
        return None if row is None else int(row[0])

    # ------------------------------------------------------------ the teacher

    def is_teacher(self, code: str, secret: str) -> bool:
        """Whether `secret` is this room's teacher secret."""
        code = _code(code)
        with self._conn() as conn:
            row = self._one(conn, "SELECT secret_hash FROM rooms WHERE code = ? AND last_active >= ?",
                            (code, self._alive_since()))
        if row is None:
            raise _no_room(code)
        return _secret_matches(secret, row[0])

    def _teacher_update(self, code: str, secret: str, change: Callable[[Room], tuple[str, tuple] | None],
                        after: Callable[[Any, Room], None] | None = None) -> Room:
        """Lock the room, check the secret, apply change(room) -> (SET clause, its params) or None."""
        code = _code(code)
        now = self.clock()
        with self._write() as conn:
            row = self._one(conn, f"SELECT secret_hash, {_ROOM_COLUMNS} FROM rooms WHERE code = ? AND "
                            f"last_active >= ?{self.dialect.lock_update}", (code, self._alive_since()))
            if row is None:
                raise _no_room(code)
            if not _secret_matches(secret, row[0]):
                raise _not_teacher(code)
            room = _room(row[1:])
            update = change(room)
            set_clause, params = update if update is not None else ("", ())
            if after is not None:
                after(conn, room)
            row = self._one(conn, f"UPDATE rooms SET {set_clause}{', ' if set_clause else ''}last_active = ? "
                            f"WHERE code = ? RETURNING {_ROOM_COLUMNS}", (*params, now, code))
        return _room(row)

    def vote_again(self, code: str, secret: str) -> Room:
        """A second round of the same question (round 1's votes are kept). Pressed again while round 2 is
        open, nothing changes (a double click)."""

        def change(room: Room) -> tuple[str, tuple] | None:
            if room.state != "voting":
                raise RoomError(f"The answer in room {code} is already revealed: press Next lesson for a "
                                "new question.")
            if room.round >= MAX_ROUNDS:
                return None
            return "round = ?", (room.round + 1,)

        return self._teacher_update(code, secret, change)

    def reveal(self, code: str, secret: str, answer: int | None, note: str) -> Room:
        """Close the vote and show the measured answer (None: the measurement supports no choice) and
        what the measurement said. Revealing again replaces both."""

        def change(room: Room) -> tuple[str, tuple]:
            index = _index(answer)
            if answer is not None and (index is None or not 0 <= index < room.n_choices):
                raise RoomError(f"The measured answer {answer!r} is not one of this question's "
                                f"{room.n_choices} choices.")
            return "state = 'revealed', answer = ?, answer_note = ?", (index, str(note)[:MAX_NOTE_CHARS])

        return self._teacher_update(code, secret, change)

    def next_subject(self, code: str, secret: str, subject: str, n_choices: int) -> Room:
        """A new question in the same room: round 1, voting, every vote of the old question deleted
        (participants and shares stay)."""
        subject, n_choices = _subject(subject), _n_choices(n_choices)

        def delete_votes(conn: Any, room: Room) -> None:
            self._run(conn, "DELETE FROM room_votes WHERE code = ?", (room.code,))

        return self._teacher_update(
            code, secret,
            lambda room: ("subject = ?, n_choices = ?, state = 'voting', round = 1, answer = NULL, "
                          "answer_note = ''", (subject, n_choices)),
            after=delete_votes)

    # ------------------------------------------------------------ shared experiments

    def share(self, code: str, participant_id: str, summary: str, query: str) -> None:
        """Share an experiment (its URL query and a one-line summary) with the room; sharing the same query
        again updates its summary. A participant's MAX_SHARES_PER_PARTICIPANT latest shares are kept."""
        code, pid = _code(code), _pid(participant_id)
        summary = clean_name(summary, SUMMARY_CHARS)
        query = clean_name(query)
        if not query:
            raise RoomError("There is no experiment to share yet: set one up on the Experiment page first.")
        if len(query) > MAX_QUERY_CHARS:
            raise RoomError(f"This experiment's link is too long to share ({len(query)} characters, at most "
                            f"{MAX_QUERY_CHARS}): share a simpler experiment.")
        now = self.clock()
        with self._write() as conn:
            self._locked_room(conn, code, self.dialect.lock_shared)
            self._count_write(conn, code, pid, self._participant(conn, code, pid), now)
            self._run(conn, "INSERT INTO room_shares (code, pid, summary, query, at) VALUES (?, ?, ?, ?, ?) "
                      "ON CONFLICT (code, pid, query) DO UPDATE SET summary = excluded.summary, at = excluded.at",
                      (code, pid, summary, query, now))
            self._run(conn, "DELETE FROM room_shares WHERE code = ? AND pid = ? AND id NOT IN (SELECT id FROM "
                      "room_shares WHERE code = ? AND pid = ? ORDER BY at DESC, id DESC LIMIT ?)",
                      (code, pid, code, pid, MAX_SHARES_PER_PARTICIPANT))
        with self._conn() as conn:
            self._touch(conn, code, now)

    def shared(self, code: str) -> list[Shared]:
        """The experiments shared with the room, newest first."""
        code = _code(code)
        with self._conn() as conn:
            self._locked_room(conn, code, "")
            rows = self._all(conn, "SELECT p.nickname, s.summary, s.query, s.at FROM room_shares s JOIN "
                             "room_participants p ON p.code = s.code AND p.pid = s.pid WHERE s.code = ? "
                             "ORDER BY s.at DESC, s.id DESC", (code,))
        return [Shared(nick, summary, query, float(at)) for nick, summary, query, at in rows]


# ---------------------------------------------------------------- input checks


def _code(text: object) -> str:
    code = codes.normalize_code(text)
    if code is None:
        shown = clean_name(text, 20) if isinstance(text, str) else ""
        raise RoomError(f"“{shown}” is not a room code: a room code is the {codes.CODE_LENGTH} letters and "
                        "digits on the teacher's screen, e.g. K7QH2W.")
    return code


def _pid(participant_id: object) -> str:
    if not isinstance(participant_id, str) or not 0 < len(participant_id) <= 100:
        raise RoomError("This page has no participant id: reload it and join the room again.")
    return participant_id


def _subject(subject: object) -> str:
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_CHARS:
        raise RoomError(f"A room needs a lesson or an experiment (at most {MAX_SUBJECT_CHARS} characters) "
                        "to vote on.")
    return subject


def _n_choices(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_CHOICES <= n <= MAX_CHOICES:
        raise RoomError(f"A room's question has {MIN_CHOICES} to {MAX_CHOICES} choices, not {n!r}.")
    return n


def _index(value: object) -> int | None:
    """value as a list index (an int, or a NumPy integer from a chart), or None if it is not one."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def _secret_matches(secret: object, secret_hash: str) -> bool:
    if not isinstance(secret, str) or not secret:
        return False
    return hmac.compare_digest(_hash_secret(secret), secret_hash)


# ---------------------------------------------------------------- opening a store


def default_sqlite_path() -> Path:
    return cache_dir() / SQLITE_FILE


def connect_store(url: str | None = None, *, clock: Callable[[], float] = time.time,
                  pool_size: int = DEFAULT_POOL_SIZE) -> RoomStore:
    """A new store (not shared: tests, benchmarks). url: postgresql://… or postgres://…, sqlite:///<path>,
    else $HEADLAB_DB_URL, else SQLite at cache_dir()/rooms.sqlite3."""
    url = url or os.environ.get(ENV_URL) or ""
    if url.startswith(("postgresql://", "postgres://")):
        return RoomStore(POSTGRES, lambda: _postgres_connect(url), clock=clock, pool_size=pool_size,
                         url=url, description="PostgreSQL")
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
    elif not url:
        path = default_sqlite_path()
    else:
        raise RoomError(f"{ENV_URL} must be a postgresql:// URL (or sqlite:///<file>), not "
                        f"“{clean_name(url.split(':', 1)[0], 20)}:…”: fix it and restart Head Lab.")
    return RoomStore(SQLITE, lambda: _sqlite_connect(path), clock=clock, pool_size=pool_size,
                     url=f"sqlite:///{path}", description=f"SQLite at {path}")


_STORES: dict[str, RoomStore] = {}
_STORES_LOCK = threading.Lock()


def open_store(url: str | None = None) -> RoomStore:
    """The process's store for url (else $HEADLAB_DB_URL, else SQLite in the cache folder): one per
    process per URL, shared by every session's thread."""
    key = url or os.environ.get(ENV_URL) or f"sqlite:///{default_sqlite_path()}"
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = connect_store(key)
        return store
