"""The identifier store interface.

A store maps a normalised handle (``"88.118.8/PRESS-01"``) to its record,
kept as the RFC 3651 wire encoding (``encode_record``), so the native protocol
can answer from stored bytes and every backend holds the same thing.  All
backends (memory, SQLite, PostgreSQL) pass the same test suite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

#: A change applied atomically by ``HandleStore.modify``: old record bytes (or
#: ``None`` when the handle does not exist) -> new bytes (``None`` deletes).
Mutation = Callable[[bytes | None], bytes | None]


@dataclass(frozen=True, slots=True)
class BulkResult:
    written: int
    skipped: int


@dataclass(frozen=True, slots=True)
class HandlePage:
    handles: list[str]
    total: int


class HandleStore(Protocol):
    """Async store of handle records; every write is durable when it returns."""

    async def get(self, handle: str) -> bytes | None:
        """The record bytes of ``handle``, or ``None``."""
        ...

    async def get_many(self, handles: Sequence[str]) -> dict[str, bytes]:
        """The record bytes of each of ``handles`` that exists, in one batched read."""
        ...

    async def modify(self, handle: str, mutation: Mutation) -> bytes | None:
        """Apply ``mutation`` to the current record atomically; return the new bytes.

        The mutation may raise to abort; nothing is written then.
        """
        ...

    async def bulk_put(
        self, rows: Iterable[tuple[str, str, bytes]], *, overwrite: bool = False
    ) -> BulkResult:
        """Write ``(handle, prefix, record)`` rows in one transaction.

        Existing handles are replaced when ``overwrite``, else skipped and counted.
        """
        ...

    async def list_handles(
        self, prefix: str, *, page: int = 0, page_size: int = 1000
    ) -> HandlePage:
        """Handles directly under ``prefix`` (sorted), one page at a time."""
        ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...


def prefix_of(handle: str) -> str:
    return handle.partition("/")[0]
