"""Walking a whole prefix: numbered pages (OFFSET + count) against keyset pages.

    .venv/bin/python bench/store_listing.py [--handles 200000] [--page 1000] [--runs 3]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Fills a SQLite store (and a PostgreSQL table, when the DSN answers) with
``--handles`` handles under one prefix, then reads them all, ``--page`` at a
time, with ``list_handles(page=n)`` (what listings did before) and with
``list_after`` (keyset).  Reports the median seconds of ``--runs`` walks and
the ratio offset/keyset; the keyset walk is the reference.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from iinode.errors import StorageError
from iinode.storage import HandleStore, SQLiteStore
from iinode.storage.postgres import PostgresStore


async def walk_offset(store: HandleStore, page_size: int) -> int:
    seen = page = 0
    while True:
        listing = await store.list_handles("88.1", page=page, page_size=page_size)
        seen += len(listing.handles)
        page += 1
        if len(listing.handles) < page_size:
            return seen


async def walk_keyset(store: HandleStore, page_size: int) -> int:
    seen = 0
    after: str | None = None
    while True:
        handles = await store.list_after("88.1", after, limit=page_size)
        seen += len(handles)
        if len(handles) < page_size:
            return seen
        after = handles[-1]


async def median(runs: int, walk: Callable[[], Awaitable[int]], expected: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        assert await walk() == expected
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def measure(name: str, store: HandleStore, n: int, page: int, runs: int) -> None:
    rows = [(f"88.1/{i:08d}", "88.1", b"\x00" * 40) for i in range(n)]
    for start in range(0, n, 50_000):
        await store.bulk_put(rows[start : start + 50_000])
    keyset = await median(runs, lambda: walk_keyset(store, page), n)
    offset = await median(runs, lambda: walk_offset(store, page), n)
    print(
        f"{name:<10} {n:>9} handles, pages of {page}: keyset {keyset:7.3f} s, "
        f"offset+count {offset:7.3f} s, ratio {offset / keyset:5.1f}x"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handles", type=int, default=200_000)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "list.sqlite3", synchronous="OFF")
        try:
            await measure("SQLite", store, args.handles, args.page, args.runs)
        finally:
            await store.close()
    try:
        pg = await PostgresStore.open(args.postgres, table=f"bench_{uuid.uuid4().hex[:10]}")
    except StorageError as exc:
        print(f"PostgreSQL skipped: {exc}")
        return
    try:
        await measure("PostgreSQL", pg, args.handles, args.page, args.runs)
    finally:
        await pg.drop()
        await pg.close()


if __name__ == "__main__":
    asyncio.run(main())
