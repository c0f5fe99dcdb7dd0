"""The on-disk layout of the telemetry store: the Parquet schema and durable file writes.

A value is kept in the column of its type: ``value`` (double) holds every
number and boolean (0/1) so aggregates and plain readers work on one column;
``int_value`` (decimal(20,0)) holds integers exactly, from -2^63 to 2^64-1;
``bool_value`` holds booleans; ``text`` holds strings.  All of them null means
no value (a bad quality without one).  Files written before ``int_value`` and
``bool_value`` existed read them as nulls: their integers and booleans come
back as floats.

Shared by the store (:mod:`iinode.telemetry.store`, appends and queries) and
its compaction (:mod:`iinode.telemetry.compaction`).  Data files are named
``part-<first time_us, 16 digits>-<8 hex>.parquet``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

DAY_US = 86_400_000_000

#: Exact integers: every Int8 .. Int64 and UInt8 .. UInt64 value fits in 20 decimal digits.
INTEGER = pa.decimal128(20, 0)

SCHEMA = pa.schema(
    [
        pa.field("equipment", pa.string(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("text", pa.string()),
        pa.field("quality", pa.int16(), nullable=False),
        pa.field("int_value", INTEGER),
        pa.field("bool_value", pa.bool_()),
    ]
)

#: Columns added after the first layout; files without them read them as nulls.
ADDED = ("int_value", "bool_value")


def first_us(files: list[Path]) -> str:
    """The smallest ``<first time_us>`` among file names ``part-<first>-<hex>.parquet``."""
    return min(p.name.split("-")[1] for p in files)


def fsync(path: Path) -> None:
    """Flush a file or a directory (its entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, entry: dict[str, Any]) -> None:
    """Write ``entry`` as JSON to ``path`` atomically (temporary name, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(json.dumps(entry).encode())
    fsync(tmp)
    os.replace(tmp, path)
    fsync(path.parent)
