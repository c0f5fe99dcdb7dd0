"""Opening and closing a WAL-mode SQLite file that several processes share.

Processes that open one file at once (the workers of ``iinode serve --workers
N`` starting together) each switch it to WAL.  SQLite answers the loser's
switch "database is locked" at once, without waiting its busy timeout as it
does for other locks; :func:`switch_to_wal` retries the switch until that
timeout has passed.

SQLite checkpoints and deletes a database's ``-wal`` file when its last
connection closes, but only if that connection can lock the database
exclusively at that moment.  When two processes close at once (the workers of
``iinode serve --workers N`` stopping together), each still sees the other's
shared lock, neither checkpoints, and the WAL stays behind: committed data is
safe in it, but the next start has to recover it.  :func:`closing_in_turn`
makes the processes of one data directory close their connections one after
another, so the last one always finds itself alone.

The turn is an exclusive ``flock`` on the database's directory (no extra file;
``flock`` locks do not interact with the POSIX record locks SQLite uses).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Longest wait for another process's turn; past it the connection closes anyway.
TURN_TIMEOUT = 10.0
_PAUSE = 0.005
_SWITCH_PAUSE = 0.002


def switch_to_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Put ``db``'s file in WAL mode, retrying a switch refused as busy for ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(_SWITCH_PAUSE)


@contextmanager
def closing_in_turn(database: Path, *, timeout: float = TURN_TIMEOUT) -> Iterator[bool]:
    """Hold the turn to close ``database``'s connections; yields whether it was had."""
    try:
        fd = os.open(database.resolve().parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield False  # the directory is gone: there is nothing left to checkpoint into
        return
    try:
        deadline = time.monotonic() + timeout
        held = False
        while not held:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(_PAUSE)
        yield held
    finally:
        os.close(fd)  # drops the lock


__all__ = ["TURN_TIMEOUT", "closing_in_turn", "switch_to_wal"]
