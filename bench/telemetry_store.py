"""Batched ingest into the telemetry store versus the raw engines, same data, same run.

    .venv/bin/python bench/telemetry_store.py [--points 2000000] [--runs 5]

Reports points/s (median of ``--runs``) for:
  store.append_table   ParquetStore with a columnar batch (partitioning, fsync, atomic rename)
  store.append         ParquetStore from Reading objects (builds the columns in Python)
  ... in N-point batches  the same table appended in slices, one durable write each (the
                       ingest worker writes up to ``flush_points``, 50k, per round), and the
                       same without fsync (the reference for what durability costs)
  pyarrow write_table  one pq.write_table of the same table, nothing else
  duckdb COPY          DuckDB writing the same table to one Parquet file
and the time of typical queries on the stored data.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

import iinode.telemetry.store as store_module
from iinode.telemetry.model import Reading
from iinode.telemetry.store import SCHEMA, ParquetStore, StoreSettings

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def make_table(points: int, equipment: int = 100, tags: int = 10) -> pa.Table:
    """Every tag of every machine once a second, in time order."""
    width = equipment * tags
    n = points // width * width
    names = [(f"88.118.8/M{e:04d}", f"tag{t:02d}") for e in range(equipment) for t in range(tags)]
    eq = [names[i % width][0] for i in range(n)]
    tg = [names[i % width][1] for i in range(n)]
    micros = [T0 + (i // width) * 1_000_000 for i in range(n)]
    values = [math.sin(i / 1000.0) * 100 for i in range(n)]
    return pa.table(
        {
            "equipment": pa.array(eq, pa.string()),
            "tag": pa.array(tg, pa.string()),
            "time": pa.array(micros, pa.int64()).cast(SCHEMA.field("time").type),
            "value": pa.array(values, pa.float64()),
            "text": pa.nulls(n, pa.string()),
            "quality": pa.array([192] * n, pa.int16()),
        }
    )


def to_readings(table: pa.Table) -> list[Reading]:
    cols = table.to_pydict()
    micros = table.column("time").cast(pa.int64()).to_pylist()
    return [
        Reading(e, t, us, v)
        for e, t, us, v in zip(cols["equipment"], cols["tag"], micros, cols["value"], strict=True)
    ]


def timed(runs: int, setup: Callable[[], object], action: Callable[[object], object]) -> float:
    samples = []
    for _ in range(runs):
        state = setup()
        start = time.perf_counter()
        action(state)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    table = make_table(args.points)
    n = table.num_rows
    readings = to_readings(table)
    work = Path(tempfile.mkdtemp(prefix="iinode-bench-"))
    try:

        def fresh() -> Path:
            d = work / f"run-{time.perf_counter_ns()}"
            d.mkdir()
            return d

        def store_of() -> ParquetStore:
            return ParquetStore(StoreSettings(fresh()))

        def in_batches(size: int) -> Callable[[object], object]:
            def append(s: object) -> None:
                assert isinstance(s, ParquetStore)
                for offset in range(0, n, size):
                    s.append_table(table.slice(offset, size))

            return append

        def without_fsync(action: Callable[[object], object]) -> Callable[[object], object]:
            def run(s: object) -> None:
                real, store_module._fsync = store_module._fsync, lambda path: None
                try:
                    action(s)
                finally:
                    store_module._fsync = real

            return run

        con = duckdb.connect()
        con.register("batch", table)
        results = {
            "store.append_table": timed(args.runs, store_of, lambda s: s.append_table(table)),  # type: ignore[attr-defined]
            "store.append (Reading objects)": timed(
                args.runs,
                store_of,
                lambda s: s.append(readings),  # type: ignore[attr-defined]
            ),
            "... in 10k-point batches": timed(args.runs, store_of, in_batches(10_000)),
            "... in 10k-point batches, no fsync": timed(
                args.runs, store_of, without_fsync(in_batches(10_000))
            ),
            "... in 50k-point batches": timed(args.runs, store_of, in_batches(50_000)),
            "... in 50k-point batches, no fsync": timed(
                args.runs, store_of, without_fsync(in_batches(50_000))
            ),
            "pyarrow write_table (raw)": timed(
                args.runs,
                lambda: fresh() / "raw.parquet",
                lambda p: pq.write_table(table, p, compression="zstd"),
            ),
            "duckdb COPY to parquet (raw)": timed(
                args.runs,
                lambda: fresh() / "raw.parquet",
                lambda p: con.execute(
                    f"COPY (SELECT * FROM batch) TO '{p}' (FORMAT PARQUET, COMPRESSION ZSTD)"
                ),
            ),
        }
        print(f"points per run: {n:,}; median of {args.runs} runs")
        for name, seconds in results.items():
            print(f"  {name:34s} {n / seconds:>14,.0f} points/s  ({seconds * 1000:8.1f} ms)")

        store = ParquetStore(StoreSettings(fresh()))
        store.append_table(table)
        eq = "88.118.8/M0042"
        queries = {
            "latest(equipment)": lambda: store.latest(eq),
            "history(equipment, tag), full day": lambda: store.history(eq, "tag03"),
            "downsample 1 min, full day": lambda: store.downsample(eq, "tag03", 60_000_000),
            "count()": lambda: store.count(),
        }
        for name, q in queries.items():
            seconds = timed(args.runs, lambda: None, lambda _s, q=q: q())  # type: ignore[misc]
            print(f"  query {name:32s} {seconds * 1000:8.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
