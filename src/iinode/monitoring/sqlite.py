"""One SQLite connection shared by the event loop and worker threads, safely.

The monitoring stores (``EventStore``, ``Outbox``, ``NoticeBoard``) each keep
one connection in autocommit mode (``isolation_level=None``) that is used from
the event loop and from worker threads (reports are stored in threads).  A
connection has one transaction state: a statement from a second thread while
the first is inside ``BEGIN IMMEDIATE`` runs inside that transaction, and a
second ``BEGIN`` fails with "cannot start a transaction within a transaction".
``SqliteFile`` serialises every use of the connection behind one re-entrant
lock:

* ``rows``/``row``/``run``: one statement under the lock (autocommit);
* ``transaction()``: the lock held from ``BEGIN IMMEDIATE`` to ``COMMIT`` (or
  ``ROLLBACK`` on any error), handing out the raw connection for the block; a
  transaction opened inside another on the same thread becomes a savepoint;
  ``durable=False`` commits without its own fsync (``synchronous=NORMAL`` for
  that one transaction, set and restored under the lock, so no other
  transaction ever runs with it);
* ``lock``: held by callers that keep counters beside the rows, so a count and
  the rows it counts change together.

Errors of the ``sqlite3`` module that escape are converted to the project's
``StorageError`` (the store failed, not the caller's input); inside a
transaction block the raw errors can still be caught where one is expected
(an ``IntegrityError`` that means "already stored").  Several processes may
open one file: WAL mode, and waits of up to ``busy_timeout`` seconds for
another process's write lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from iinode.errors import StorageError
from iinode.storage.wal import closing_in_turn, switch_to_wal

_SYNC = ("OFF", "NORMAL", "FULL", "EXTRA")


class SqliteFile:
    """A locked autocommit connection to one SQLite file (see the module docstring)."""

    def __init__(
        self,
        path: Path | str,
        *,
        schema: str = "",
        synchronous: str = "FULL",
        busy_timeout: float = 10.0,
        pragmas: Sequence[str] = (),
    ) -> None:
        if synchronous not in _SYNC:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNC)}")
        self.path = None if str(path) == ":memory:" else Path(path).resolve()
        self.synchronous = synchronous
        self.lock = threading.RLock()
        self._depth = 0
        try:
            self._db = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=busy_timeout
            )
            switch_to_wal(self._db, busy_timeout)
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            for pragma in pragmas:
                self._db.execute(f"PRAGMA {pragma}")
            if schema:
                self._db.executescript(schema)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {path}: {exc}") from exc

    def _where(self) -> str:
        return ":memory:" if self.path is None else str(self.path)

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """All rows of one statement."""
        with self.lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"{self._where()}: {exc}") from exc

    def row(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first row of one statement, or ``None``."""
        with self.lock:
            try:
                return self._db.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"{self._where()}: {exc}") from exc

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """One writing statement, committed on its own; returns its row count."""
        with self.lock:
            try:
                return int(self._db.execute(sql, args).rowcount)
            except sqlite3.Error as exc:
                raise StorageError(f"{self._where()}: {exc}") from exc

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` under the lock; ``ROLLBACK`` on any error.

        Nested on the same thread it is a savepoint of the outer transaction
        (``durable`` is then the outer one's).
        """
        with self.lock:
            db = self._db
            if self._depth:
                name = f"nested{self._depth}"
                self._depth += 1
                try:
                    db.execute(f"SAVEPOINT {name}")
                    try:
                        yield db
                    except BaseException:
                        db.execute(f"ROLLBACK TO {name}")
                        raise
                    finally:
                        db.execute(f"RELEASE {name}")
                finally:
                    self._depth -= 1
                return
            relaxed = not durable and self.synchronous != "NORMAL"
            try:
                if relaxed:
                    db.execute("PRAGMA synchronous=NORMAL")
                try:
                    db.execute("BEGIN IMMEDIATE")
                    self._depth = 1
                    try:
                        yield db
                        db.execute("COMMIT")
                    except BaseException:
                        if db.in_transaction:
                            db.execute("ROLLBACK")
                        raise
                    finally:
                        self._depth = 0
                finally:
                    if relaxed:
                        db.execute(f"PRAGMA synchronous={self.synchronous}")
            except sqlite3.Error as exc:
                raise StorageError(f"{self._where()}: {exc}") from exc

    def close(self) -> None:
        with self.lock:
            if self.path is None:
                self._db.close()
                return
            with closing_in_turn(self.path):
                self._db.close()


__all__ = ["SqliteFile"]
