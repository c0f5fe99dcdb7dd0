"""One suite, every backend: memory, SQLite, PostgreSQL."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from iinode.errors import HandleAlreadyExists
from iinode.storage import HandleStore, MemoryStore, SQLiteStore
from iinode.storage.postgres import PostgresStore
from support import require_service


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HandleStore]:
    if request.param == "memory":
        s: HandleStore = MemoryStore()
    elif request.param == "sqlite":
        s = SQLiteStore(tmp_path / "h.sqlite3")
    else:
        require_service("postgres")
        table = f"t_{uuid.uuid4().hex[:12]}"
        pg = await PostgresStore.open("postgresql://postgres@127.0.0.1:5432/test", table=table)
        s = pg
    yield s
    if isinstance(s, PostgresStore):
        await s.drop()
    await s.close()


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
