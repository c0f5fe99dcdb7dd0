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

Compaction (:mod:`iinode.telemetry.compaction`) merges a partition's small
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iinode.errors import InvalidHandle, StorageError, ValueInvalid
from iinode.identifiers import Prefix
from iinode.telemetry import compaction
from iinode.telemetry.compaction import JOURNAL, SharedLock
from iinode.telemetry.layout import ADDED, DAY_US, INTEGER, SCHEMA
from iinode.telemetry.layout import fsync as _fsync
from iinode.telemetry.model import Quality, Reading, Value
from iinode.telemetry.validation import END_OF_TIME_US

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One downsampling interval of one tag."""

    start_us: int
    count: int
    #: ``int`` (exact) when the bucket's numbers are all integers, ``bool`` when all
    #: booleans, else ``float``; ``None`` without numbers (text only).
    min: float | int | bool | None
    max: float | int | bool | None
    avg: float | None


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


class ParquetStore:
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
            table = pa.table(
                columns, names=[*_VALUE_COLUMNS, "equipment", "tag", "time", "quality"]
            )
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
            prefixes = [_prefix_of(e) for e in equipment.dictionary.to_pylist()]
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

    def partitions(self) -> list[tuple[str, date]]:
        """Every (prefix, day) partition on disk, sorted."""
        out: list[tuple[str, date]] = []
        for pdir in self.root.glob("prefix=*"):
            for ddir in pdir.glob("day=*"):
                out.append((pdir.name[7:], date.fromisoformat(ddir.name[4:])))
        return sorted(out)

    def files(self, prefix: str | None = None) -> list[Path]:
        pattern = f"prefix={_norm(prefix)}" if prefix else "prefix=*"
        return sorted(self.root.glob(f"{pattern}/day=*/part-*.parquet"))

    def compact(self, prefix: str, day: date) -> int:
        """Merge all files of a partition into one; returns the files left (0 or 1).

        Rows are sorted by equipment, tag and time; exact duplicate rows
        (at-least-once delivery can store a reading twice) are dropped.
        """
        directory = self._partition_dir(_norm(prefix), day)
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

    # -- queries ---------------------------------------------------------------

    def _source(self, prefixes: Iterable[str]) -> str | None:
        globs = [
            str(self.root / f"prefix={p}" / "day=*" / "part-*.parquet")
            for p in sorted(set(prefixes))
            if any((self.root / f"prefix={p}").glob("day=*/part-*.parquet"))
        ]
        if not globs:
            return None
        listed = ", ".join("'" + g.replace("'", "''") + "'" for g in globs)
        # Files of the first layout lack the typed value columns: the empty typed
        # relation, unioned by name, supplies them (as nulls) when no file has them.
        return (
            f"(SELECT * FROM read_parquet([{listed}], hive_partitioning = true, "
            "hive_types = {'prefix': VARCHAR, 'day': DATE}, union_by_name = true) "
            f"UNION ALL BY NAME {_TYPED_EMPTY})"
        )

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run a query over the Parquet files.

        Files come and go under a query: the first file of a partition is being renamed in,
        or another process's compaction swapped a partition's files between DuckDB listing
        and opening them.  "No files" means no rows yet; a vanished file gets one retry.
        """
        for attempt in (1, 2):
            try:
                cursor = self._db.cursor()
                try:
                    with self._swap.shared():
                        return cursor.execute(sql, list(params)).fetchall()
                finally:
                    cursor.close()
            except duckdb.IOException as exc:
                text = str(exc)
                if "No files found" in text:
                    return []
                if attempt == 2 or "No such file" not in text:
                    raise StorageError(f"telemetry query failed: {exc}") from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _window(start_us: int | None, end_us: int | None) -> tuple[str, list[Any]]:
        clauses = ["equipment = ?"]
        params: list[Any] = []
        if start_us is not None:
            clauses.append("day >= ?::DATE AND time >= make_timestamptz(?::BIGINT)")
            params += [_day(start_us).isoformat(), start_us]
        if end_us is not None:
            clauses.append("day <= ?::DATE AND time < make_timestamptz(?::BIGINT)")
            params += [_day(end_us).isoformat(), end_us]
        return " AND ".join(clauses), params

    def history(
        self,
        equipment: str,
        tag: str | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        limit: int = 100_000,
    ) -> list[Reading]:
        """Readings of one piece of equipment in ``[start_us, end_us)``, oldest first."""
        source = self._source([_prefix_of(equipment)])
        if source is None:
            return []
        where, params = self._window(start_us, end_us)
        if tag is not None:
            where += " AND tag = ?"
            params.append(tag)
        rows = self._query(
            f"SELECT tag, epoch_us(time), quality, {_VALUES} FROM {source} "
            f"WHERE {where} ORDER BY time, tag LIMIT ?",
            [equipment, *params, limit],
        )
        return [Reading(equipment, t, us, _value(*v), Quality(q)) for t, us, q, *v in rows]

    def last_before(
        self, equipment: str, tags: Sequence[str], start_us: int, end_us: int
    ) -> list[Reading]:
        """Each tag's last readings (every reading at its last instant) in
        ``[start_us, end_us)``, ordered by time and tag: what a period starting at
        ``end_us`` carries in (the state in effect, a counter's previous value)."""
        source = self._source([_prefix_of(equipment)])
        if source is None or not tags:
            return []
        where, params = self._window(start_us, end_us)
        rows = self._query(
            f"SELECT tag, epoch_us(time), quality, {_VALUES} FROM {source} "
            f"WHERE {where} AND tag IN (SELECT unnest(?::VARCHAR[])) "
            "QUALIFY time = max(time) OVER (PARTITION BY tag) ORDER BY time, tag",
            [equipment, *params, list(tags)],
        )
        return [Reading(equipment, t, us, _value(*v), Quality(q)) for t, us, q, *v in rows]

    def latest(self, equipment: str) -> dict[str, tuple[int, Value | None, Quality]]:
        """The last stored value of every tag: ``{tag: (time_us, value, quality)}``."""
        source = self._source([_prefix_of(equipment)])
        if source is None:
            return {}
        rows = self._query(
            f"SELECT tag, max(epoch_us(time)), arg_max(struct_pack(quality, {_VALUES}), time) "
            f"FROM {source} WHERE equipment = ? GROUP BY tag ORDER BY tag",
            [equipment],
        )
        out: dict[str, tuple[int, Value | None, Quality]] = {}
        for tag, us, last in rows:
            q, *v = last.values()
            out[tag] = (us, _value(*v), Quality(q))
        return out

    def downsample(
        self,
        equipment: str,
        tag: str,
        interval_us: int,
        start_us: int | None = None,
        end_us: int | None = None,
    ) -> list[Bucket]:
        """min/max/avg/count per ``interval_us`` (buckets aligned to the epoch)."""
        if interval_us < 1:
            raise ValueInvalid("interval must be positive")
        source = self._source([_prefix_of(equipment)])
        if source is None:
            return []
        where, params = self._window(start_us, end_us)
        rows = self._query(
            "SELECT (epoch_us(time) // ?) * ? AS bucket, count(*), min(value), max(value), "
            "avg(value), count(value), count(int_value), min(int_value), max(int_value), "
            "count(bool_value), bool_and(bool_value), bool_or(bool_value) "
            f"FROM {source} WHERE {where} AND tag = ? GROUP BY bucket ORDER BY bucket",
            [interval_us, interval_us, equipment, *params, tag],
        )
        out: list[Bucket] = []
        for b, c, lo, hi, avg, numbers, ints, ilo, ihi, bools, blo, bhi in rows:
            # min and max keep the values' type when all numbers of the bucket are of one
            if numbers and ints == numbers:
                lo, hi = int(ilo), int(ihi)
            elif numbers and bools == numbers:
                lo, hi = bool(blo), bool(bhi)
            out.append(Bucket(b, c, lo, hi, avg))
        return out

    def scan_tags(
        self,
        equipment: Sequence[str],
        tags: Sequence[str],
        start_us: int,
        end_us: int,
        limit: int,
        texts: Sequence[str] = (),
        *,
        last_only: bool = False,
    ) -> pa.Table:
        """Every reading of ``tags`` of the ``equipment`` (one prefix) in
        ``[start_us, end_us)``, in one scan, columnar and in storage order (the caller
        orders them).  Columns: ``key`` (int32: the equipment's position in ``equipment``
        x 8 + the tag's position in ``tags``, so at most 8 tags), ``time_us``, ``value``
        (double, null for text), ``flags`` (1: an exact integer, 2: a boolean, 4: text),
        ``text_code`` (the text's position in ``texts``, -1 for another text, -2 for no
        text) and ``good`` (the quality is good).

        ``last_only``: only each (equipment, tag)'s readings at its last instant in the
        window (a period's carry-in).

        ``ValueInvalid`` when there are more than ``limit`` readings."""
        if len(tags) > 8:
            raise ValueInvalid("a scan covers at most 8 tags")
        prefixes = {_prefix_of(e) for e in equipment}
        if len(prefixes) > 1:
            raise ValueInvalid("a scan covers the equipment of one prefix")
        schema = pa.schema([("key", pa.int32()), ("time_us", pa.int64()),
                            ("value", pa.float64()), ("flags", pa.uint8()),
                            ("text_code", pa.int16()), ("good", pa.bool_())])  # fmt: skip
        source = self._source(prefixes) if prefixes else None
        if source is None:
            return schema.empty_table()
        sql = (
            "SELECT (m.machine * 8 + list_position(?::VARCHAR[], s.tag) - 1)::INTEGER AS key, "
            "epoch_us(s.time) AS time_us, s.value, "
            "((s.int_value IS NOT NULL)::INTEGER + 2 * (s.bool_value IS NOT NULL)::INTEGER "
            "+ 4 * (s.text IS NOT NULL)::INTEGER)::UTINYINT AS flags, "
            "(CASE WHEN s.text IS NULL THEN -2 "
            "ELSE coalesce(list_position(?::VARCHAR[], s.text) - 1, -1) END)::SMALLINT "
            "AS text_code, (s.quality & 192) = 192 AS good "
            f"FROM {source} AS s JOIN (SELECT unnest(?::VARCHAR[]) AS equipment, "
            "unnest(range(?::BIGINT)) AS machine) AS m ON s.equipment = m.equipment "
            "WHERE s.tag IN (SELECT unnest(?::VARCHAR[])) "
            "AND s.day >= ?::DATE AND s.time >= make_timestamptz(?::BIGINT) "
            "AND s.day <= ?::DATE AND s.time < make_timestamptz(?::BIGINT) "
            + ("QUALIFY s.time = max(s.time) OVER (PARTITION BY s.equipment, s.tag) "
               if last_only else "")
            + "LIMIT ?"
        )  # fmt: skip
        params = [list(tags), list(texts) or [""], list(equipment), len(equipment), list(tags),
                  _day(start_us).isoformat(), start_us, _day(end_us).isoformat(), end_us,
                  limit + 1]  # fmt: skip
        for attempt in (1, 2):
            try:
                cursor = self._db.cursor()
                try:
                    with self._swap.shared():
                        table = cursor.sql(sql, params=params).to_arrow_table()
                finally:
                    cursor.close()
                break
            except duckdb.IOException as exc:
                text = str(exc)
                if "No files found" in text:
                    return schema.empty_table()
                if attempt == 2 or "No such file" not in text:
                    raise StorageError(f"telemetry query failed: {exc}") from exc
        else:
            raise AssertionError("unreachable")
        if table.num_rows > limit:
            raise ValueInvalid(f"more than {limit:,} readings in the period; ask for a shorter one")
        return table.cast(schema)

    def count(self, prefix: str | None = None) -> int:
        """Number of stored readings (under one prefix, or all)."""
        prefixes = [_norm(prefix)] if prefix else [p for p, _ in self.partitions()]
        source = self._source(prefixes)
        if source is None:
            return 0
        return int(self._query(f"SELECT count(*) FROM {source}", [])[0][0])


_VALUE_COLUMNS = ("value", "text", "int_value", "bool_value")
_VALUES = ", ".join(_VALUE_COLUMNS)
_TYPED_EMPTY = (
    "SELECT * FROM (VALUES (NULL::VARCHAR, NULL::VARCHAR, NULL::TIMESTAMPTZ, NULL::DOUBLE, "
    "NULL::VARCHAR, NULL::SMALLINT, NULL::DECIMAL(20, 0), NULL::BOOLEAN, NULL::VARCHAR, "
    "NULL::DATE)) AS t(equipment, tag, time, value, text, quality, int_value, bool_value, "
    "prefix, day) WHERE false"
)


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


def _value(
    number: float | None, text: str | None, integer: Decimal | None, flag: bool | None
) -> Value | None:
    """A stored value with its type (rows of the first layout give floats for numbers)."""
    if flag is not None:
        return flag
    if integer is not None:
        return int(integer)
    if text is not None:
        return text
    return number


def _norm(prefix: str) -> str:
    return Prefix(prefix).text


def _prefix_of(equipment: str) -> str:
    head, slash, _ = equipment.partition("/")
    if not slash:
        raise ValueInvalid(f"equipment {equipment!r} is not a handle prefix/suffix")
    return _norm(head)


def _day(time_us: int) -> date:
    return date(1970, 1, 1) + timedelta(days=time_us // DAY_US)


__all__ = ["DAY_US", "JOURNAL", "SCHEMA", "Bucket", "ParquetStore", "StoreSettings"]
