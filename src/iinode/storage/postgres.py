"""PostgreSQL store (psycopg 3, async connection pool) for production nodes.

Writes to one handle are serialised with a transaction-scoped advisory lock on
the handle, so a concurrent create of the same name is refused rather than
lost.  Bulk loads stream rows with ``COPY`` into a temporary table and merge
them with one ``INSERT … ON CONFLICT``; a handle given twice in one load keeps
its last row when overwriting and its first otherwise, as SQLite does.  Every
driver error (and a pool timeout) leaves as ``StorageError``.

The search index (``storage.search``) is the table ``<table>_terms``, written in the
same transaction as each record (and, for bulk loads, from the rows the merge wrote).

Listings sort handles ``COLLATE "C"`` (byte order, as SQLite and the memory
store do, whatever the database's collation) over an index in that order, so a
keyset page (``list_after``) is one index range scan.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from iinode.errors import StorageError
from iinode.storage.base import BulkResult, HandlePage, Mutation, check_limit, page_total
from iinode.storage.search import (
    BulkTerms,
    SearchQuery,
    UniqueValueTaken,
    record_terms,
    search_sql,
)

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")


@asynccontextmanager
async def _converted(what: str) -> AsyncIterator[None]:
    try:
        yield
    except (psycopg.Error, TimeoutError) as exc:
        raise StorageError(f"PostgreSQL {what} failed: {exc}") from exc


async def _open_terms(conn: psycopg.AsyncConnection[Any], table: str) -> None:
    """Create the search index of ``table`` (``storage.search``); records stored before it
    existed are indexed once, here."""
    cur = await conn.execute("SELECT to_regclass(%s)", (f"{table}_terms",))
    row = await cur.fetchone()
    existed = row is not None and row[0] is not None
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {table}_terms ("
        ' field TEXT COLLATE "C" NOT NULL, value TEXT COLLATE "C" NOT NULL,'
        ' handle TEXT COLLATE "C" NOT NULL, prefix TEXT NOT NULL,'
        " public BOOLEAN NOT NULL, uniq BOOLEAN NOT NULL, PRIMARY KEY (field, value, handle))"
    )
    await conn.execute(
        f"CREATE INDEX IF NOT EXISTS {table}_terms_by_handle ON {table}_terms (handle)"
    )
    await conn.execute(
        f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_terms_unique "
        f"ON {table}_terms (prefix, field, value) WHERE uniq"
    )
    if existed:
        return
    async with conn.cursor(name="iinode_terms_backfill") as records:
        await records.execute(f"SELECT handle, prefix, data FROM {table}")
        async with conn.cursor() as out:
            while batch := await records.fetchmany(5000):
                rows = [
                    (f, v, h, p, pub, u)
                    for h, p, d in batch
                    for f, v, pub, u in record_terms(bytes(d))
                ]
                if rows:
                    await out.executemany(
                        f"INSERT INTO {table}_terms (field, value, handle, prefix, public, uniq) "
                        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        rows,
                    )


class PostgresStore:
    #: Rows bulk loads may write before the tables' statistics are refreshed.  The
    #: planner picks which search term drives from them: on a freshly loaded table,
    #: before autovacuum's analyse, it guessed a handful of rows for a term held by a
    #: third of them and hash-joined two conditions in 936 ms instead of 5 ms.
    analyze_after = 50_000

    def __init__(self, pool: AsyncConnectionPool, table: str) -> None:
        self._pool = pool
        self._t = table
        self._unanalysed = 0

    @classmethod
    async def open(cls, dsn: str, *, table: str = "handles", max_size: int = 8) -> PostgresStore:
        if not _IDENT.match(table):
            raise StorageError(f"table name {table!r} is not a plain lower-case identifier")
        pool = AsyncConnectionPool(dsn, min_size=1, max_size=max_size, open=False)
        try:
            await pool.open(wait=True, timeout=10.0)
            async with pool.connection() as conn:
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} ("
                    " handle TEXT PRIMARY KEY, prefix TEXT NOT NULL, data BYTEA NOT NULL)"
                )
                await conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {table}_by_prefix_c "
                    f'ON {table} (prefix, handle COLLATE "C")'
                )
                # The index of earlier versions (database collation) serves no listing now.
                await conn.execute(f"DROP INDEX IF EXISTS {table}_by_prefix")
                await _open_terms(conn, table)
        except (psycopg.Error, TimeoutError) as exc:
            await pool.close()
            raise StorageError(f"cannot open PostgreSQL store: {exc}") from exc
        return cls(pool, table)

    async def get(self, handle: str) -> bytes | None:
        async with _converted(f"read of {handle!r}"), self._pool.connection() as conn:
            cur = await conn.execute(f"SELECT data FROM {self._t} WHERE handle = %s", (handle,))
            row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def get_many(self, handles: Sequence[str]) -> dict[str, bytes]:
        if not handles:
            return {}
        async with _converted("batched read"), self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT handle, data FROM {self._t} WHERE handle = ANY(%s)", (list(handles),)
            )
            rows = await cur.fetchall()
        return {h: bytes(d) for h, d in rows}

    async def modify(self, handle: str, mutation: Mutation) -> bytes | None:
        async with (
            _converted(f"write of {handle!r}"),
            self._pool.connection() as conn,
            conn.transaction(),
        ):
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (handle,))
            cur = await conn.execute(f"SELECT data FROM {self._t} WHERE handle = %s", (handle,))
            row = await cur.fetchone()
            new = mutation(None if row is None else bytes(row[0]))
            if new is None:
                await conn.execute(f"DELETE FROM {self._t} WHERE handle = %s", (handle,))
            else:
                await conn.execute(
                    f"INSERT INTO {self._t} (handle, prefix, data) VALUES (%s, %s, %s) "
                    "ON CONFLICT (handle) DO UPDATE SET data = excluded.data",
                    (handle, handle.partition("/")[0], new),
                )
            await self._reindex(conn, handle, new)
        return new

    async def _reindex(
        self, conn: psycopg.AsyncConnection[Any], handle: str, new: bytes | None
    ) -> None:
        """Replace the search terms of ``handle`` (``storage.search``) in its write's
        transaction."""
        await conn.execute(f"DELETE FROM {self._t}_terms WHERE handle = %s", (handle,))
        terms = record_terms(new) if new is not None else []
        if not terms:
            return
        prefix = handle.partition("/")[0]
        try:
            async with conn.transaction(), conn.cursor() as cur:
                await cur.executemany(
                    f"INSERT INTO {self._t}_terms (field, value, handle, prefix, public, uniq) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    [(f, v, handle, prefix, p, u) for f, v, p, u in terms],
                )
        except psycopg.errors.UniqueViolation:
            raise UniqueValueTaken(
                f"a unique attribute value of {handle} is already held by another identifier "
                f"under {prefix}"
            ) from None

    async def bulk_put(
        self,
        rows: Iterable[tuple[str, str, bytes]],
        *,
        overwrite: bool = False,
        terms: BulkTerms | None = None,
    ) -> BulkResult:
        conflict = (
            "ON CONFLICT (handle) DO UPDATE SET data = excluded.data"
            if overwrite
            else "ON CONFLICT (handle) DO NOTHING"
        )
        # A duplicate handle keeps its last row when overwriting, its first otherwise.
        order = "DESC" if overwrite else "ASC"
        total = 0
        async with (
            _converted("bulk load"),
            self._pool.connection() as conn,
            conn.transaction(),
        ):
            await conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS iinode_bulk_rows "
                "(handle TEXT, prefix TEXT, data BYTEA, seq BIGINT) ON COMMIT DELETE ROWS"
            )
            await conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS iinode_bulk_terms (seq BIGINT, field TEXT, "
                "value TEXT, public BOOLEAN, uniq BOOLEAN) ON COMMIT DELETE ROWS"
            )
            await conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS iinode_bulk_written "
                "(handle TEXT, prefix TEXT, seq BIGINT) ON COMMIT DELETE ROWS"
            )
            seq_terms: list[tuple[int, str, str, bool, bool]] = []
            async with conn.cursor() as cur:
                async with cur.copy(
                    "COPY iinode_bulk_rows (handle, prefix, data, seq) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["text", "text", "bytea", "int8"])
                    for handle, prefix, data in rows:
                        await copy.write_row((handle, prefix, data, total))
                        given = terms.get(handle) if terms is not None else None
                        found = record_terms(data) if given is None else given
                        seq_terms.extend((total, f, v, p, u) for f, v, p, u in found)
                        total += 1
                if seq_terms:
                    async with cur.copy(
                        "COPY iinode_bulk_terms (seq, field, value, public, uniq) "
                        "FROM STDIN (FORMAT BINARY)"
                    ) as copy:
                        copy.set_types(["int8", "text", "text", "bool", "bool"])
                        for term in seq_terms:
                            await copy.write_row(term)
                await cur.execute(
                    "WITH chosen AS (SELECT DISTINCT ON (handle) handle, prefix, data, seq "
                    f"FROM iinode_bulk_rows ORDER BY handle, seq {order}), "
                    f"written AS (INSERT INTO {self._t} (handle, prefix, data) "
                    f"SELECT handle, prefix, data FROM chosen {conflict} RETURNING handle) "
                    "INSERT INTO iinode_bulk_written (handle, prefix, seq) "
                    "SELECT c.handle, c.prefix, c.seq FROM chosen AS c JOIN written USING (handle)"
                )
                written = cur.rowcount
                if overwrite:
                    await cur.execute(
                        f"DELETE FROM {self._t}_terms WHERE handle IN "
                        "(SELECT handle FROM iinode_bulk_written)"
                    )
                if seq_terms:
                    try:
                        async with conn.transaction():
                            await cur.execute(
                                f"INSERT INTO {self._t}_terms "
                                "(field, value, handle, prefix, public, uniq) "
                                "SELECT b.field, b.value, w.handle, w.prefix, b.public, b.uniq "
                                "FROM iinode_bulk_terms AS b JOIN iinode_bulk_written AS w "
                                "USING (seq)"
                            )
                    except psycopg.errors.UniqueViolation:
                        raise UniqueValueTaken(
                            "a unique attribute value in this batch is already held by another "
                            "identifier under its prefix (nothing of the batch was written)"
                        ) from None
        self._unanalysed += written
        if self._unanalysed >= self.analyze_after:
            self._unanalysed = 0
            async with _converted("analyse"), self._pool.connection() as conn:
                await conn.execute(f"ANALYZE {self._t}, {self._t}_terms")
        return BulkResult(written, total - written)

    async def list_handles(
        self, prefix: str, *, page: int = 0, page_size: int = 1000
    ) -> HandlePage:
        async with _converted("listing"), self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT handle FROM {self._t} WHERE prefix = %s "
                'ORDER BY handle COLLATE "C" LIMIT %s OFFSET %s',
                (prefix, page_size, page * page_size),
            )
            names = [r[0] for r in await cur.fetchall()]
            total = page_total(page, page_size, len(names))
            if total is None:
                cur = await conn.execute(
                    f"SELECT count(*) FROM {self._t} WHERE prefix = %s", (prefix,)
                )
                row = await cur.fetchone()
                total = int(row[0]) if row else 0
        return HandlePage(names, total)

    async def list_after(
        self, prefix: str, after: str | None = None, *, limit: int = 1000
    ) -> list[str]:
        check_limit(limit)
        since = "" if after is None else 'AND handle COLLATE "C" > %s '
        args = (prefix, limit) if after is None else (prefix, after, limit)
        async with _converted("listing"), self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT handle FROM {self._t} WHERE prefix = %s {since}"
                'ORDER BY handle COLLATE "C" LIMIT %s',
                args,
            )
            return [r[0] for r in await cur.fetchall()]

    async def search(self, query: SearchQuery) -> list[str]:
        if not query.terms:
            assert query.prefix is not None  # a query has terms or a prefix
            return await self.list_after(query.prefix, query.after, limit=query.limit)
        sql, args = search_sql(query, f"{self._t}_terms", "%s")
        async with _converted("search"), self._pool.connection() as conn:
            cur = await conn.execute(sql, args)
            return [r[0] for r in await cur.fetchall()]

    async def count(self) -> int:
        async with _converted("count"), self._pool.connection() as conn:
            cur = await conn.execute(f"SELECT count(*) FROM {self._t}")
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def drop(self) -> None:
        """Remove the table (tests and benchmarks)."""
        async with self._pool.connection() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {self._t}")
            await conn.execute(f"DROP TABLE IF EXISTS {self._t}_terms")

    async def close(self) -> None:
        await self._pool.close()
