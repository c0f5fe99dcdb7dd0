"""Compaction of the telemetry store: merging a partition's small Parquet files.

A merge rewrites some files of one partition as one file, sorted by equipment,
tag and time, with exact duplicate rows dropped (at-least-once delivery can
store a reading twice).  The merged file is written to a temporary name and
fsynced, a journal (``_compaction.json``) naming the new file and the old ones
is written and fsynced, then, while no query of the store runs (the
exclusive side of its :class:`SharedLock`), the new file is renamed into place
and the old ones deleted; the journal goes last.  A crash in between is
finished (or undone) from the journal by :func:`recover` when the store is next
opened.  Queries therefore see either the old files or the merged one, never
both or neither.

:func:`crowded_chunks` is the periodic policy: which files of a partition to
merge, and in which groups.  :class:`~iinode.telemetry.store.ParquetStore`
calls all of these under its own compaction lock.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from iinode.errors import StorageError
from iinode.telemetry.layout import SCHEMA, first_us, fsync, write_durably

if TYPE_CHECKING:
    from iinode.telemetry.store import StoreSettings

JOURNAL = "_compaction.json"

log = logging.getLogger(__name__)


class SharedLock:
    """Many readers or one writer; a waiting writer holds off new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._writer and not self._readers)
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def crowded_chunks(
    directory: Path, day: date, *, today: date, wall: float, min_files: int, s: StoreSettings
) -> list[list[Path]]:
    """The groups of files of one partition the periodic compaction merges (maybe none).

    Files of fewer than ``compact_small_rows`` rows are grouped, oldest first,
    into groups of at most ``compact_max_rows`` rows when there are at least
    ``min_files`` of them, or at least two in a partition that is closed (a day
    before ``today``) or idle (no new file for ``compact_idle_s`` before
    ``wall``).  Groups of one file are left out.
    """
    small: list[tuple[Path, int]] = []
    newest = 0.0
    for path in sorted(directory.glob("part-*.parquet")):
        try:
            newest = max(newest, path.stat().st_mtime)
            rows = pq.read_metadata(path).num_rows
        except (OSError, pa.ArrowException):
            continue
        if rows < s.compact_small_rows:
            small.append((path, rows))
    quiet = day < today or wall - newest >= s.compact_idle_s
    if len(small) < (2 if quiet else min_files):
        return []
    chunks: list[list[Path]] = [[]]
    total = 0
    for path, rows in small:
        if chunks[-1] and total + rows > s.compact_max_rows:
            chunks.append([])
            total = 0
        chunks[-1].append(path)
        total += rows
    return [chunk for chunk in chunks if len(chunk) >= 2]


def merge(directory: Path, old: list[Path], s: StoreSettings, swap: SharedLock) -> Path:
    """Replace ``old`` (files of one partition) by one merged file, atomically.

    Raises ``StorageError`` and leaves the partition as it was if the merge fails.
    """
    name = f"part-{first_us(old)}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = directory / f".{name}.tmp"
    journal = directory / JOURNAL
    try:
        table = pq.read_table(old, schema=SCHEMA, partitioning=None)
        merged = (
            table.group_by(SCHEMA.names, use_threads=False)
            .aggregate([])
            .select(SCHEMA.names)
            .sort_by([("equipment", "ascending"), ("tag", "ascending"), ("time", "ascending")])
            .cast(SCHEMA)
        )
        del table
        pq.write_table(merged, tmp, compression=s.compression, row_group_size=s.row_group_size)
        del merged
        fsync(tmp)
        write_durably(journal, {"new": name, "old": [p.name for p in old]})
        with swap.exclusive():
            os.replace(tmp, directory / name)
            fsync(directory)
            for path in old:
                path.unlink(missing_ok=True)
            fsync(directory)
        journal.unlink()
        fsync(directory)
    except Exception as exc:  # pyarrow raises more than ArrowException (MemoryError ...)
        tmp.unlink(missing_ok=True)
        if not (directory / name).exists():
            journal.unlink(missing_ok=True)
        raise StorageError(f"cannot compact telemetry partition {directory}: {exc}") from exc
    finally:
        pa.default_memory_pool().release_unused()
    return directory / name


def recover(root: Path) -> None:
    """Finish or undo the compactions under ``root`` that a crash interrupted."""
    for journal in root.glob(f"prefix=*/day=*/{JOURNAL}"):
        directory = journal.parent
        try:
            entry = json.loads(journal.read_bytes())
            new, old = str(entry["new"]), [str(n) for n in entry["old"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"unreadable compaction journal {journal}: {exc}") from exc
        if (directory / new).exists():
            for name in old:
                (directory / name).unlink(missing_ok=True)
            log.warning("finished an interrupted compaction in %s", directory)
        else:
            (directory / f".{new}.tmp").unlink(missing_ok=True)
            log.warning("undid an interrupted compaction in %s", directory)
        fsync(directory)
        journal.unlink()


__all__ = ["JOURNAL", "SharedLock", "crowded_chunks", "merge", "recover"]
