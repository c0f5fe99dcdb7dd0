"""Node-wide native protocol counters: one shared block for all worker processes.

Each native worker process counts in its own ``NativeCounters`` (plain
attributes, no cost on the hot path) and publishes them a few times a second
into its slot of the file ``<data-dir>/native.counters``, mapped into memory
by every worker.  ``read_native_counters(data_dir)`` sums the slots: the
node-wide totals for ``/metrics``.

Layout (little-endian): a 16-octet header (magic ``IINC``, layout version,
number of counters, number of slots), then ``MAX_SLOTS`` slots of one owner pid
plus one unsigned 64-bit value per counter, in ``COUNTER_NAMES`` order.

A process claims a slot under an exclusive ``flock``: a free one (pid 0) or one
whose owner has died.  It keeps the counts already in the slot as its base and
publishes ``base + its own counts``, and leaves them there when it closes, so the
node-wide sums never go down while the data directory lives (Prometheus counter
semantics), even across worker restarts.  Each slot has one writer; readers do
not lock (an aligned eight-octet value is read whole on the machines iinode
runs on).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from dataclasses import fields
from pathlib import Path

from iinode.errors import ConfigurationError
from iinode.resolution.native_sessions import NativeCounters

#: The block's file name inside a data directory.
COUNTERS_FILE = "native.counters"
#: The counters in the block, in slot order.
COUNTER_NAMES: tuple[str, ...] = tuple(f.name for f in fields(NativeCounters))
#: Worker processes that can publish at once.
MAX_SLOTS = 64

_MAGIC = b"IINC"
_LAYOUT = 1
_HEADER = struct.Struct("<4sIII")
_SLOT = struct.Struct(f"<Q{len(COUNTER_NAMES)}Q")
_SIZE = _HEADER.size + MAX_SLOTS * _SLOT.size


def _slot_offset(slot: int) -> int:
    return _HEADER.size + slot * _SLOT.size


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SharedCounterBlock:
    """This process's slot in the node's counter block (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._map = _map_block(fd)
                self.slot = self._claim()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        values = _SLOT.unpack_from(self._map, _slot_offset(self.slot))
        self._base = values[1:]

    def _claim(self) -> int:
        pid = os.getpid()
        dead: int | None = None
        for slot in range(MAX_SLOTS):
            owner = _SLOT.unpack_from(self._map, _slot_offset(slot))[0]
            if owner == 0:
                dead = slot
                break
            if dead is None and owner != pid and not _alive(owner):
                dead = slot
        if dead is None:
            raise ConfigurationError(
                f"{self.path}: all {MAX_SLOTS} counter slots are held by running processes"
            )
        struct.pack_into("<Q", self._map, _slot_offset(dead), pid)
        return dead

    def publish(self, counters: NativeCounters) -> None:
        """Write ``base + counters`` into this process's slot."""
        if self._fd is None:
            return
        now = counters.snapshot()
        values = [b + now[name] for b, name in zip(self._base, COUNTER_NAMES, strict=True)]
        offset = _slot_offset(self.slot) + 8
        struct.pack_into(f"<{len(values)}Q", self._map, offset, *(v % 2**64 for v in values))

    def close(self, counters: NativeCounters | None = None) -> None:
        """Publish a last time and free the slot (its counts stay in the block)."""
        if self._fd is None:
            return
        if counters is not None:
            self.publish(counters)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            struct.pack_into("<Q", self._map, _slot_offset(self.slot), 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._map.close()
        os.close(self._fd)
        self._fd = None


def _map_block(fd: int) -> mmap.mmap:
    """Map the block, (re)initialising a new, short or foreign file (caller holds the lock)."""
    header = _HEADER.pack(_MAGIC, _LAYOUT, len(COUNTER_NAMES), MAX_SLOTS)
    if os.fstat(fd).st_size != _SIZE or os.pread(fd, _HEADER.size, 0) != header:
        os.ftruncate(fd, 0)
        os.ftruncate(fd, _SIZE)
        os.pwrite(fd, header, 0)
    return mmap.mmap(fd, _SIZE)


def native_counter_slots(data_dir: Path) -> list[tuple[int, dict[str, int]]]:
    """``(owner pid, counts)`` of every used slot (pid 0: its owner has closed)."""
    try:
        raw = (data_dir / COUNTERS_FILE).read_bytes()
    except FileNotFoundError:
        return []
    if len(raw) != _SIZE or _HEADER.unpack_from(raw) != (
        _MAGIC, _LAYOUT, len(COUNTER_NAMES), MAX_SLOTS
    ):  # fmt: skip
        return []
    slots = []
    for slot in range(MAX_SLOTS):
        pid, *values = _SLOT.unpack_from(raw, _slot_offset(slot))
        if pid or any(values):
            slots.append((pid, dict(zip(COUNTER_NAMES, values, strict=True))))
    return slots


def read_native_counters(data_dir: Path) -> dict[str, int]:
    """Node-wide sums of the native counters of every worker that served ``data_dir``.

    All zeros if no worker has run there yet.  Values lag the workers by at most
    their publishing interval.
    """
    totals = dict.fromkeys(COUNTER_NAMES, 0)
    for _pid, counts in native_counter_slots(data_dir):
        for name, value in counts.items():
            totals[name] += value
    return totals


__all__ = [
    "COUNTERS_FILE",
    "COUNTER_NAMES",
    "SharedCounterBlock",
    "native_counter_slots",
    "read_native_counters",
]
