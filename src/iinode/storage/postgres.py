"""PostgreSQL store (psycopg 3, async connection pool) for production nodes.

Writes to one handle are serialised with a transaction-scoped advisory lock on
the handle, so a concurrent create of the same name is refused rather than
lost.  Bulk loads stream rows with ``COPY`` into a temporary table and merge
them with one ``INSERT … ON CONFLICT``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool

from iinode.errors import StorageError
from iinode.storage.base import BulkResult, HandlePage, Mutation

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")


class PostgresStore:
    def __init__(self, pool: AsyncConnectionPool, table: str) -> None:
        self._pool = pool
        self._t = table

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
                    f"CREATE INDEX IF NOT EXISTS {table}_by_prefix ON {table} (prefix, handle)"
                )
        except (psycopg.Error, TimeoutError) as exc:
            await pool.close()
            raise StorageError(f"cannot open PostgreSQL store: {exc}") from exc
        return cls(pool, table)

    async def get(self, handle: str) -> bytes | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(f"SELECT data FROM {self._t} WHERE handle = %s", (handle,))
            row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def get_many(self, handles: Sequence[str]) -> dict[str, bytes]:
        if not handles:
            return {}
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT handle, data FROM {self._t} WHERE handle = ANY(%s)", (list(handles),)
            )
            rows = await cur.fetchall()
        return {h: bytes(d) for h, d in rows}

    async def modify(self, handle: str, mutation: Mutation) -> bytes | None:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (handle,)
                )
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
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL write failed: {exc}") from exc
        return new

    async def bulk_put(
        self, rows: Iterable[tuple[str, str, bytes]], *, overwrite: bool = False
    ) -> BulkResult:
        conflict = (
            "ON CONFLICT (handle) DO UPDATE SET data = excluded.data"
            if overwrite
            else "ON CONFLICT (handle) DO NOTHING"
        )
        total = 0
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS iinode_bulk "
                    "(handle TEXT, prefix TEXT, data BYTEA) ON COMMIT DELETE ROWS"
                )
                async with conn.cursor() as cur:
                    async with cur.copy(
                        "COPY iinode_bulk (handle, prefix, data) FROM STDIN (FORMAT BINARY)"
                    ) as copy:
                        copy.set_types(["text", "text", "bytea"])
                        for row in rows:
                            await copy.write_row(row)
                            total += 1
                    await cur.execute(
                        f"INSERT INTO {self._t} (handle, prefix, data) "
                        "SELECT DISTINCT ON (handle) handle, prefix, data "
                        f"FROM iinode_bulk {conflict}"
                    )
                    written = cur.rowcount
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL bulk load failed: {exc}") from exc
        return BulkResult(written, total - written)

    async def list_handles(
        self, prefix: str, *, page: int = 0, page_size: int = 1000
    ) -> HandlePage:
        async with self._pool.connection() as conn:
            cur = await conn.execute(f"SELECT count(*) FROM {self._t} WHERE prefix = %s", (prefix,))
            total_row = await cur.fetchone()
            cur = await conn.execute(
                f"SELECT handle FROM {self._t} WHERE prefix = %s "
                "ORDER BY handle LIMIT %s OFFSET %s",
                (prefix, page_size, page * page_size),
            )
            names = [r[0] for r in await cur.fetchall()]
        return HandlePage(names, int(total_row[0]) if total_row else 0)

    async def count(self) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(f"SELECT count(*) FROM {self._t}")
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def drop(self) -> None:
        """Remove the table (tests and benchmarks)."""
        async with self._pool.connection() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {self._t}")

    async def close(self) -> None:
        await self._pool.close()
