"""The SQLite search index (``storage.sqlite_terms``): it always equals the terms of the
stored records, whatever wrote them; files of the earlier layout are rebuilt on open;
old terms are deleted through the primary key."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from iinode.identifiers import (
    HandleValue,
    Permissions,
    StringData,
    UrlData,
    decode_record,
    encode_record,
)
from iinode.storage import SQLiteStore
from iinode.storage.search import SearchQuery, UniqueValueTaken, record_terms, values_terms
from iinode.storage.sqlite_terms import CONNECTION_SCHEMA, TERMS_TABLE, TERMS_UNIQUE

LINK = '{"template":"88.1/template/t/1","unique":["serial"]}'


def record(n: int, colour: str = "red", *, hidden: bool = False) -> bytes:
    return encode_record(
        [
            HandleValue(1, "URL", UrlData(f"http://f.cn/p/{n}")),
            HandleValue(1001, "II_TEMPLATE", StringData(LINK)),
            HandleValue(2000, "colour", StringData(colour)),
            HandleValue(2001, "serial", StringData(f"S{n:05d}")),
            HandleValue(
                2002,
                "price",
                StringData(str(n % 3)),
                permissions=Permissions.ADMIN_READ if hidden else Permissions.default(),
            ),
        ]
    )


def index_of(path: Path) -> set[tuple[str, str, str, str, int, int]]:
    db = sqlite3.connect(path)
    try:
        return set(
            db.execute("SELECT field, value, handle, prefix, public, uniq FROM handle_terms")
        )
    finally:
        db.close()


def expected_index(path: Path) -> set[tuple[str, str, str, str, int, int]]:
    db = sqlite3.connect(path)
    try:
        return {
            (f, v, handle, prefix, int(p), int(u))
            for handle, prefix, data in db.execute("SELECT handle, prefix, data FROM handles")
            for f, v, p, u in record_terms(bytes(data))
        }
    finally:
        db.close()


def names_in(path: Path, kind: str) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = ?", (kind,))}
    finally:
        db.close()


def given_terms(rows: list[tuple[str, str, bytes]]) -> dict[str, list[tuple[str, str, bool, bool]]]:
    return {h: values_terms(decode_record(data)) for h, _, data in rows}


async def test_the_index_equals_the_records_terms_after_every_kind_of_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.sqlite3"
    store = SQLiteStore(path)
    try:
        for n in range(6):
            await store.modify(f"88.1/{n}", lambda _old, n=n: record(n))
        await store.modify("88.1/1", lambda _old: record(1, "green", hidden=True))
        await store.modify("88.1/2", lambda _old: None)
        # Given terms: skipped and new rows, then overwritten ones.
        rows = [(f"88.1/{n}", "88.1", record(n, "blue")) for n in (3, 4, 10, 11)]
        assert (await store.bulk_put(rows, terms=given_terms(rows))).written == 2
        rows = [(f"88.1/{n}", "88.1", record(n, "pink")) for n in (0, 3, 12)]
        await store.bulk_put(rows, overwrite=True, terms=given_terms(rows))
        # No terms (a handle twice: the triggers), skipping and overwriting.
        rows = [(f"88.1/{n}", "88.1", record(n, "grey")) for n in (4, 4, 13)]
        await store.bulk_put(rows)
        rows = [(f"88.1/{n}", "88.1", record(n, c)) for n, c in ((5, "a"), (5, "b"), (14, "c"))]
        await store.bulk_put(rows, overwrite=True)
        await store.modify("88.1/11", lambda _old: None)
        assert await store.search(SearchQuery((("attr:colour", "red"),))) == ["88.1/4"]
        assert await store.search(SearchQuery((("attr:colour", "b"),))) == ["88.1/5"]
    finally:
        await store.close()
    assert index_of(path) == expected_index(path)
    assert len(index_of(path)) == 9 * 5  # nine records of five terms


async def test_a_failed_bulk_load_leaves_the_triggers_in_place(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = SQLiteStore(path)
    try:
        await store.modify("88.1/a", lambda _old: record(1))
        clash = [("88.1/b", "88.1", record(2)), ("88.1/c", "88.1", record(1))]  # a's serial
        with pytest.raises(UniqueValueTaken):
            await store.bulk_put(clash, terms=given_terms(clash))
        assert await store.get("88.1/b") is None
        # The next writes are indexed by the triggers, which the failed load dropped.
        await store.modify("88.1/a", lambda _old: record(1, "green"))
        await store.modify("88.1/d", lambda _old: record(4))
        with pytest.raises(UniqueValueTaken):
            await store.modify("88.1/e", lambda _old: record(4))
    finally:
        await store.close()
    assert index_of(path) == expected_index(path)
    assert len(index_of(path)) == 2 * 5


def make_earlier_layout(path: Path) -> None:
    """A file as the layout with an index by handle left it, with one stale term and
    a record whose terms are missing."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE handles (handle TEXT PRIMARY KEY, prefix TEXT NOT NULL, data BLOB NOT NULL)"
        " WITHOUT ROWID"
    )
    db.execute(TERMS_TABLE)
    db.execute("CREATE INDEX handle_terms_by_handle ON handle_terms (handle)")
    db.execute(TERMS_UNIQUE)
    db.executemany(
        "INSERT INTO handles VALUES (?, '88.1', ?)", [("88.1/a", record(1)), ("88.1/b", record(2))]
    )
    db.executemany(
        "INSERT INTO handle_terms VALUES (?, ?, ?, '88.1', ?, ?)",
        [(f, v, "88.1/a", p, u) for f, v, p, u in record_terms(record(1))]
        + [("url", "http://gone.cn/", "88.1/gone", 1, 0)],
    )
    db.commit()
    db.close()


async def test_a_file_of_the_earlier_layout_is_rebuilt_once_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    make_earlier_layout(path)
    store = SQLiteStore(path)
    try:
        assert await store.search(SearchQuery((("url", "http://gone.cn/"),))) == []
        assert await store.search(SearchQuery((("url", "http://f.cn/p/2"),))) == ["88.1/b"]
        await store.modify("88.1/a", lambda _old: None)  # through the primary key
    finally:
        await store.close()
    assert "handle_terms_by_handle" not in names_in(path, "index")
    assert index_of(path) == expected_index(path) != set()
    # Opening a file of this layout rebuilds nothing: a row put by hand stays.
    db = sqlite3.connect(path)
    db.execute("INSERT INTO handle_terms VALUES ('url', 'mark', '88.1/zz', '88.1', 1, 0)")
    db.commit()
    db.close()
    SQLiteStore(path)._writer.close()
    assert ("url", "mark", "88.1/zz", "88.1", 1, 0) in index_of(path)


async def test_an_earlier_program_reopening_the_file_brings_a_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = SQLiteStore(path)
    await store.modify("88.1/a", lambda _old: record(1))
    await store.close()
    db = sqlite3.connect(path)  # what the earlier layout's open did, and a write of its own
    db.execute("CREATE INDEX IF NOT EXISTS handle_terms_by_handle ON handle_terms (handle)")
    db.execute("INSERT INTO handle_terms VALUES ('url', 'stale', '88.1/a', '88.1', 1, 0)")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    await store.close()
    assert "handle_terms_by_handle" not in names_in(path, "index")
    assert index_of(path) == expected_index(path)


def test_old_terms_are_deleted_through_the_primary_key() -> None:
    db = sqlite3.connect(":memory:")
    db.create_function("iinode_terms", 1, lambda _data: "[]")
    db.execute(TERMS_TABLE)
    delete = CONNECTION_SCHEMA.split("AFTER DELETE ON main.handles\nBEGIN")[1].split("\nEND")[0]
    statement = delete.strip().rstrip(";").replace("old.handle", "?").replace("old.data", "?")
    plan = " | ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {statement}", ("h", b"")))
    assert "SEARCH handle_terms USING PRIMARY KEY (field=? AND value=? AND handle=?)" in plan
    assert "SCAN handle_terms" not in plan


async def test_opening_a_store_takes_no_write_lock(tmp_path: Path) -> None:
    """A node starting while another process holds the write lock (a long bulk load)
    opens at once instead of waiting for it."""
    path = tmp_path / "h.sqlite3"
    store = SQLiteStore(path)
    await store.modify("88.1/a", lambda _old: record(1))
    await store.close()
    loader = sqlite3.connect(path, isolation_level=None)
    loader.execute("BEGIN IMMEDIATE")
    try:
        other = SQLiteStore(path, busy_timeout=0.2)
        assert await other.get("88.1/a") == record(1)
        await other.close()
    finally:
        loader.execute("ROLLBACK")
        loader.close()
