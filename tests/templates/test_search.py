"""Search and reverse lookup on every backend (memory, SQLite, PostgreSQL), the index
plans (EXPLAIN), and ``GET /api/search``."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest

from iinode.identifiers import (
    AdminData,
    AdminPermission,
    BinaryData,
    HandleValue,
    IndexedHandle,
    Permissions,
    StringData,
    UrlData,
    encode_record,
)
from iinode.storage import HandleStore, SQLiteStore
from iinode.storage.postgres import PostgresStore
from iinode.storage.search import SearchQuery, UniqueValueTaken
from support import require_service
from templates.conftest import ADMIN, GOOD, TEMPLATE, product, publish_bearing, register

PG = "postgresql://postgres@127.0.0.1:5432/test"
LINK = '{"template":"88.1/template/t/1","unique":["serial"]}'


def record(
    n: int, *, colour: str = "red", serial: str | None = None, hidden: bool = False
) -> bytes:
    admin = AdminData(AdminPermission.all(), IndexedHandle.parse("300:0.NA/88.1"))
    values = [
        HandleValue(1, "URL", UrlData(f"http://f.cn/p/{n % 7}")),
        HandleValue(100, "HS_ADMIN", admin),  # binary data among the values: skipped
        HandleValue(2999, "blob", BinaryData(b"\xff\xfe")),  # not text: not indexed
        HandleValue(1001, "II_TEMPLATE", StringData(LINK)),
        HandleValue(2000, "colour", StringData(colour)),
        HandleValue(2001, "serial", StringData(serial or f"S{n:05d}")),
        HandleValue(
            2002,
            "price",
            StringData(str(n % 3)),
            permissions=Permissions.ADMIN_READ if hidden else Permissions.default(),
        ),
    ]
    return encode_record(values)


async def test_search_by_terms_with_keyset_pages(store: HandleStore) -> None:
    rows = [
        (f"88.1/{n:04d}", "88.1", record(n, colour="blue" if n % 2 else "red", hidden=n % 5 == 0))
        for n in range(300)
    ]
    rows.append(("88.2/x", "88.2", record(9999)))
    await store.bulk_put(rows)
    found = await store.search(SearchQuery((("attr:colour", "blue"),), limit=1000))
    assert found == [f"88.1/{n:04d}" for n in range(1, 300, 2)]
    # Keyset pages: each strictly after the last handle of the one before.
    pages: list[str] = []
    after = None
    while True:
        page = await store.search(SearchQuery((("attr:colour", "blue"),), after=after, limit=40))
        pages += page
        if len(page) < 40:
            break
        after = page[-1]
    assert pages == found
    both = SearchQuery((("attr:colour", "red"), ("url", "http://f.cn/p/3")), limit=1000)
    assert await store.search(both) == [
        f"88.1/{n:04d}" for n in range(300) if n % 2 == 0 and n % 7 == 3
    ] + ["88.2/x"]
    under = SearchQuery((("template", "88.1/template/t/1"),), prefix="88.2")
    assert await store.search(under) == ["88.2/x"]
    # Restricted values match only when asked for hidden ones too.
    price = SearchQuery((("attr:price", "0"),), prefix="88.1", limit=1000)
    public = await store.search(price)
    everything = await store.search(
        SearchQuery(price.terms, prefix="88.1", limit=1000, public_only=False)
    )
    assert public == [f"88.1/{n:04d}" for n in range(0, 300, 3) if n % 5]
    assert everything == [f"88.1/{n:04d}" for n in range(0, 300, 3)]
    # With only a prefix the search lists it.
    assert await store.search(SearchQuery(prefix="88.2")) == ["88.2/x"]


async def test_index_follows_every_write(store: HandleStore) -> None:
    await store.modify("88.1/a", lambda _old: record(1, colour="red"))
    red = SearchQuery((("attr:colour", "red"),))
    assert await store.search(red) == ["88.1/a"]
    await store.modify("88.1/a", lambda _old: record(1, colour="green"))
    assert await store.search(red) == []
    await store.bulk_put([("88.1/a", "88.1", record(1, colour="red"))], overwrite=True)
    assert await store.search(red) == ["88.1/a"]
    await store.bulk_put([("88.1/a", "88.1", record(1, colour="grey"))])  # skipped: kept
    assert await store.search(red) == ["88.1/a"]
    await store.modify("88.1/a", lambda _old: None)
    assert await store.search(red) == []


async def test_unique_values_are_refused_by_every_store(store: HandleStore) -> None:
    await store.modify("88.1/a", lambda _old: record(1, serial="ONE"))
    with pytest.raises(UniqueValueTaken):
        await store.modify("88.1/b", lambda _old: record(2, serial="ONE"))
    assert await store.get("88.1/b") is None
    with pytest.raises(UniqueValueTaken):
        await store.bulk_put([("88.1/c", "88.1", record(3, serial="ONE"))], overwrite=True)
    assert await store.get("88.1/c") is None
    assert await store.search(SearchQuery((("attr:serial", "ONE"),))) == ["88.1/a"]
    # Under another prefix the same value is free; the holder may rewrite itself.
    await store.modify("88.2/b", lambda _old: record(2, serial="ONE"))
    await store.modify("88.1/a", lambda _old: record(5, serial="ONE"))


def test_sqlite_searches_use_the_term_index(tmp_path: Path) -> None:
    import asyncio

    async def fill() -> None:
        s = SQLiteStore(tmp_path / "h.sqlite3")
        await s.bulk_put([(f"88.1/{n:05d}", "88.1", record(n)) for n in range(2000)])
        await s.close()

    asyncio.run(fill())
    from iinode.storage.search import search_sql

    db = sqlite3.connect(tmp_path / "h.sqlite3")
    db.execute("ANALYZE")
    query = SearchQuery(
        (("attr:colour", "red"), ("url", "http://f.cn/p/3")),
        prefix="88.1",
        after="88.1/00100",
        limit=10,
    )
    sql, args = search_sql(query, "handle_terms", "?")
    plan = " | ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", args))
    assert "SEARCH t0 USING PRIMARY KEY (field=? AND value=? AND handle>?)" in plan, plan
    assert "SEARCH t1 USING PRIMARY KEY (field=? AND value=? AND handle=?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no sort: the index gives handle order
    db.close()


async def test_sqlite_drives_a_search_by_its_sparsest_term(tmp_path: Path) -> None:
    from iinode.storage.sqlite import _SPAN_ROWS, _sparsest_first

    # Every record is red; one in seven has URL p/3; both have more rows than are read.
    count = _SPAN_ROWS * 15
    s = SQLiteStore(tmp_path / "h.sqlite3")
    await s.bulk_put([(f"88.1/{n:06d}", "88.1", record(n)) for n in range(count)])
    red, url = ("attr:colour", "red"), ("url", "http://f.cn/p/3")
    few = ("attr:serial", "S00010")
    db = sqlite3.connect(tmp_path / "h.sqlite3")
    try:
        assert _sparsest_first(db, SearchQuery((red, url))) == (url, red)
        assert _sparsest_first(db, SearchQuery((url, red))) == (url, red)
        assert _sparsest_first(db, SearchQuery((red, url, few))) == (few, url, red)
        # Ahead of a cursor near the end, both have fewer rows than are read.
        near_end = f"88.1/{count - 100:06d}"
        assert _sparsest_first(db, SearchQuery((red, url), after=near_end)) == (url, red)
    finally:
        db.close()
    page = await s.search(SearchQuery((red, url), limit=3))
    assert page == ["88.1/000003", "88.1/000010", "88.1/000017"]
    await s.close()


async def test_postgres_bulk_loads_refresh_the_planner_statistics() -> None:
    require_service("postgres")
    table = f"t_{uuid.uuid4().hex[:12]}"
    pg = await PostgresStore.open(PG, table=table)
    pg.analyze_after = 1500
    try:

        async def analysed() -> bool:
            async with pg._pool.connection() as conn:  # ANALYZE writes pg_stats at once
                cur = await conn.execute(
                    "SELECT count(*) FROM pg_stats WHERE tablename = %s", (f"{table}_terms",)
                )
                row = await cur.fetchone()
                return bool(row and row[0])

        await pg.bulk_put([(f"88.1/{n:05d}", "88.1", record(n)) for n in range(1000)])
        assert not await analysed()  # fewer rows than analyze_after: left to autovacuum
        await pg.bulk_put([(f"88.1/{n:05d}", "88.1", record(n)) for n in range(1000, 2000)])
        assert await analysed()
    finally:
        await pg.drop()
        await pg.close()


async def test_postgres_searches_use_the_term_index() -> None:
    require_service("postgres")
    from iinode.storage.search import search_sql

    table = f"t_{uuid.uuid4().hex[:12]}"
    pg = await PostgresStore.open(PG, table=table)
    try:
        await pg.bulk_put(
            [(f"88.1/{n:05d}", "88.1", record(n, colour=f"c{n % 4}")) for n in range(3000)]
        )
        one = SearchQuery((("attr:colour", "c3"),), after="88.1/01000", limit=10)
        two = SearchQuery(
            (("attr:colour", "c3"), ("url", "http://f.cn/p/3")), after="88.1/01000", limit=10
        )
        plans = []
        async with pg._pool.connection() as conn:
            await conn.execute(f"ANALYZE {table}_terms")
            await conn.execute("SET enable_seqscan = off")
            for query in (one, two):
                sql, args = search_sql(query, f"{table}_terms", "%s")
                cur = await conn.execute(f"EXPLAIN {sql}", args)
                plans.append("\n".join(r[0] for r in await cur.fetchall()))
            await conn.execute("RESET enable_seqscan")
        single, combined = plans
        # One term: a range of the primary key in handle order, read up to the limit.
        assert f"Index Scan using {table}_terms_pkey" in single, single
        assert "Sort" not in single, single
        # Two terms: both read from the primary key (the planner may join and sort the few).
        assert combined.count(f"{table}_terms_pkey") == 2, combined
        assert "Seq Scan" not in combined, combined
        expected = [f"88.1/{n:05d}" for n in range(1001, 3000) if n % 7 == 3 and n % 4 == 3]
        assert await pg.search(two) == expected[:10]
    finally:
        await pg.drop()
        await pg.close()


async def test_sqlite_store_made_before_the_index_is_indexed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE handles (handle TEXT PRIMARY KEY, prefix TEXT NOT NULL, data BLOB NOT NULL)"
        " WITHOUT ROWID"
    )
    db.execute("INSERT INTO handles VALUES ('88.1/old', '88.1', ?)", (record(1),))
    db.commit()
    db.close()
    s = SQLiteStore(path)
    try:
        assert await s.search(SearchQuery((("url", "http://f.cn/p/1"),))) == ["88.1/old"]
    finally:
        await s.close()


async def test_rest_search(client: httpx.AsyncClient) -> None:
    await publish_bearing(client)
    for n in range(5):
        body = product(url=f"http://shop.cn/{n % 2}", **{**GOOD, "serial": f"S{n}"})
        assert (await register(client, f"88.118.8/P{n}", body)).status_code == 201
    r = await client.get("/api/search", params={"template": TEMPLATE, "limit": "2"})
    assert r.json() == {"handles": ["88.118.8/P0", "88.118.8/P1"], "next": "88.118.8/P1"}
    r = await client.get("/api/search", params={"template": TEMPLATE, "after": "88.118.8/P3"})
    assert r.json() == {"handles": ["88.118.8/P4"], "next": None}
    r = await client.get("/api/search", params={"url": "http://shop.cn/1"})
    assert r.json()["handles"] == ["88.118.8/P1", "88.118.8/P3"]
    r = await client.get(
        "/api/search", params={"attr.serial": "S2", "attr.grade": "P6", "prefix": "88.118.8"}
    )
    assert r.json()["handles"] == ["88.118.8/P2"]
    for bad in ({}, {"limit": "0"}, {"nonsense": "1"}, {"template": "x"}, {"oid": "9.1"}):
        r = await client.get("/api/search", params=bad)
        assert r.status_code == 400, bad
    # A prefix alone lists it, which needs LIST_HANDLES.
    assert (await client.get("/api/search", params={"prefix": "88.118.8"})).status_code == 401
    r = await client.get("/api/search", params={"prefix": "88.118.8", "limit": "3"}, auth=ADMIN)
    assert r.json()["handles"][0] == "88.118.8/P0"


def test_terms_from_values_equal_terms_from_record_bytes() -> None:
    from iinode.identifiers import decode_record
    from iinode.storage.search import record_terms, values_terms

    for n in range(20):
        raw = record(n, colour=["red", "", "x" * 600][n % 3], hidden=bool(n % 2))
        values = decode_record(raw)
        assert values_terms(values) == record_terms(raw)
        assert values_terms(values[:1]) == record_terms(encode_record(values[:1]))


async def test_bulk_put_with_given_terms_indexes_only_written_rows(store: HandleStore) -> None:
    from iinode.identifiers import decode_record
    from iinode.storage.search import values_terms

    await store.modify("88.1/kept", lambda _old: record(1, colour="old"))
    rows = [("88.1/kept", "88.1", record(2, colour="new"))] + [
        (f"88.1/n{n}", "88.1", record(10 + n, colour="new")) for n in range(3)
    ]
    terms = {h: values_terms(decode_record(raw)) for h, _, raw in rows}
    result = await store.bulk_put(rows, terms=terms)
    assert (result.written, result.skipped) == (3, 1)
    assert await store.search(SearchQuery((("attr:colour", "new"),))) == [
        "88.1/n0",
        "88.1/n1",
        "88.1/n2",
    ]
    assert await store.search(SearchQuery((("attr:colour", "old"),))) == ["88.1/kept"]
    await store.bulk_put(rows[:1], overwrite=True, terms=terms)
    assert await store.search(SearchQuery((("attr:colour", "old"),))) == []
    clash = [("88.1/z", "88.1", record(99, serial="S00010"))]  # n0's serial
    with pytest.raises(UniqueValueTaken):
        await store.bulk_put(clash, terms={"88.1/z": values_terms(decode_record(clash[0][2]))})
    assert await store.get("88.1/z") is None


def test_a_text_given_twice_is_one_term_public_and_unique_if_either_is() -> None:
    from iinode.storage.search import record_terms, values_terms

    hidden = Permissions.ADMIN_READ
    values = [
        HandleValue(1, "URL", UrlData("http://f.cn/a"), permissions=hidden),
        HandleValue(2, "URL", UrlData("http://f.cn/a")),
        HandleValue(3, "II_OID", StringData("1.2.156.1")),
        HandleValue(4, "II_OID", StringData("1.2.156.1"), permissions=hidden),
        HandleValue(1001, "II_TEMPLATE", StringData(LINK)),
        HandleValue(2000, "serial", StringData("S1"), permissions=hidden),
        HandleValue(2001, "colour", StringData("red")),
        HandleValue(2002, "serial", StringData("S1")),
        HandleValue(2003, "colour", StringData("")),  # empty: no term
    ]
    expected = [
        ("url", "http://f.cn/a", True, False),
        ("oid", "1.2.156.1", True, False),
        ("template", "88.1/template/t/1", True, False),
        ("attr:serial", "S1", True, True),
        ("attr:colour", "red", True, False),
    ]
    assert values_terms(values) == expected
    assert record_terms(encode_record(values)) == expected
    # One of each: the same terms, without the merging.
    assert values_terms([values[0], values[2], *values[4:7]]) == [
        ("url", "http://f.cn/a", False, False),
        ("oid", "1.2.156.1", True, False),
        ("template", "88.1/template/t/1", True, False),
        ("attr:serial", "S1", False, True),
        ("attr:colour", "red", True, False),
    ]
