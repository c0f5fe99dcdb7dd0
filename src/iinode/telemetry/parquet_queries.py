"""Queries over the Parquet telemetry store, run with DuckDB.

``ParquetQueries`` is the read side of ``ParquetStore`` (``telemetry.store``,
which appends, compacts and expires files): the partitions on disk, a piece of
equipment's history, each tag's last readings, downsampled buckets, the
columnar scan the KPIs are computed from, and counts.  Every query reads the
files through ``read_parquet`` with Hive partitioning, on a DuckDB cursor of
its own, and holds off the moment a compaction swaps a partition's files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from iinode.errors import StorageError, ValueInvalid
from iinode.identifiers import Prefix
from iinode.telemetry.compaction import SharedLock
from iinode.telemetry.layout import DAY_US
from iinode.telemetry.model import Quality, Reading, Value

T = TypeVar("T")


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


class ParquetQueries:
    """The reads of a store's Parquet files (see the module docstring)."""

    #: The store's directory, its DuckDB connection and its file-swap lock, set by
    #: the store.
    root: Path
    _db: duckdb.DuckDBPyConnection
    _swap: SharedLock

    def partitions(self) -> list[tuple[str, date]]:
        """Every (prefix, day) partition on disk, sorted."""
        out: list[tuple[str, date]] = []
        for pdir in self.root.glob("prefix=*"):
            for ddir in pdir.glob("day=*"):
                out.append((pdir.name[7:], date.fromisoformat(ddir.name[4:])))
        return sorted(out)

    def files(self, prefix: str | None = None) -> list[Path]:
        pattern = f"prefix={norm_prefix(prefix)}" if prefix else "prefix=*"
        return sorted(self.root.glob(f"{pattern}/day=*/part-*.parquet"))

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
        """The rows of a query over the Parquet files (none while there are no files)."""
        rows: list[tuple[Any, ...]] = self._run(
            lambda cursor: cursor.execute(sql, list(params)).fetchall(), []
        )
        return rows

    def _run(self, run: Callable[[duckdb.DuckDBPyConnection], T], empty: T) -> T:
        """``run`` on a cursor of its own while no compaction swaps files.

        Files come and go under a query: the first file of a partition is being renamed in,
        or another process's compaction swapped a partition's files between DuckDB listing
        and opening them.  "No files" means no rows yet (``empty``); a vanished file gets
        one retry.
        """
        for attempt in (1, 2):
            try:
                cursor = self._db.cursor()
                try:
                    with self._swap.shared():
                        return run(cursor)
                finally:
                    cursor.close()
            except duckdb.IOException as exc:
                text = str(exc)
                if "No files found" in text:
                    return empty
                if attempt == 2 or "No such file" not in text:
                    raise StorageError(f"telemetry query failed: {exc}") from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _window(start_us: int | None, end_us: int | None) -> tuple[str, list[Any]]:
        clauses = ["equipment = ?"]
        params: list[Any] = []
        if start_us is not None:
            clauses.append("day >= ?::DATE AND time >= make_timestamptz(?::BIGINT)")
            params += [day_of(start_us).isoformat(), start_us]
        if end_us is not None:
            clauses.append("day <= ?::DATE AND time < make_timestamptz(?::BIGINT)")
            params += [day_of(end_us).isoformat(), end_us]
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
        source = self._source([prefix_of(equipment)])
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
        source = self._source([prefix_of(equipment)])
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
        source = self._source([prefix_of(equipment)])
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
        source = self._source([prefix_of(equipment)])
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
        prefixes = {prefix_of(e) for e in equipment}
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
                  day_of(start_us).isoformat(), start_us, day_of(end_us).isoformat(), end_us,
                  limit + 1]  # fmt: skip
        table: pa.Table = self._run(
            lambda cursor: cursor.sql(sql, params=params).to_arrow_table(), schema.empty_table()
        )
        if table.num_rows > limit:
            raise ValueInvalid(f"more than {limit:,} readings in the period; ask for a shorter one")
        return table.cast(schema)

    def count(self, prefix: str | None = None) -> int:
        """Number of stored readings (under one prefix, or all)."""
        prefixes = [norm_prefix(prefix)] if prefix else [p for p, _ in self.partitions()]
        source = self._source(prefixes)
        if source is None:
            return 0
        return int(self._query(f"SELECT count(*) FROM {source}", [])[0][0])


#: The typed value columns, in file order.
VALUE_COLUMNS = ("value", "text", "int_value", "bool_value")
_VALUES = ", ".join(VALUE_COLUMNS)
_TYPED_EMPTY = (
    "SELECT * FROM (VALUES (NULL::VARCHAR, NULL::VARCHAR, NULL::TIMESTAMPTZ, NULL::DOUBLE, "
    "NULL::VARCHAR, NULL::SMALLINT, NULL::DECIMAL(20, 0), NULL::BOOLEAN, NULL::VARCHAR, "
    "NULL::DATE)) AS t(equipment, tag, time, value, text, quality, int_value, bool_value, "
    "prefix, day) WHERE false"
)


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


def norm_prefix(prefix: str) -> str:
    """``prefix`` as its partition directory names it."""
    return Prefix(prefix).text


def prefix_of(equipment: str) -> str:
    """The prefix partition of an equipment handle (``ValueInvalid`` for no handle)."""
    head, slash, _ = equipment.partition("/")
    if not slash:
        raise ValueInvalid(f"equipment {equipment!r} is not a handle prefix/suffix")
    return norm_prefix(head)


def day_of(time_us: int) -> date:
    """The UTC day partition of a time in microseconds since the epoch."""
    return date(1970, 1, 1) + timedelta(days=time_us // DAY_US)


__all__ = ["VALUE_COLUMNS", "Bucket", "ParquetQueries", "day_of", "norm_prefix", "prefix_of"]
