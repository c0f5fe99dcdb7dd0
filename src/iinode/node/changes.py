"""A change counter shared by every process serving one data directory.

Front ends keep in-process caches of rendered answers (the REST worker
processes, the native-protocol workers).  A cache entry is valid only while
the counter still has the value it had when the entry was filled; every
committed write bumps the counter, so a write made by any process empties the
caches of all of them on their next read.

The counter is eight bytes (unsigned, little-endian) at the start of a file,
normally ``<data-dir>/changes.counter``, mapped into memory by every process:

* :meth:`ChangeCounter.value` reads the mapped bytes; it makes no system call,
  so it is cheap enough to call on every request.
* :meth:`ChangeCounter.bump` takes an exclusive ``flock`` on the file (plus a
  thread lock, because ``flock`` does not exclude threads sharing one open
  file), reads, adds one and writes back.  Bumps from different processes are
  therefore serialised and none is lost.

A reader does not lock.  On the 64-bit machines iinode runs on an aligned
eight-byte copy is a single load, so a reader sees either the old or the new
value; even a torn read only yields a value different from the current one,
which costs a needless cache refill, never a stale answer (the counter would
have to wrap through 2**32 writes between two reads to repeat a value).

Order matters for coherence: a reader must take :meth:`value` *before* it
reads the store, and a writer must :meth:`bump` *after* its write commits.  An
entry filled from a read that raced a write is then filed under the old value
and dropped as soon as the bump is visible.

``ChangeCounter()`` without a path is process-local (an anonymous mapping),
for tests and single-process use.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from pathlib import Path

__all__ = ["COUNTER_FILE", "ChangeCounter"]

#: The counter's file name inside a data directory.
COUNTER_FILE = "changes.counter"

_U64 = struct.Struct("<Q")
_SIZE = _U64.size


class ChangeCounter:
    """A monotonically increasing write counter, optionally shared via a file."""

    __slots__ = ("_fd", "_lock", "_map", "_read", "path")

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        if path is None:
            self._map = mmap.mmap(-1, _SIZE)
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    if os.fstat(fd).st_size < _SIZE:
                        os.ftruncate(fd, _SIZE)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                self._map = mmap.mmap(fd, _SIZE)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        self._read = _U64.unpack_from

    def value(self) -> int:
        """The current count (no system call)."""
        value: int = self._read(self._map)[0]
        return value

    def bump(self) -> None:
        """Add one, serialised against every other process sharing the file."""
        with self._lock:
            fd = self._fd
            if fd is None:
                _U64.pack_into(self._map, 0, (self._read(self._map)[0] + 1) % 2**64)
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                _U64.pack_into(self._map, 0, (self._read(self._map)[0] + 1) % 2**64)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release the mapping and the file; the counter is unusable afterwards."""
        with self._lock:
            if not self._map.closed:
                self._map.close()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else "process-local"
        return f"ChangeCounter({where}, value={self.value() if not self._map.closed else '-'})"
