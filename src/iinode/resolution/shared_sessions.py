"""Sessions shared by all native worker processes of a node.

A Handle.Net client sets up a session on one TCP connection and sends each
later request, and its challenge answer, on a new one; with several worker
processes on one port the kernel may hand each to another process.  So a
session (its key, identity, claimed identity, expiry, source address), the
replay state of its Handle.Net-style MACs and the counter of MAC'd answers live
in ``<data dir>/sessions.sqlite3`` (WAL, mode 0600: it holds session keys), read
and written by every worker.

Every ``get`` reads the session's row (a primary-key lookup), so a session
ended or evicted in one process ends in all.  Ended bound sessions stay as a
closed row (with their used counters) until they would have expired.

Replay guard: per session a sliding window in the table, as in
``Session.first_use``: the highest counter accepted and the counters used
within ``REPLAY_WINDOW`` below it (older rows are deleted as the window moves;
anything at or below the low-water mark is refused).  Counters are recorded
only for bound sessions; in an unbound session (anyone may set one up) counters
must strictly increase and only the highest is kept, and binding it refuses
every counter up to that one, so a request sent before the binding cannot be
replayed after it, and nobody without credentials can grow the table beyond
one row per session.

The table is bounded: ``max_sessions`` sessions, unbound ones (and closed rows)
evicted before any bound one, at most ``max_unbound_per_source`` unbound ones
per source address: ``SessionTable``'s ``open`` and eviction policy, run over
this table's statements.  Each operation is a few indexed statements (no scans
but the row count when opening), short enough for the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from iinode.identifiers import IndexedHandle
from iinode.node.challenges import connect_private, ensure_schema, private_dir
from iinode.resolution.native_sessions import REPLAY_WINDOW, Evictable, Session, SessionTable

#: File of the shared table inside the node's data directory.
SESSIONS_FILE = "sessions.sqlite3"
#: ``PRAGMA user_version`` of the layout below; a file with another is emptied.
_SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    expires REAL NOT NULL,
    key BLOB NOT NULL,
    identity TEXT,
    claimed TEXT,
    handle_net INTEGER NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT '',
    highest INTEGER NOT NULL DEFAULT 0,
    floor INTEGER NOT NULL DEFAULT 0,
    closed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires);
CREATE INDEX IF NOT EXISTS sessions_closed ON sessions (expires) WHERE closed;
CREATE INDEX IF NOT EXISTS sessions_unbound ON sessions (expires)
    WHERE identity IS NULL AND NOT closed;
CREATE INDEX IF NOT EXISTS sessions_unbound_source ON sessions (source, expires)
    WHERE identity IS NULL AND NOT closed;
CREATE TABLE IF NOT EXISTS used (
    session INTEGER NOT NULL,
    number INTEGER NOT NULL,
    PRIMARY KEY (session, number)
) WITHOUT ROWID;
"""


#: Each kind of row ``SessionTable._evict`` takes, as a condition on ``sessions``.
_KINDS = {
    Evictable.CLOSED: "closed",
    Evictable.UNBOUND: "identity IS NULL AND NOT closed",
    Evictable.ANY: "1",
}


def _text(identity: IndexedHandle | None) -> str | None:
    return None if identity is None else str(identity)


def _identity(text: str | None) -> IndexedHandle | None:
    return None if text is None else IndexedHandle.parse(text)


class SQLiteSessionTable(SessionTable):
    """A ``SessionTable`` whose sessions every process of the node sees."""

    def __init__(self, path: Path, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.path = path
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            db = connect_private(self.path)
            db.execute("PRAGMA synchronous=NORMAL")
            # Sessions are short-lived: an older layout is simply started afresh.
            ensure_schema(db, _SCHEMA_VERSION, _SCHEMA, ("sessions", "used"))
            self._db = db
        return self._db

    def shutdown(self) -> None:
        """Close the file (a later use opens it again)."""
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def __len__(self) -> int:
        (count,) = self.db.execute("SELECT count(*) FROM sessions WHERE NOT closed").fetchone()
        return int(count)

    # -- storage steps of ``SessionTable.open`` and its eviction policy -------------
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _drop_expired(self, now: float) -> None:
        db = self.db
        db.execute(
            "DELETE FROM used WHERE session IN (SELECT id FROM sessions WHERE expires <= ?)",
            (now,),
        )
        db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))

    def _store(self, session: Session) -> bool:
        try:
            self.db.execute(
                "INSERT INTO sessions (id, expires, key, identity, claimed, handle_net, "
                "source) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session.session_id, session.expires, session.key, _text(session.identity),
                 _text(session.claimed), int(session.handle_net), session.source),
            )  # fmt: skip
        except sqlite3.IntegrityError:
            return False  # an id another process holds
        self._remember(session)
        return True

    def _unbound_of(self, source: str) -> list[int]:
        rows = self.db.execute(
            f"SELECT id FROM sessions WHERE {_KINDS[Evictable.UNBOUND]} AND source = ? "
            "ORDER BY expires",
            (source,),
        )
        return [row[0] for row in rows]

    def _earliest(self, kind: Evictable, limit: int) -> list[int]:
        rows = self.db.execute(
            f"SELECT id FROM sessions WHERE {_KINDS[kind]} ORDER BY expires LIMIT ?", (limit,)
        )
        return [row[0] for row in rows]

    def _count(self) -> int:
        """Every row, closed ones included."""
        (count,) = self.db.execute("SELECT count(*) FROM sessions").fetchone()
        return int(count)

    def _delete(self, session_ids: Iterable[int]) -> None:
        db = self.db
        for session_id in session_ids:
            db.execute("DELETE FROM used WHERE session = ?", (session_id,))
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def get(self, session_id: int, now: float) -> Session | None:
        row = self.db.execute(
            "SELECT expires, key, identity, claimed, handle_net, source FROM sessions "
            "WHERE id = ? AND expires > ? AND NOT closed",
            (session_id, now),
        ).fetchone()
        session = self._sessions.get(session_id)
        if row is None:
            if session is not None:
                self._forget(session_id)
            return None
        expires, key, identity, claimed, handle_net, source = row
        if session is None:
            session = Session(
                session_id, _identity(identity), bytes(key), float(expires),
                claimed=_identity(claimed), handle_net=bool(handle_net), source=source,
            )  # fmt: skip
            self._remember(session)
        elif identity is not None and session.identity is None:
            session.identity = _identity(identity)
        return session

    def _remember(self, session: Session) -> None:
        # Only a cache of the file here: bounded, oldest forgotten first.
        self._sessions[session.session_id] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)

    def close(self, session_id: int) -> bool:
        self._forget(session_id)
        db = self.db
        row = db.execute(
            "SELECT identity FROM sessions WHERE id = ? AND NOT closed", (session_id,)
        ).fetchone()
        if row is None:
            return False
        if row[0] is None:
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        else:
            # Kept, with its used counters, until it would have expired.
            db.execute("UPDATE sessions SET closed = 1 WHERE id = ?", (session_id,))
        return True

    def first_use(self, session: Session, number: int) -> bool:
        if not session.first_use(number):
            return False
        db = self.db
        if session.identity is None:
            # Unbound: strictly increasing, only the highest kept (binding refuses every
            # counter up to it).
            moved = db.execute(
                "UPDATE sessions SET highest = ? WHERE id = ? AND highest < ? "
                "AND identity IS NULL AND NOT closed",
                (number, session.session_id, number),
            ).rowcount
            return bool(moved)
        db.execute("BEGIN IMMEDIATE")
        try:
            accepted = self._record(session.session_id, number)
        finally:
            db.execute("COMMIT")
        return accepted

    def _record(self, session_id: int, number: int) -> bool:
        db = self.db
        row = db.execute(
            "SELECT highest, floor FROM sessions WHERE id = ? AND NOT closed", (session_id,)
        ).fetchone()
        if row is None:
            return False
        highest, floor = int(row[0]), int(row[1])
        if number <= floor or number <= highest - REPLAY_WINDOW:
            return False
        try:
            db.execute("INSERT INTO used (session, number) VALUES (?, ?)", (session_id, number))
        except sqlite3.IntegrityError:
            return False  # used through another process
        if number > highest:
            db.execute("UPDATE sessions SET highest = ? WHERE id = ?", (number, session_id))
            db.execute(
                "DELETE FROM used WHERE session = ? AND number <= ?",
                (session_id, number - REPLAY_WINDOW),
            )
        return True

    def bind(self, session: Session, identity: IndexedHandle) -> bool:
        if not super().bind(session, identity):
            return False
        self.db.execute(
            "UPDATE sessions SET identity = ?, floor = max(floor, highest) "
            "WHERE id = ? AND identity IS NULL",
            (str(identity), session.session_id),
        )
        return True

    def next_counter(self, session: Session) -> int:
        row = self.db.execute(
            "UPDATE sessions SET sent = sent + 1 WHERE id = ? RETURNING sent",
            (session.session_id,),
        ).fetchone()
        if row is None:
            return session.next_counter()
        session.sent = int(row[0])
        return session.sent


def session_table_for(data_dir: Path | None, *, shared: bool) -> SessionTable:
    """The node's sessions: in ``data_dir`` when its processes share a store, else in memory."""
    if shared and data_dir is not None:
        private_dir(data_dir)
        return SQLiteSessionTable(data_dir / SESSIONS_FILE)
    return SessionTable()


__all__ = ["SESSIONS_FILE", "SQLiteSessionTable", "session_table_for"]
