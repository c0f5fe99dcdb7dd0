"""Open authentication challenges, shared by all server processes of a node.

A Handle.Net client answers a challenge with CHALLENGE_RESPONSE naming the
challenge's session id, often on a new TCP connection, and the kernel may hand
that connection (or a UDP answer) to another worker process.  So what a
challenge must remember (the original request, nonce and request digest: an
opaque ``payload`` here) is kept in a small table every process of the node
reads: ``SQLiteChallengeTable`` in ``<data dir>/challenges.sqlite3`` (WAL, one
short connection per operation, run in a worker thread), or
``MemoryChallengeTable`` for a single process (a memory store).

Each entry is taken at most once (``take`` deletes it: an answer cannot be
replayed), expires after ``ttl`` seconds, and the table is bounded: at most
``max_entries`` open challenges, at most ``max_per_source`` per source address
(oldest dropped first; IPv6 sources count per /64), at most ``max_bytes`` of
payloads in all (oldest dropped first).  Ids are random, positive and below 2**31 (Handle.Net
keeps session ids in a signed 32-bit integer).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import secrets
import sqlite3
import stat
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from iinode.node.ratelimit import source_of
from iinode.storage.wal import switch_to_wal

#: File of the shared table inside the node's data directory.
CHALLENGES_FILE = "challenges.sqlite3"
MAX_ENTRIES = 10_000
MAX_PER_SOURCE = 64
#: Octets of payloads the table holds at most (each is at most 256 KiB plus a little).
MAX_BYTES = 64 * 1024 * 1024
#: Seconds between tries to switch a file another process is switching to WAL.


def new_challenge_id() -> int:
    return secrets.randbelow(2**31 - 1) + 1


def private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) if it is missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def ensure_schema(
    db: sqlite3.Connection, version: int, schema: str, tables: tuple[str, ...]
) -> None:
    """Create ``schema`` (``PRAGMA user_version`` ``version``) in ``db``, dropping
    ``tables`` first when the file holds another version; under the write lock, so
    processes opening the file together neither both create it nor drop each other's."""
    db.execute("BEGIN IMMEDIATE")
    try:
        (found,) = db.execute("PRAGMA user_version").fetchone()
        if found != version:
            for table in tables:
                db.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in schema.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {int(version)}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _private(path: str | Path) -> None:
    """Make ``path`` mode 0600 if it exists (by name: opening and closing a descriptor
    of a database file would drop the SQLite locks this process holds on it)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(os.stat(path).st_mode) != 0o600:
            os.chmod(path, 0o600)


def connect_private(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A WAL connection to ``path``, the file and its ``-wal``/``-shm`` readable by
    the owner only (they may hold session keys or pending requests), whatever the
    process's umask: the file is set to 0600 as soon as SQLite has created it, before
    anything is written (SQLite gives the WAL files the database file's mode; they
    are set too), inside a data directory that ``private_dir`` made 0700.

    Processes opening a new file at once each try to switch it to WAL; SQLite
    answers the loser's switch "database is locked" at once, without waiting
    ``timeout`` as it does for other locks, so the switch is retried until then."""
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA schema_version").fetchone()  # creates the file
        _private(path)
        switch_to_wal(db, timeout)
    except BaseException:
        db.close()
        raise
    for suffix in ("-wal", "-shm"):
        _private(f"{path}{suffix}")
    return db


class ChallengeTable(abc.ABC):
    """Open challenges by id; ``put`` stores, ``take`` removes and returns."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        max_per_source: int = MAX_PER_SOURCE,
        clock: Callable[[], float] = time.time,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.max_entries = max_entries
        self.max_per_source = max_per_source
        self.max_bytes = max_bytes
        self._clock = clock

    @abc.abstractmethod
    async def put(
        self, payload: bytes, ttl: float, *, source: str | None = None, challenge_id: int = 0
    ) -> int:
        """Store ``payload`` for ``ttl`` seconds under ``challenge_id`` (0: a new id)."""

    @abc.abstractmethod
    async def take(self, challenge_id: int) -> bytes | None:
        """The payload of an open, unexpired challenge, removed; ``None`` if there is none."""

    @abc.abstractmethod
    def __len__(self) -> int: ...


class MemoryChallengeTable(ChallengeTable):
    """The table of one process."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        max_per_source: int = MAX_PER_SOURCE,
        clock: Callable[[], float] = time.time,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        super().__init__(
            max_entries=max_entries, max_per_source=max_per_source, clock=clock,
            max_bytes=max_bytes,
        )  # fmt: skip
        self._entries: OrderedDict[int, tuple[float, str, bytes]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: int) -> tuple[float, str, bytes] | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[2])
        return entry

    def _purge(self, now: float, source: str, size: int) -> None:
        entries = self._entries
        for key in [k for k, (expires, _, _) in entries.items() if expires <= now]:
            self._drop(key)
        mine = [k for k, (_, src, _) in entries.items() if src == source]
        for key in mine[: max(0, len(mine) - self.max_per_source + 1)]:
            self._drop(key)
        while entries and (len(entries) >= self.max_entries or self._bytes + size > self.max_bytes):
            self._drop(next(iter(entries)))

    async def put(
        self, payload: bytes, ttl: float, *, source: str | None = None, challenge_id: int = 0
    ) -> int:
        now = self._clock()
        self._drop(challenge_id)  # a given id replaces what it named
        key = source_of(source) if source else ""
        self._purge(now, key, len(payload))
        while not challenge_id or challenge_id in self._entries:
            challenge_id = new_challenge_id()
        self._entries[challenge_id] = (now + ttl, key, payload)
        self._bytes += len(payload)
        return challenge_id

    async def take(self, challenge_id: int) -> bytes | None:
        entry = self._drop(challenge_id)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[2]


#: ``PRAGMA user_version`` of the layout below; a file with another is emptied.
_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS challenges (
    id INTEGER PRIMARY KEY,
    expires REAL NOT NULL,
    source TEXT NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS challenges_source ON challenges (source, expires);
CREATE INDEX IF NOT EXISTS challenges_expires ON challenges (expires);
"""


class SQLiteChallengeTable(ChallengeTable):
    """The table in a SQLite file every process of the node opens."""

    def __init__(
        self,
        path: Path,
        *,
        max_entries: int = MAX_ENTRIES,
        max_per_source: int = MAX_PER_SOURCE,
        clock: Callable[[], float] = time.time,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        super().__init__(
            max_entries=max_entries, max_per_source=max_per_source, clock=clock,
            max_bytes=max_bytes,
        )  # fmt: skip
        self.path = path
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        db = connect_private(self.path)
        if not self._ready:
            # Challenges live a minute: an older layout is simply started afresh (checked
            # inside the write lock: another process may be creating it at this moment).
            ensure_schema(db, _SCHEMA_VERSION, _SCHEMA, ("challenges",))
            self._ready = True
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _put(self, payload: bytes, ttl: float, source: str, challenge_id: int) -> int:
        now = self._clock()
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM challenges WHERE expires <= ?", (now,))
            db.execute(
                "DELETE FROM challenges WHERE id IN (SELECT id FROM challenges WHERE source = ? "
                "ORDER BY expires DESC LIMIT -1 OFFSET ?)",
                (source, self.max_per_source - 1),
            )
            db.execute(
                "DELETE FROM challenges WHERE id IN (SELECT id FROM challenges "
                "ORDER BY expires DESC LIMIT -1 OFFSET ?)",
                (self.max_entries - 1,),
            )
            if challenge_id:
                db.execute("DELETE FROM challenges WHERE id = ?", (challenge_id,))
            (total,) = db.execute("SELECT coalesce(sum(size), 0) FROM challenges").fetchone()
            excess = int(total) + len(payload) - self.max_bytes
            if excess > 0:
                # Oldest first, until the new payload fits.
                for key, size in db.execute(
                    "SELECT id, size FROM challenges ORDER BY expires"
                ).fetchall():
                    db.execute("DELETE FROM challenges WHERE id = ?", (key,))
                    excess -= int(size)
                    if excess <= 0:
                        break
            while True:
                key = challenge_id or new_challenge_id()
                try:
                    db.execute(
                        "INSERT INTO challenges (id, expires, source, size, payload) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (key, now + ttl, source, len(payload), payload),
                    )
                    break
                except sqlite3.IntegrityError:
                    continue  # a random id already taken: draw another
            db.execute("COMMIT")
            return key
        finally:
            db.close()

    def _take(self, challenge_id: int) -> bytes | None:
        db = self._connect()
        try:
            row = db.execute(
                "DELETE FROM challenges WHERE id = ? AND expires > ? RETURNING payload",
                (challenge_id, self._clock()),
            ).fetchone()
        finally:
            db.close()
        return None if row is None else bytes(row[0])

    async def put(
        self, payload: bytes, ttl: float, *, source: str | None = None, challenge_id: int = 0
    ) -> int:
        key = source_of(source) if source else ""
        return await asyncio.to_thread(self._put, payload, ttl, key, challenge_id)

    async def take(self, challenge_id: int) -> bytes | None:
        return await asyncio.to_thread(self._take, challenge_id)

    def __len__(self) -> int:
        db = self._connect()
        try:
            (count,) = db.execute(
                "SELECT count(*) FROM challenges WHERE expires > ?", (self._clock(),)
            ).fetchone()
        finally:
            db.close()
        return int(count)


def challenge_table_for(data_dir: Path | None, *, shared: bool) -> ChallengeTable:
    """The node's table: in ``data_dir`` when its processes share a store, else in memory."""
    if shared and data_dir is not None:
        private_dir(data_dir)
        return SQLiteChallengeTable(data_dir / CHALLENGES_FILE)
    return MemoryChallengeTable()


__all__ = [
    "CHALLENGES_FILE",
    "ChallengeTable",
    "MemoryChallengeTable",
    "SQLiteChallengeTable",
    "challenge_table_for",
    "connect_private",
    "ensure_schema",
    "new_challenge_id",
    "private_dir",
]
