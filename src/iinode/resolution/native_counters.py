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

Offenders: next to its counter slot ``N`` each worker keeps the file
``native.offenders.N`` (``OffenderLog``): the source addresses with the most
protocol errors, authentication failures and drops, as a ring of the last
``OFFENDER_RING`` publications, each numbered and holding at most
``OFFENDER_TOP`` addresses with their counts since the previous one.  A
publication is written (whole, by rename) only when something was counted.
``OffenderReader`` merges the workers' files: each ``poll`` returns the counts
per address published since its previous poll (the first poll only takes note
of what is there).  Each worker writes its offenders before its counters, so a
reader that reads the counters first never sees a count attributed to an
address before it shows in the node-wide totals.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from dataclasses import fields
from pathlib import Path

import orjson

from iinode.errors import ConfigurationError
from iinode.resolution.native_sessions import OFFENCES, NativeCounters, OffenderTally

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


#: Offender files are this name plus ``.<slot>``.
OFFENDERS_FILE = "native.offenders"
#: Addresses kept per publication.
OFFENDER_TOP = 32
#: Publications kept per worker file (a reader polling less often loses the oldest).
OFFENDER_RING = 64


class OffenderLog:
    """One worker's offender file (see the module docstring); one writer per file."""

    def __init__(self, data_dir: Path, slot: int, *, top: int = OFFENDER_TOP) -> None:
        self.path = data_dir / f"{OFFENDERS_FILE}.{slot}"
        self.top = top
        self.seq = 0
        self._ring: list[tuple[int, dict[str, tuple[int, ...]]]] = []

    def publish(self, tally: OffenderTally) -> bool:
        """Write what ``tally`` counted since the last call, if anything; ``True`` if written."""
        if not len(tally):
            return False
        self.seq += 1
        self._ring.append((self.seq, tally.take(self.top)))
        del self._ring[:-OFFENDER_RING]
        body = orjson.dumps({"pid": os.getpid(), "offences": OFFENCES, "ring": self._ring})
        tmp = self.path.with_name(f"{self.path.name}.tmp")
        tmp.write_bytes(body)
        os.replace(tmp, self.path)
        return True


def _offender_file(path: Path) -> tuple[int, list[tuple[int, dict[str, list[int]]]]] | None:
    """``(pid, ring)`` of a well-formed offender file, else ``None``."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("offences") != list(OFFENCES):
        return None
    pid, ring = data.get("pid"), data.get("ring")
    if not isinstance(pid, int) or not isinstance(ring, list):
        return None
    out: list[tuple[int, dict[str, list[int]]]] = []
    for entry in ring:
        if (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], int)
            and isinstance(entry[1], dict)
        ):
            counts = {
                str(address): values
                for address, values in entry[1].items()
                if isinstance(values, list)
                and len(values) == len(OFFENCES)
                and all(isinstance(v, int) and v >= 0 for v in values)
            }
            out.append((entry[0], counts))
    return pid, out


class OffenderReader:
    """Counts per source address from every worker's offender file, since the last poll."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._seen: dict[str, tuple[int, int]] | None = None  # file -> (pid, last seq)

    def poll(self) -> dict[str, dict[str, int]]:
        """``{address: {offence: count}}`` published since the previous poll (first: ``{}``)."""
        first = self._seen is None
        seen = self._seen if self._seen is not None else {}
        totals: dict[str, list[int]] = {}
        for path in sorted(self.data_dir.glob(f"{OFFENDERS_FILE}.*")):
            if not path.name.removeprefix(f"{OFFENDERS_FILE}.").isdigit():
                continue
            parsed = _offender_file(path)
            if parsed is None:
                continue
            pid, ring = parsed
            last_pid, last_seq = seen.get(path.name, (pid, 0))
            if last_pid != pid:  # a new worker took the slot: its ring starts afresh
                last_seq = 0
            newest = last_seq
            for seq, counts in ring:
                if seq <= last_seq:
                    continue
                newest = max(newest, seq)
                if first:
                    continue
                for address, values in counts.items():
                    held = totals.setdefault(address, [0] * len(OFFENCES))
                    for i, value in enumerate(values):
                        held[i] += value
            seen[path.name] = (pid, newest)
        self._seen = seen
        return {
            address: {name: v for name, v in zip(OFFENCES, values, strict=True) if v}
            for address, values in totals.items()
        }


__all__ = [
    "COUNTERS_FILE",
    "COUNTER_NAMES",
    "OFFENDERS_FILE",
    "OFFENDER_RING",
    "OFFENDER_TOP",
    "OffenderLog",
    "OffenderReader",
    "SharedCounterBlock",
    "native_counter_slots",
    "read_native_counters",
]
