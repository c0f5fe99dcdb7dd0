"""SQLite store: the embedded default (WAL journal, durable commits).

Point reads and writes are sub-millisecond indexed operations, so they run
directly on the event loop thread; bulk loads run in one transaction with
``executemany``.  Several processes may open the same file (WAL allows
concurrent readers, and ``BEGIN IMMEDIATE`` serialises writers).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from iinode.errors import StorageError
from iinode.storage.base import BulkResult, HandlePage, Mutation

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handles (
    handle TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    data   BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS handles_by_prefix ON handles (prefix, handle);
"""

#: Handles per ``IN (...)`` query of ``get_many`` (below SQLite's bound-parameter limit).
_BATCH = 500


class SQLiteStore:
    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StorageError(f"unknown SQLite synchronous mode {synchronous!r}")
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite store {self.path}: {exc}") from exc

    async def get(self, handle: str) -> bytes | None:
        return self.get_sync(handle)

    def get_sync(self, handle: str) -> bytes | None:
        row = self._db.execute("SELECT data FROM handles WHERE handle = ?", (handle,)).fetchone()
        return None if row is None else bytes(row[0])

    async def get_many(self, handles: Sequence[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for start in range(0, len(handles), _BATCH):
            chunk = handles[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT handle, data FROM handles WHERE handle IN ({marks})", tuple(chunk)
            )
            out.update((h, bytes(d)) for h, d in rows)
        return out

    async def modify(self, handle: str, mutation: Mutation) -> bytes | None:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot begin a write: {exc}") from exc
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
            db.execute("ROLLBACK")
            raise
        return new

    async def bulk_put(
        self, rows: Iterable[tuple[str, str, bytes]], *, overwrite: bool = False
    ) -> BulkResult:
        verb = "INSERT OR REPLACE" if overwrite else "INSERT OR IGNORE"
        db = self._db
        batch = list(rows)
        db.execute("BEGIN IMMEDIATE")
        try:
            before = db.total_changes
            db.executemany(f"{verb} INTO handles (handle, prefix, data) VALUES (?, ?, ?)", batch)
            written = db.total_changes - before
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return BulkResult(written, len(batch) - written)

    async def list_handles(
        self, prefix: str, *, page: int = 0, page_size: int = 1000
    ) -> HandlePage:
        total = self._db.execute("SELECT count(*) FROM handles WHERE prefix = ?", (prefix,))
        rows = self._db.execute(
            "SELECT handle FROM handles WHERE prefix = ? ORDER BY handle LIMIT ? OFFSET ?",
            (prefix, page_size, page * page_size),
        )
        return HandlePage([r[0] for r in rows], int(total.fetchone()[0]))

    async def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM handles").fetchone()[0])

    async def close(self) -> None:
        self._db.close()
