"""Failed-authentication buckets in a SQLite file the node's processes share.

``<data dir>/failures.sqlite3`` (WAL, mode 0600, ``synchronous=NORMAL``): a
table per tier, each bucket one row holding when it is full again
(``ratelimit.Tier``).  Each process keeps one connection, opened on first use
and used from any thread under a lock; the statements are primary-key reads
and a short write transaction, run on the caller's thread (as the shared
session table does).

* A check reads both buckets in one statement: in WAL mode a read takes no
  lock that a writer waits on, and writes nothing.
* A failure is one ``BEGIN IMMEDIATE`` transaction (both buckets charged at
  once, so two processes charging together lose nothing); with
  ``synchronous=NORMAL`` a commit appends to the WAL without an fsync.
* Bounds: a new bucket first drops the tier's expired rows (an index range),
  and when the tier still holds ``max_sources`` rows, those nearest to full.
  An address holds at most ``identities_per_source`` live pair rows.  So an
  attacker rotating addresses or names cannot grow the file without bound.

A file with another layout (``PRAGMA user_version``) is started afresh: the
counts are short-lived.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from iinode.errors import StorageError
from iinode.node.challenges import connect_private, ensure_schema, private_dir
from iinode.node.failure_counts import FailureStore
from iinode.node.ratelimit import FailureLimits
from iinode.storage.wal import closing_in_turn

_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    full_at REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sources_full ON sources (scope, full_at);
CREATE TABLE IF NOT EXISTS pairs (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    full_at REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pairs_source ON pairs (scope, source, full_at);
CREATE INDEX IF NOT EXISTS pairs_full ON pairs (scope, full_at);
CREATE TABLE IF NOT EXISTS sizes (
    scope TEXT NOT NULL,
    tier TEXT NOT NULL,
    rows INTEGER NOT NULL,
    PRIMARY KEY (scope, tier)
) WITHOUT ROWID;
"""
_TABLES = ("sources", "pairs", "sizes")
#: Connections a forked process inherited (see ``SQLiteFailureStore._connection``).
_INHERITED: list[sqlite3.Connection] = []


def pair_key(pair: tuple[str, str]) -> str:
    """The stored key of an (address, identity) pair (unambiguous whatever they hold)."""
    return json.dumps(pair, ensure_ascii=False)


class SQLiteFailureStore(FailureStore):
    """Buckets in ``path``, shared by every process that opens it."""

    def __init__(self, path: Path, *, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        #: The process that opened ``_db`` (a forked child opens its own).
        self._pid = 0

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                if self._db is not None and self._pid != os.getpid():
                    # The parent's connection: never used here, nor closed (closing it
                    # could touch the parent's locks), so kept for the process's life.
                    _INHERITED.append(self._db)
                    self._db = None
                if self._db is None:
                    private_dir(self.path.parent)
                    db = connect_private(self.path, timeout=self.timeout)
                    try:
                        db.execute("PRAGMA synchronous=NORMAL")
                        ensure_schema(db, _SCHEMA_VERSION, _SCHEMA, _TABLES)
                    except BaseException:
                        db.close()
                        raise
                    self._db, self._pid = db, os.getpid()
                yield self._db
            except (sqlite3.Error, OSError) as exc:
                raise StorageError(f"failure counts in {self.path}: {exc}") from exc

    async def full_times(
        self, scope: str, source: str, pair: tuple[str, str]
    ) -> tuple[float | None, float | None]:
        with self._connection() as db:
            row = db.execute(
                "SELECT (SELECT full_at FROM sources WHERE scope = ?1 AND key = ?2), "
                "(SELECT full_at FROM pairs WHERE scope = ?1 AND key = ?3)",
                (scope, source, pair_key(pair)),
            ).fetchone()
        return row[0], row[1]

    async def charge(
        self, scope: str, limits: FailureLimits, source: str, pair: tuple[str, str], now: float
    ) -> None:
        key = pair_key(pair)
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._charge(db, scope, limits, source, key, now)
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @staticmethod
    def _charge(
        db: sqlite3.Connection, scope: str, limits: FailureLimits, source: str, key: str,
        now: float,
    ) -> None:  # fmt: skip
        found = db.execute(
            "SELECT full_at FROM sources WHERE scope = ? AND key = ?", (scope, source)
        ).fetchone()
        if found is None:
            _make_room(db, "sources", scope, now, limits.max_sources)
        db.execute(
            "INSERT INTO sources (scope, key, full_at) VALUES (?, ?, ?) "
            "ON CONFLICT (scope, key) DO UPDATE SET full_at = excluded.full_at",
            (scope, source, limits.source_tier.charged(None if found is None else found[0], now)),
        )
        found = db.execute(
            "SELECT full_at FROM pairs WHERE scope = ? AND key = ?", (scope, key)
        ).fetchone()
        live = found is not None and found[0] > now
        if not live:
            (held,) = db.execute(
                "SELECT count(*) FROM pairs WHERE scope = ? AND source = ? AND full_at > ?",
                (scope, source, now),
            ).fetchone()
            if held >= limits.identities_per_source:
                return  # counted per source only: rotation cannot grow the pair table
            if found is None:
                _make_room(db, "pairs", scope, now, limits.max_sources)
        db.execute(
            "INSERT INTO pairs (scope, key, source, full_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (scope, key) DO UPDATE SET full_at = excluded.full_at",
            (scope, key, source, limits.pair_tier.charged(found[0] if live else None, now)),
        )

    async def held(self, scope: str, now: float) -> tuple[int, int]:
        with self._connection() as db:
            counts = [
                db.execute(f"SELECT count(*) FROM {table} WHERE scope = ?", (scope,)).fetchone()[0]
                for table in ("sources", "pairs")
            ]
        return int(counts[0]), int(counts[1])

    def close(self) -> None:
        """Close this process's connection, in turn with the node's other processes
        (``storage.wal``: the last one removes the WAL)."""
        with self._lock:
            db, self._db = self._db, None
            if db is not None and self._pid == os.getpid():
                with closing_in_turn(self.path):
                    db.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


def _make_room(db: sqlite3.Connection, table: str, scope: str, now: float, bound: int) -> None:
    """Make room for one more row of ``scope`` in ``table`` (which the caller then
    inserts): expired rows go first, then the rows nearest to full.  The rows are
    counted in ``sizes`` (a ``count(*)`` per new bucket would cost a scan)."""
    found = db.execute(
        "SELECT rows FROM sizes WHERE scope = ? AND tier = ?", (scope, table)
    ).fetchone()
    rows = 0 if found is None else int(found[0])
    expired = db.execute(f"DELETE FROM {table} WHERE scope = ? AND full_at <= ?", (scope, now))
    rows -= max(0, expired.rowcount)
    excess = rows - bound + 1
    if excess > 0:
        dropped = db.execute(
            f"DELETE FROM {table} WHERE scope = ? AND key IN "
            f"(SELECT key FROM {table} WHERE scope = ? ORDER BY full_at LIMIT ?)",
            (scope, scope, excess),
        )
        rows -= max(0, dropped.rowcount)
    db.execute(
        "INSERT INTO sizes (scope, tier, rows) VALUES (?, ?, ?) "
        "ON CONFLICT (scope, tier) DO UPDATE SET rows = excluded.rows",
        (scope, table, max(0, rows) + 1),
    )


__all__ = ["SQLiteFailureStore", "pair_key"]
