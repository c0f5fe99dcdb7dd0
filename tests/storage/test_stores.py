"""One suite, every backend: memory, SQLite, PostgreSQL."""

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from iinode.errors import HandleAlreadyExists, StorageError, ValueInvalid
from iinode.storage import HandlePage, HandleStore, SQLiteStore
from iinode.storage.postgres import PostgresStore
from support import STORE_KINDS, empty_store, require_service


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HandleStore]:
    async with empty_store(request.param, tmp_path) as s:
        yield s


async def test_modify_creates_reads_and_deletes(store: HandleStore) -> None:
    assert await store.get("88.1/a") is None
    assert await store.modify("88.1/a", lambda old: b"one") == b"one"
    assert await store.get("88.1/a") == b"one"
    await store.modify("88.1/a", lambda old: (old or b"") + b"+two")
    assert await store.get("88.1/a") == b"one+two"
    await store.modify("88.1/a", lambda old: None)
    assert await store.get("88.1/a") is None
    assert await store.count() == 0


async def test_a_failing_mutation_writes_nothing(store: HandleStore) -> None:
    await store.modify("88.1/a", lambda old: b"keep")

    def refuse(old: bytes | None) -> bytes | None:
        raise HandleAlreadyExists("exists")

    with pytest.raises(HandleAlreadyExists):
        await store.modify("88.1/a", refuse)
    with pytest.raises(HandleAlreadyExists):
        await store.modify("88.1/new", refuse)
    assert await store.get("88.1/a") == b"keep"
    assert await store.get("88.1/new") is None


async def test_bulk_put_skips_or_overwrites(store: HandleStore) -> None:
    rows = [(f"88.1/{n:05d}", "88.1", f"v{n}".encode()) for n in range(2500)]
    result = await store.bulk_put(rows)
    assert (result.written, result.skipped) == (2500, 0)
    again = await store.bulk_put([("88.1/00001", "88.1", b"new"), ("88.1/x", "88.1", b"x")])
    assert (again.written, again.skipped) == (1, 1)
    assert await store.get("88.1/00001") == b"v1"
    await store.bulk_put([("88.1/00001", "88.1", b"new")], overwrite=True)
    assert await store.get("88.1/00001") == b"new"
    assert await store.count() == 2501


async def test_list_handles_pages_by_prefix(store: HandleStore) -> None:
    rows = [(f"88.1/{n:03d}", "88.1", b"v") for n in range(25)] + [("88.2/other", "88.2", b"v")]
    await store.bulk_put(rows)
    first = await store.list_handles("88.1", page=0, page_size=10)
    last = await store.list_handles("88.1", page=2, page_size=10)
    assert first.total == 25
    assert first.handles == [f"88.1/{n:03d}" for n in range(10)]
    assert last.handles == [f"88.1/{n:03d}" for n in range(20, 25)]
    assert (await store.list_handles("88.3")).total == 0
    assert (await store.list_handles("88.1", page=1, page_size=10)).total == 25  # a full page
    assert (await store.list_handles("88.1", page=5, page_size=10)) == HandlePage([], 25)
    assert (await store.list_handles("88.1", page=1, page_size=25)) == HandlePage([], 25)


async def test_list_after_walks_a_prefix_by_keyset(store: HandleStore) -> None:
    names = [f"88.1/{n:04d}" for n in range(2345)]
    await store.bulk_put([(h, "88.1", b"v") for h in reversed(names)])
    await store.bulk_put([("88.10/0000", "88.10", b"v"), ("88.2/0000", "88.2", b"v")])
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await store.list_after("88.1", after, limit=500)
        assert len(page) <= 500
        seen += page
        if len(page) < 500:
            break
        after = page[-1]
    assert seen == names
    assert await store.list_after("88.1", "88.1/0100", limit=3) == names[101:104]
    assert await store.list_after("88.1", "88.1/0100x", limit=2) == names[101:103]
    assert await store.list_after("88.1", "88.1/0", limit=1) == ["88.1/0000"]
    assert await store.list_after("88.1", names[-1]) == []
    assert await store.list_after("88.3") == []


async def test_listings_sort_by_code_point_on_every_backend(store: HandleStore) -> None:
    """Byte order (upper case before lower, non-ASCII last), whatever the database collation."""
    names = ["88.1/a", "88.1/B", "88.1/\u00e9", "88.1/Z", "88.1/_x", "88.1/a-1", "88.1/A1"]
    await store.bulk_put([(h, "88.1", b"v") for h in names])
    assert await store.list_after("88.1") == sorted(names)
    assert (await store.list_handles("88.1")).handles == sorted(names)
    assert await store.list_after("88.1", "88.1/Z", limit=2) == ["88.1/_x", "88.1/a"]


async def test_list_after_sees_writes_between_pages(store: HandleStore) -> None:
    await store.bulk_put([(f"88.1/{n}", "88.1", b"v") for n in "bdf"])
    first = await store.list_after("88.1", limit=2)
    assert first == ["88.1/b", "88.1/d"]
    await store.modify("88.1/a", lambda old: b"v")  # before the cursor: not seen
    await store.modify("88.1/e", lambda old: b"v")  # after it: seen
    await store.modify("88.1/f", lambda old: None)
    assert await store.list_after("88.1", first[-1], limit=2) == ["88.1/e"]


@pytest.mark.parametrize("limit", [0, -1])
async def test_list_after_refuses_a_useless_limit(store: HandleStore, limit: int) -> None:
    with pytest.raises(ValueInvalid):
        await store.list_after("88.1", limit=limit)


async def test_get_many_reads_what_exists_in_batches(store: HandleStore) -> None:
    rows = [(f"88.1/{n:04d}", "88.1", f"v{n}".encode()) for n in range(1200)]
    await store.bulk_put(rows)
    assert await store.get_many([]) == {}
    wanted = [f"88.1/{n:04d}" for n in range(0, 1200, 2)] + ["88.1/missing", "88.2/0001"]
    found = await store.get_many(wanted)
    assert found == {f"88.1/{n:04d}": f"v{n}".encode() for n in range(0, 1200, 2)}
    assert await store.get_many(["88.1/0003", "88.1/0003"]) == {"88.1/0003": b"v3"}


async def test_sqlite_write_survives_reopen(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "d.sqlite3")
    await s.modify("88.1/a", lambda old: b"durable")
    await s.close()
    again = SQLiteStore(tmp_path / "d.sqlite3")
    assert await again.get("88.1/a") == b"durable"
    await again.close()


@pytest.mark.parametrize("overwrite", [False, True])
async def test_a_handle_twice_in_one_load_keeps_the_row_sqlite_keeps(
    store: HandleStore, overwrite: bool
) -> None:
    """Overwriting keeps the last of duplicate rows, otherwise the first (as SQLite does)."""
    await store.bulk_put([("88.1/old", "88.1", b"before")])
    rows = [
        ("88.1/dup", "88.1", b"first"),
        ("88.1/old", "88.1", b"one"),
        ("88.1/other", "88.1", b"x"),
        ("88.1/dup", "88.1", b"second"),
        ("88.1/old", "88.1", b"two"),
        ("88.1/dup", "88.1", b"last"),
    ]
    await store.bulk_put(rows, overwrite=overwrite)
    assert await store.get("88.1/dup") == (b"last" if overwrite else b"first")
    assert await store.get("88.1/old") == (b"two" if overwrite else b"before")
    assert await store.count() == 3


@pytest.fixture(params=["sqlite", "postgres"])
async def broken(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HandleStore]:
    """A store whose table was dropped behind its back (a driver error on every call)."""
    if request.param == "sqlite":
        s: HandleStore = SQLiteStore(tmp_path / "b.sqlite3")
        await s.modify("88.1/a", lambda old: b"v")
        other = sqlite3.connect(tmp_path / "b.sqlite3")
        other.execute("DROP TABLE handles")
        other.close()
        yield s
        await s.close()
    else:
        require_service("postgres")
        pg = await PostgresStore.open(
            "postgresql://postgres@127.0.0.1:5432/test", table=f"t_{uuid.uuid4().hex[:12]}"
        )
        await pg.modify("88.1/a", lambda old: b"v")
        await pg.drop()
        yield pg
        await pg.close()


async def test_driver_errors_leave_as_storage_errors(broken: HandleStore) -> None:
    calls = [
        lambda: broken.get("88.1/a"),
        lambda: broken.get_many(["88.1/a"]),
        lambda: broken.list_handles("88.1"),
        lambda: broken.list_after("88.1", "88.1/a"),
        broken.count,
        lambda: broken.modify("88.1/a", lambda old: b"w"),
        lambda: broken.bulk_put([("88.1/b", "88.1", b"v")]),
    ]
    for call in calls:
        with pytest.raises(StorageError):
            await call()


async def test_sqlite_writes_wait_for_another_process_off_the_event_loop(tmp_path: Path) -> None:
    """A write lock held elsewhere (a bulk load) delays our writes, never our loop or reads."""
    path = tmp_path / "w.sqlite3"
    s = SQLiteStore(path)
    await s.modify("88.1/a", lambda old: b"v")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO handles VALUES ('88.1/held', '88.1', x'00')")
    release = threading.Timer(1.0, lambda: holder.execute("COMMIT"))
    gaps: list[float] = []
    try:
        release.start()
        write = asyncio.create_task(s.modify("88.1/b", lambda old: b"w"))
        last = time.perf_counter()
        while not write.done():
            assert await s.get("88.1/a") == b"v"  # reads go on meanwhile
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
        await write
    finally:
        release.join()
        holder.close()
    assert sum(gaps) > 0.8  # the write did wait for the lock...
    assert max(gaps) < 0.3, max(gaps)  # ...while the loop kept turning
    assert await s.get("88.1/b") == b"w"
    assert await s.get("88.1/held") == b"\x00"
    await s.close()


async def test_postgres_keyset_page_is_an_index_range_scan() -> None:
    """The C-collated index serves ``list_after`` without sorting the prefix."""
    require_service("postgres")
    table = f"t_{uuid.uuid4().hex[:12]}"
    pg = await PostgresStore.open("postgresql://postgres@127.0.0.1:5432/test", table=table)
    try:
        await pg.bulk_put([(f"88.1/{n:05d}", "88.1", b"v") for n in range(3000)])
        async with pg._pool.connection() as conn:
            await conn.execute("SET enable_seqscan = off")
            await conn.execute(f"ANALYZE {table}")
            cur = await conn.execute(
                f"EXPLAIN SELECT handle FROM {table} "
                'WHERE prefix = %s AND handle COLLATE "C" > %s '
                'ORDER BY handle COLLATE "C" LIMIT 10',
                ("88.1", "88.1/01000"),
            )
            plan = "\n".join(r[0] for r in await cur.fetchall())
            await conn.execute("RESET enable_seqscan")
        assert f"{table}_by_prefix_c" in plan, plan
        assert "Sort" not in plan, plan
        assert await pg.list_after("88.1", "88.1/01000", limit=2) == ["88.1/01001", "88.1/01002"]
    finally:
        await pg.drop()
        await pg.close()
