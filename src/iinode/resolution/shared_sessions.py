"""Sessions shared by all native worker processes of a node.

A Handle.Net client sets up a session on one TCP connection and sends each
later request, and its challenge answer, on a new one; with several worker
processes on one port the kernel may hand each to another process.  So a
session (its key, identity, claimed identity, expiry), the session counters
already used in it (the replay guard of Handle.Net-style MACs) and the counter
of MAC'd answers live in ``<data dir>/sessions.sqlite3`` (WAL), read and
written by every worker.

Each process keeps the sessions it has seen in memory and asks the file only
for what may have changed elsewhere: an unknown session id, a session still
unbound (another process may have bound it), and every counter (an
``INSERT`` that fails for one already used, so a request cannot be replayed to
another process).  Session operations are administrative and rare next to
resolutions; the queries are small and run on the event loop.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from iinode.identifiers import IndexedHandle
from iinode.resolution.native_sessions import Session, SessionTable

#: File of the shared table inside the node's data directory.
SESSIONS_FILE = "sessions.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    expires REAL NOT NULL,
    key BLOB NOT NULL,
    identity TEXT,
    claimed TEXT,
    handle_net INTEGER NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS used (
    session INTEGER NOT NULL,
    number INTEGER NOT NULL,
    PRIMARY KEY (session, number)
) WITHOUT ROWID;
"""


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
            db = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def __len__(self) -> int:
        (count,) = self.db.execute("SELECT count(*) FROM sessions").fetchone()
        return int(count)

    def open(
        self,
        identity: IndexedHandle | None,
        now: float,
        timeout: int = 0,
        *,
        key: bytes | None = None,
        claimed: IndexedHandle | None = None,
        handle_net: bool = False,
    ) -> Session:
        db = self.db
        db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
        db.execute("DELETE FROM used WHERE session NOT IN (SELECT id FROM sessions)")
        while True:
            session = super().open(
                identity, now, timeout, key=key, claimed=claimed, handle_net=handle_net
            )
            try:
                db.execute(
                    "INSERT INTO sessions (id, expires, key, identity, claimed, handle_net) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (session.session_id, session.expires, session.key, _text(identity),
                     _text(claimed), int(handle_net)),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                super().close(session.session_id)  # an id another process holds: draw again
                continue
            db.execute(
                "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions "
                "ORDER BY expires DESC LIMIT -1 OFFSET ?)",
                (self.max_sessions,),
            )
            return session

    def get(self, session_id: int, now: float) -> Session | None:
        session = super().get(session_id, now)
        if session is not None and session.identity is not None:
            return session
        row = self.db.execute(
            "SELECT expires, key, identity, claimed, handle_net FROM sessions "
            "WHERE id = ? AND expires > ?",
            (session_id, now),
        ).fetchone()
        if row is None:
            super().close(session_id)
            return None
        expires, key, identity, claimed, handle_net = row
        if session is None:
            session = Session(
                session_id, _identity(identity), bytes(key), float(expires),
                claimed=_identity(claimed), handle_net=bool(handle_net),
            )  # fmt: skip
            self._remember(session)
        elif identity is not None:
            session.identity = _identity(identity)
        return session

    def _remember(self, session: Session) -> None:
        self._sessions[session.session_id] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)

    def close(self, session_id: int) -> bool:
        super().close(session_id)
        deleted = self.db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount
        self.db.execute("DELETE FROM used WHERE session = ?", (session_id,))
        return bool(deleted)

    def first_use(self, session: Session, number: int) -> bool:
        if not session.first_use(number):
            return False
        try:
            self.db.execute(
                "INSERT INTO used (session, number) VALUES (?, ?)", (session.session_id, number)
            )
        except sqlite3.IntegrityError:
            return False  # used through another process
        return True

    def bind(self, session: Session, identity: IndexedHandle) -> bool:
        if not session.authenticate(identity):
            return False
        self.db.execute(
            "UPDATE sessions SET identity = ? WHERE id = ? AND identity IS NULL",
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
        data_dir.mkdir(parents=True, exist_ok=True)
        return SQLiteSessionTable(data_dir / SESSIONS_FILE)
    return SessionTable()


__all__ = ["SESSIONS_FILE", "SQLiteSessionTable", "session_table_for"]
