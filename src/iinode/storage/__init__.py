"""Identifier stores: one interface, memory / SQLite / PostgreSQL backends."""

from __future__ import annotations

from pathlib import Path

from iinode.errors import ConfigurationError
from iinode.storage.base import BulkResult, HandlePage, HandleStore, Mutation
from iinode.storage.memory import MemoryStore
from iinode.storage.sqlite import SQLiteStore


async def open_store(url: str, *, base_dir: Path | None = None) -> HandleStore:
    """Open a store from a URL: ``memory:``, ``sqlite:///path`` (or a relative
    ``sqlite:name.db`` under ``base_dir``), ``postgresql://…[#table]``."""
    if url in ("memory:", "memory://"):
        return MemoryStore()
    if url.startswith("sqlite:"):
        path = Path(url.removeprefix("sqlite:").removeprefix("//"))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from iinode.storage.postgres import PostgresStore

        dsn, _, table = url.partition("#")
        return await PostgresStore.open(dsn, table=table or "handles")
    raise ConfigurationError(
        f"unknown store URL {url!r} (use memory:, sqlite:PATH or postgresql://…)"
    )


__all__ = [
    "BulkResult",
    "HandlePage",
    "HandleStore",
    "MemoryStore",
    "Mutation",
    "SQLiteStore",
    "open_store",
]
