"""The time-series store: Parquet partitions by enterprise prefix and day, read with DuckDB.

File layout (Hive-style partitions, readable by DuckDB, Spark, Trino, pandas)::

    <root>/prefix=<ENTERPRISE PREFIX>/day=<YYYY-MM-DD>/part-<first time_us>-<8 hex>.parquet

Each file has the columns ``equipment`` (string, full handle), ``tag``
(string), ``time`` (timestamp, microseconds, UTC), ``value`` (double: numbers
and booleans as 0/1, null for text), ``text`` (string, null for numbers),
``quality`` (int16, OPC DA quality byte), ``int_value`` (decimal(20,0): integers
exactly) and ``bool_value`` (boolean); queries give values back with their type
(see :mod:`iinode.telemetry.layout`).  ``prefix`` and ``day`` come from the
directory names.  Files are written to a temporary name and renamed, so a
reader never sees half a file; every append adds files.

Queries (:mod:`iinode.telemetry.parquet_queries`, ``ParquetQueries``, which
``ParquetStore`` extends) read the files with DuckDB.  Compaction
(:mod:`iinode.telemetry.compaction`) merges a partition's small
files into one, atomically and crash-safely; queries see either the old files
or the merged one.  The schema and durable-write helpers are in
:mod:`iinode.telemetry.layout`.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iinode.errors import InvalidHandle, StorageError, ValueInvalid
from iinode.telemetry import compaction
from iinode.telemetry.compaction import JOURNAL, SharedLock
from iinode.telemetry.layout import ADDED, DAY_US, INTEGER, SCHEMA
from iinode.telemetry.layout import fsync as _fsync
from iinode.telemetry.model import Reading, Value
from iinode.telemetry.parquet_queries import (
    VALUE_COLUMNS,
    Bucket,
    ParquetQueries,
    norm_prefix,
    prefix_of,
)
from iinode.telemetry.validation import END_OF_TIME_US

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """``compact_*`` drive :meth:`ParquetStore.compact_crowded`, the periodic compaction:
    files under ``compact_small_rows`` rows are merged, at most ``compact_max_rows``
    rows per merge (a merge holds its rows in memory); a partition is idle when no
    file arrived for ``compact_idle_s``."""

    root: Path
    compression: str = "zstd"
    row_group_size: int = 1_000_000
    compact_small_rows: int = 500_000
    compact_max_rows: int = 1_000_000
    compact_idle_s: float = 600.0

    def __post_init__(self) -> None:
        if self.compact_small_rows < 1 or self.compact_max_rows < 1:
            raise ValueInvalid("compaction sizes must be positive")
        if self.compact_idle_s < 0:
            raise ValueInvalid("compact_idle_s must not be negative")


class ParquetStore(ParquetQueries):
    """Appends reading batches as Parquet files and answers queries with DuckDB.

    Methods are synchronous and thread-safe (writes create new files; queries
    use a DuckDB cursor each and hold off the moment a compaction swaps files);
    async callers run them with ``asyncio.to_thread``.
    """

    def __init__(self, settings: StoreSettings | Path | str) -> None:
        if not isinstance(settings, StoreSettings):
            settings = StoreSettings(Path(settings))
        self.settings = settings
        self.root = settings.root
        self.root.mkdir(parents=True, exist_ok=True)
        self._db = duckdb.connect(":memory:")
        self._lock = threading.Lock()  # one compaction at a time
        self._swap = SharedLock()  # queries shared, file swaps exclusive
        compaction.recover(self.root)

    # -- writing ---------------------------------------------------------------

    def append(self, readings: Sequence[Reading]) -> int:
        """Store readings durably; returns the number stored.

        Raises ``ValueInvalid`` (nothing written) if the readings cannot be
        stored as they are (a time outside 1970..9999, a value Parquet cannot
        hold), ``StorageError`` if the disk failed (worth retrying).
        """
        if not readings:
            return 0
        try:
            columns = [
                *_columns([r.value for r in readings]),
                pa.array([r.equipment for r in readings], pa.string()),
                pa.array([r.tag for r in readings], pa.string()),
                pa.array([r.time_us for r in readings], pa.int64()),
                pa.array([int(r.quality) for r in readings], pa.int16()),
            ]
            table = pa.table(columns, names=[*VALUE_COLUMNS, "equipment", "tag", "time", "quality"])
        except (pa.ArrowException, OverflowError, ValueError, TypeError) as exc:
            raise ValueInvalid(f"readings cannot be stored: {exc}") from None
        return self.append_table(table)

    def append_table(self, table: pa.Table) -> int:
        """Store a table with the columns of :data:`SCHEMA` (``time`` may be int64 µs;
        the typed value columns ``int_value`` and ``bool_value`` may be left out).

        Every file is fsynced, renamed into place and its directory fsynced
        before this returns, so what was appended survives a power loss.
        Errors as for :meth:`append`.
        """
        n = int(table.num_rows)
        if n == 0:
            return 0
        try:
            if table.schema.field("time").type == pa.int64():
                idx = table.schema.get_field_index("time")
                table = table.set_column(
                    idx, "time", table.column(idx).cast(SCHEMA.field("time").type)
                )
            for name in ADDED:
                if name not in table.schema.names:
                    table = table.append_column(
                        SCHEMA.field(name), pa.nulls(n, SCHEMA.field(name).type)
                    )
            table = table.select(SCHEMA.names).cast(SCHEMA)
            micros = table.column("time").cast(pa.int64())
            lowest, highest = pc.min(micros).as_py(), pc.max(micros).as_py()
            if lowest < 0 or highest >= END_OF_TIME_US:
                raise ValueInvalid("timestamps outside 1970..9999 cannot be stored")
            days = pc.divide(micros, pa.scalar(DAY_US, pa.int64()))
            equipment = pc.dictionary_encode(table.column("equipment")).combine_chunks()
            prefixes = [prefix_of(e) for e in equipment.dictionary.to_pylist()]
            codes = sorted(set(prefixes))
            code_of = pa.array([codes.index(p) for p in prefixes], pa.int64())
            prefix_code = pc.take(code_of, equipment.indices)
            key = pc.add(pc.multiply(prefix_code, pa.scalar(1 << 32, pa.int64())), days)
            keys = pc.unique(key).to_pylist()
            parts: list[tuple[str, date, pa.Table]] = []
            for k in keys:
                part = table
                if len(keys) > 1:
                    part = table.filter(pc.equal(key, pa.scalar(k, pa.int64())))
                day = date(1970, 1, 1) + timedelta(days=k & 0xFFFFFFFF)
                parts.append((codes[k >> 32], day, part))
        except (KeyError, pa.ArrowException, InvalidHandle) as exc:
            raise ValueInvalid(f"table does not match the telemetry schema: {exc}") from None
        written: list[Path] = []
        try:
            for prefix, day, part in parts:
                written.append(self._write(prefix, day, part))
            for directory in {p.parent for p in written}:
                _fsync(directory)
        except (OSError, StorageError) as exc:
            # Nothing is acknowledged: the caller retries the whole batch, so files
            # already written would be duplicates.
            for path in written:
                path.unlink(missing_ok=True)
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"cannot write telemetry: {exc}") from exc
        return n

    def _partition_dir(self, prefix: str, day: date) -> Path:
        return self.root / f"prefix={prefix}" / f"day={day.isoformat()}"

    def _write(self, prefix: str, day: date, table: pa.Table) -> Path:
        """Write one partition's file: temporary name, fsync, rename (the caller fsyncs
        the directory).  Raises ``StorageError``."""
        directory = self._partition_dir(prefix, day)
        first = pc.min(table.column("time").cast(pa.int64())).as_py()
        name = f"part-{first:016d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = directory / f".{name}.tmp"
        try:
            if not directory.is_dir():
                self._make_dirs(directory)
            pq.write_table(
                table,
                tmp,
                compression=self.settings.compression,
                row_group_size=self.settings.row_group_size,
            )
            _fsync(tmp)
            os.replace(tmp, directory / name)
        except (OSError, pa.ArrowException) as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write telemetry partition {directory}: {exc}") from exc
        return directory / name

    def _make_dirs(self, directory: Path) -> None:
        """Create a partition directory and make its entry (and its parent's) durable."""
        missing = [d for d in (directory.parent, directory) if not d.is_dir()]
        directory.mkdir(parents=True, exist_ok=True)
        for d in missing:
            _fsync(d.parent)

    # -- housekeeping ----------------------------------------------------------

    def compact(self, prefix: str, day: date) -> int:
        """Merge all files of a partition into one; returns the files left (0 or 1).

        Rows are sorted by equipment, tag and time; exact duplicate rows
        (at-least-once delivery can store a reading twice) are dropped.
        """
        directory = self._partition_dir(norm_prefix(prefix), day)
        with self._lock:
            old = sorted(directory.glob("part-*.parquet"))
            if len(old) < 2:
                return len(old)
            compaction.merge(directory, old, self.settings, self._swap)
            return 1

    def compact_crowded(self, min_files: int = 32, now: float | None = None) -> int:
        """The periodic compaction; returns how many partitions were compacted.

        In every partition, files of fewer than ``compact_small_rows`` rows are
        merged, oldest first, into files of at most ``compact_max_rows`` rows when there are
        at least ``min_files`` of them, or at least two in a partition that is
        closed (an earlier UTC day) or idle (no new file for
        ``compact_idle_s``).  Big files are left alone, so a busy day is not
        rewritten over and over.
        """
        if min_files < 2:
            raise ValueInvalid("min_files must be at least 2")
        wall = time.time() if now is None else now
        today = datetime.fromtimestamp(wall, UTC).date()
        done = 0
        for prefix, day in self.partitions():
            directory = self._partition_dir(prefix, day)
            with self._lock:
                chunks = compaction.crowded_chunks(
                    directory, day, today=today, wall=wall, min_files=min_files, s=self.settings
                )
                merged = 0
                for chunk in chunks:
                    try:
                        compaction.merge(directory, chunk, self.settings, self._swap)
                    except StorageError as exc:  # left as it was; the next pass tries again
                        log.error("%s", exc)
                        continue
                    merged += 1
                done += merged > 0
        return done

    def retain(self, keep_days: int, now: datetime | None = None) -> int:
        """Delete day partitions older than ``keep_days`` days; returns how many."""
        if keep_days < 1:
            raise ValueInvalid("keep_days must be at least 1")
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        cutoff = today - timedelta(days=keep_days - 1)
        removed = 0
        for prefix, day in self.partitions():
            if day < cutoff:
                with self._lock, self._swap.exclusive():
                    shutil.rmtree(self._partition_dir(prefix, day), ignore_errors=True)
                removed += 1
        for pdir in self.root.glob("prefix=*"):
            if not any(pdir.iterdir()):
                pdir.rmdir()
        return removed


def _columns(values: list[Value | None]) -> list[pa.Array]:
    """The typed value columns (``value``, ``text``, ``int_value``, ``bool_value``)."""
    n = len(values)
    kinds = set(map(type, values))
    if kinds == {float}:  # the common case: measurements
        return [pa.array(values, pa.float64()), pa.nulls(n, pa.string()),
                pa.nulls(n, INTEGER), pa.nulls(n, pa.bool_())]  # fmt: skip
    ints = [v if type(v) is int else None for v in values] if int in kinds else None
    return [
        pa.array(
            [float(v) if v is not None and type(v) is not str else None for v in values],
            pa.float64(),
        ),
        pa.array([v if type(v) is str else None for v in values], pa.string())
        if str in kinds
        else pa.nulls(n, pa.string()),
        pa.array(ints, INTEGER) if ints is not None else pa.nulls(n, INTEGER),
        pa.array([v if type(v) is bool else None for v in values], pa.bool_())
        if bool in kinds
        else pa.nulls(n, pa.bool_()),
    ]


__all__ = ["DAY_US", "JOURNAL", "SCHEMA", "Bucket", "ParquetStore", "StoreSettings"]
