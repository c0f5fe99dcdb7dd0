"""SQLite store: the embedded default (WAL journal, durable commits).

Nothing here waits for a lock on the event loop:

* Point reads (``get``) run inline: in WAL mode a reader never waits for a
  writer, so they are sub-millisecond indexed lookups.  In the rare case SQLite
  answers BUSY (recovery of a WAL left by a crashed process) the read yields to
  the loop and retries, for up to ``busy_timeout`` seconds in all.
* Writes (``modify``, ``bulk_put``) run in one dedicated writer thread with its
  own connection: waiting there for another process's transaction (a bulk load
  holds the write lock for seconds) leaves the loop serving.
* Reads that scan (``get_many``, ``list_handles``, ``list_after``, ``count``, ``search``) run
  in one reader thread with its own connection.
* The search index (``handle_terms``, see ``storage.sqlite_terms``) is kept by TEMP
  triggers of the writer connection (calling its ``iinode_terms`` function), in each
  write's transaction; a program writing the file by other means leaves the index behind.

Several processes may open the same file (WAL allows concurrent readers, and
``BEGIN IMMEDIATE`` serialises writers).  A ``modify`` mutation runs in the
writer thread, inside the transaction; it must not touch the event loop.
Every ``sqlite3`` error leaves as ``StorageError``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from iinode.errors import StorageError
from iinode.storage.base import BulkResult, HandlePage, Mutation, check_limit, page_total
from iinode.storage.search import BulkTerms, SearchQuery, UniqueValueTaken, search_sql
from iinode.storage.sqlite_batch import insert_handles
from iinode.storage.sqlite_terms import bulk_with_terms, open_terms, rollback
from iinode.storage.wal import closing_in_turn, switch_to_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handles (
    handle TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    data   BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS handles_by_prefix ON handles (prefix, handle);
"""

#: How many rows of a search term are read, at most, to pick the sparsest one to drive.
_SPAN_ROWS = 2000
#: How many of a term's first rows (after the cursor) there are, up to ``_SPAN_ROWS``,
#: and the last handle among them.
_TERM_SPAN = (
    "SELECT count(*), max(handle) FROM (SELECT handle FROM handle_terms"
    " WHERE field = ? AND value = ? AND handle > ? ORDER BY handle LIMIT ?)"
)
#: Handles per ``IN (...)`` query of ``get_many`` (below SQLite's bound-parameter limit).
_BATCH = 500
#: First pause of a point read that found the database busy (doubles up to 50 ms).
_BUSY_PAUSE = 0.001

T = TypeVar("T")


def _sparsest_first(db: sqlite3.Connection, query: SearchQuery) -> tuple[tuple[str, str], ...]:
    """The query's terms, the one with the fewest handles ahead of the cursor first: it
    drives the scan in handle order and the others are probes, so it decides how many
    rows a page reads.  SQLite keeps no statistics of values, so each term's first
    ``_SPAN_ROWS`` rows after the cursor are read: a term with fewer rows is rarer the
    fewer it has; among terms with as many, the one whose last row lies furthest along
    the handles is the sparsest."""
    after = query.after or ""
    few: list[tuple[int, tuple[str, str]]] = []
    many: list[tuple[str, tuple[str, str]]] = []
    for term in query.terms:
        count, last = db.execute(_TERM_SPAN, (*term, after, _SPAN_ROWS)).fetchone()
        if count < _SPAN_ROWS:
            few.append((count, term))
        else:
            many.append((last, term))
    few.sort()
    many.sort(reverse=True)
    return (*(t for _, t in few), *(t for _, t in many))


class SQLiteStore:
    def __init__(
        self, path: str | Path, *, synchronous: str = "FULL", busy_timeout: float = 30.0
    ) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StorageError(f"unknown SQLite synchronous mode {synchronous!r}")
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            writer = self._connect(synchronous, busy_timeout)
            switch_to_wal(writer, busy_timeout)
            writer.executescript(_SCHEMA)
            open_terms(writer)
            self._writer = writer
            # The loop's connection never waits for a lock: BUSY is retried by yielding.
            self._db = self._connect(synchronous, 0.0)
            self._scanner = self._connect(synchronous, busy_timeout)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open SQLite store {self.path}: {exc}") from exc
        self._closed = False
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="iinode-sqlite-write")
        self._scan_thread = ThreadPoolExecutor(1, thread_name_prefix="iinode-sqlite-scan")

    def _connect(self, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
        # Each connection is used by one thread at a time (the loop's, or one executor's).
        db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
        )
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        return db

    async def _in(self, thread: ThreadPoolExecutor, call: Callable[[], T], what: str) -> T:
        if self._closed:
            raise StorageError(f"the SQLite store {self.path} is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(thread, call)
        except sqlite3.IntegrityError as exc:
            if "handle_terms" in str(exc):
                raise UniqueValueTaken(
                    "a unique attribute value is already held by another identifier under "
                    "this prefix"
                ) from exc
            raise StorageError(f"SQLite {what} failed: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite {what} failed: {exc}") from exc

    # -- point reads, inline ---------------------------------------------------------
    async def get(self, handle: str) -> bytes | None:
        pause = _BUSY_PAUSE
        waited = 0.0
        while True:
            try:
                return self.get_sync(handle)
            except sqlite3.OperationalError as exc:
                primary = exc.sqlite_errorcode & 0xFF  # BUSY_RECOVERY, BUSY_SNAPSHOT… are BUSY
                busy = primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not busy or waited >= self.busy_timeout:
                    raise StorageError(f"SQLite read of {handle!r} failed: {exc}") from exc
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite read of {handle!r} failed: {exc}") from exc
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 0.05)

    def get_sync(self, handle: str) -> bytes | None:
        row = self._db.execute("SELECT data FROM handles WHERE handle = ?", (handle,)).fetchone()
        return None if row is None else bytes(row[0])

    # -- scans, in the reader thread -------------------------------------------------------
    async def get_many(self, handles: Sequence[str]) -> dict[str, bytes]:
        wanted = list(handles)

        def read() -> dict[str, bytes]:
            out: dict[str, bytes] = {}
            for start in range(0, len(wanted), _BATCH):
                chunk = wanted[start : start + _BATCH]
                marks = ",".join("?" * len(chunk))
                rows = self._scanner.execute(
                    f"SELECT handle, data FROM handles WHERE handle IN ({marks})", tuple(chunk)
                )
                out.update((h, bytes(d)) for h, d in rows)
            return out

        return await self._in(self._scan_thread, read, "batched read")

    async def list_handles(
        self, prefix: str, *, page: int = 0, page_size: int = 1000
    ) -> HandlePage:
        def read() -> HandlePage:
            db = self._scanner
            rows = db.execute(
                "SELECT handle FROM handles WHERE prefix = ? ORDER BY handle LIMIT ? OFFSET ?",
                (prefix, page_size, page * page_size),
            )
            names = [r[0] for r in rows]
            total = page_total(page, page_size, len(names))
            if total is None:
                counted = db.execute("SELECT count(*) FROM handles WHERE prefix = ?", (prefix,))
                total = int(counted.fetchone()[0])
            return HandlePage(names, total)

        return await self._in(self._scan_thread, read, "listing")

    async def list_after(
        self, prefix: str, after: str | None = None, *, limit: int = 1000
    ) -> list[str]:
        check_limit(limit)
        if after is None:
            query = "SELECT handle FROM handles WHERE prefix = ? ORDER BY handle LIMIT ?"
            args: tuple[str | int, ...] = (prefix, limit)
        else:
            query = (
                "SELECT handle FROM handles WHERE prefix = ? AND handle > ? ORDER BY handle LIMIT ?"
            )
            args = (prefix, after, limit)

        def read() -> list[str]:
            return [r[0] for r in self._scanner.execute(query, args)]

        return await self._in(self._scan_thread, read, "listing")

    async def count(self) -> int:
        def read() -> int:
            return int(self._scanner.execute("SELECT count(*) FROM handles").fetchone()[0])

        return await self._in(self._scan_thread, read, "count")

    async def search(self, query: SearchQuery) -> list[str]:
        """Handles matching ``query`` (``storage.search``), from the term index."""
        if not query.terms:
            assert query.prefix is not None  # a query has terms or a prefix
            return await self.list_after(query.prefix, query.after, limit=query.limit)

        def read() -> list[str]:
            db = self._scanner
            ordered = query
            if len(query.terms) > 1:
                ordered = replace(query, terms=_sparsest_first(db, query))
            sql, args = search_sql(ordered, "handle_terms", "?")
            return [r[0] for r in db.execute(sql, args)]

        return await self._in(self._scan_thread, read, "search")

    # -- writes, in the writer thread ---------------------------------------------------------
    async def modify(self, handle: str, mutation: Mutation) -> bytes | None:
        def write() -> bytes | None:
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT data FROM handles WHERE handle = ?", (handle,)).fetchone()
                new = mutation(None if row is None else bytes(row[0]))
                if new is None:
                    db.execute("DELETE FROM handles WHERE handle = ?", (handle,))
                else:
                    db.execute(
                        "INSERT INTO handles (handle, prefix, data) VALUES (?, ?, ?) "
                        "ON CONFLICT (handle) DO UPDATE SET data = excluded.data",
                        (handle, handle.partition("/")[0], new),
                    )
                db.execute("COMMIT")
            except BaseException:
                rollback(db)
                raise
            return new

        return await self._in(self._write_thread, write, f"write of {handle!r}")

    async def bulk_put(
        self,
        rows: Iterable[tuple[str, str, bytes]],
        *,
        overwrite: bool = False,
        terms: BulkTerms | None = None,
    ) -> BulkResult:
        verb = "INSERT OR REPLACE" if overwrite else "INSERT OR IGNORE"
        batch = list(rows)
        if terms is not None and len({r[0] for r in batch}) != len(batch):
            terms = None  # a handle given twice: the triggers know which row won

        def write() -> BulkResult:
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                if terms is None:
                    # rowcount counts the statement's own rows, not the index triggers' ones.
                    written = insert_handles(db, verb, batch)
                else:
                    written = bulk_with_terms(db, verb, batch, terms, overwrite)
                db.execute("COMMIT")
            except BaseException:
                rollback(db)
                raise
            return BulkResult(written, len(batch) - written)

        return await self._in(self._write_thread, write, "bulk load")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        for thread, db in ((self._write_thread, self._writer), (self._scan_thread, self._scanner)):
            await loop.run_in_executor(thread, db.close)
            thread.shutdown(wait=False)
        # The loop's connection closes last, in this process's turn (see storage.wal).
        await asyncio.to_thread(self._close_in_turn)

    def _close_in_turn(self) -> None:
        with closing_in_turn(self.path):
            self._db.close()
