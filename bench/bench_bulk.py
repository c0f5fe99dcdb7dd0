"""Bulk registration throughput: iinode's bulk path vs the raw engine, same rows, same run.

    .venv/bin/python bench/bench_bulk.py --rows 200000 --runs 3 [--postgres]

iinode's figure covers parsing nothing but building HandleValues, validating,
encoding records and writing them in 20,000-row transactions (``write_behind``: the
store writes one batch while the next is encoded, so on a free second core the
figure exceeds the CPU-time one); the raw figure is
the engine inserting the very same (handle, prefix, bytes) rows with no iinode code.
Each figure is given per second of wall time and, for SQLite (in process), per second
of the process's CPU time (all its threads): on a shared machine the CPU figures
follow the code, the wall figures the neighbours.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from iinode.identifiers import HandleName, HandleValue, UrlData
from iinode.node.bulk import BulkRegistrar
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import SQLiteStore
from iinode.storage.base import HandleStore

BATCH = 20_000
PG = "postgresql://postgres@127.0.0.1:5432/test"


async def iinode_load(
    store: HandleStore, rows: int, tmp: Path
) -> tuple[float, list[tuple[str, str, bytes]]]:
    rate, _cpu_rate, encoded = await iinode_load_timed(store, rows, tmp)
    return rate, encoded


async def iinode_load_timed(
    store: HandleStore, rows: int, tmp: Path
) -> tuple[float, float, list[tuple[str, str, bytes]]]:
    """Rows per second of wall time and of process CPU time, and the rows written."""
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp, prefix="88.118.8")
    registrar = BulkRegistrar(HandleService(settings, store))
    encoded: list[tuple[str, str, bytes]] = []
    cpu = time.process_time()
    start = time.perf_counter()
    batch = []
    for n in range(rows):
        handle = HandleName("88.118.8", f"P{n:09d}")
        batch.append(
            registrar.encode(handle, [HandleValue(1, "URL", UrlData(f"http://f.cn/p/{n}"))])
        )
        if len(batch) == BATCH:
            await registrar.write_behind(batch)  # written while the next batch is encoded
            encoded.extend(batch)
            batch = []
    if batch:
        await registrar.write_behind(batch)
        encoded.extend(batch)
    await registrar.drain()
    wall = time.perf_counter() - start
    return rows / wall, rows / (time.process_time() - cpu), encoded


def raw_sqlite_timed(path: Path, rows: list[tuple[str, str, bytes]]) -> tuple[float, float]:
    """Rows per second of wall time and of CPU time."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE h (handle TEXT PRIMARY KEY, prefix TEXT NOT NULL, data BLOB NOT NULL) "
        "WITHOUT ROWID"
    )
    db.execute("CREATE INDEX h_p ON h (prefix, handle)")
    cpu = time.process_time()
    start = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR IGNORE INTO h VALUES (?, ?, ?)", rows[i : i + BATCH])
        db.execute("COMMIT")
    rate = len(rows) / (time.perf_counter() - start)
    cpu_rate = len(rows) / (time.process_time() - cpu)
    db.close()
    return rate, cpu_rate


async def raw_postgres(rows: list[tuple[str, str, bytes]]) -> float:
    import psycopg

    table = f"raw_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(PG, autocommit=True) as conn:
        await conn.execute(
            f"CREATE TABLE {table} "
            "(handle TEXT PRIMARY KEY, prefix TEXT NOT NULL, data BYTEA NOT NULL)"
        )
        await conn.execute(f"CREATE INDEX {table}_p ON {table} (prefix, handle)")
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            async with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY {table} (handle, prefix, data) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(["text", "text", "bytea"])
                for row in rows[i : i + BATCH]:
                    await copy.write_row(row)
        rate = len(rows) / (time.perf_counter() - start)
        await conn.execute(f"DROP TABLE {table}")
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    ours: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    raw: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    cpu_ours: list[float] = []
    cpu_raw: list[float] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            store = SQLiteStore(tmp / "ours.sqlite3")
            rate, cpu_rate, rows = await iinode_load_timed(store, args.rows, tmp)
            await store.close()
            ours["sqlite"].append(rate)
            cpu_ours.append(cpu_rate)
            raw_rate, raw_cpu_rate = raw_sqlite_timed(tmp / "raw.sqlite3", rows)
            raw["sqlite"].append(raw_rate)
            cpu_raw.append(raw_cpu_rate)
            if args.postgres:
                from iinode.storage.postgres import PostgresStore

                pg = await PostgresStore.open(PG, table=f"bench_{uuid.uuid4().hex[:10]}")
                rate, rows = await iinode_load(pg, args.rows, tmp)
                await pg.drop()
                await pg.close()
                ours["postgres"].append(rate)
                raw["postgres"].append(await raw_postgres(rows))
    for engine in ("sqlite", "postgres"):
        if ours[engine]:
            o, r = statistics.median(ours[engine]), statistics.median(raw[engine])
            print(
                f"{engine}: iinode {o:,.0f} ids/s, raw engine {r:,.0f} rows/s, ratio {o / r:.2f} "
                f"(median of {len(ours[engine])} runs, {args.rows:,} rows)"
            )
    o, r = statistics.median(cpu_ours), statistics.median(cpu_raw)
    print(
        f"sqlite CPU time: iinode {o:,.0f} ids/CPU-s, raw engine {r:,.0f} rows/CPU-s, "
        f"ratio {o / r:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
