"""The identifier store interface.

A store maps a normalised handle (``"88.118.8/PRESS-01"``) to its record,
kept as the RFC 3651 wire encoding (``encode_record``), so every backend holds
the same bytes (an answer decodes and filters the record before it is encoded
again for its interface).  All
backends (memory, SQLite, PostgreSQL) pass the same test suite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from iinode.errors import ValueInvalid
from iinode.storage.search import BulkTerms, SearchQuery

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
        self,
        rows: Iterable[tuple[str, str, bytes]],
        *,
        overwrite: bool = False,
        terms: BulkTerms | None = None,
    ) -> BulkResult:
        """Write ``(handle, prefix, record)`` rows in one transaction.

        Existing handles are replaced when ``overwrite``, else skipped and counted.
        ``terms``: the search terms of the rows by handle, as ``record_terms`` would
        find them (the bulk path has them from the values; a store may use them
        instead of reading each record again).
        """
        ...

    async def list_handles(
        self, prefix: str, *, page: int = 0, page_size: int = 1000
    ) -> HandlePage:
        """Handles directly under ``prefix`` (sorted), one numbered page at a time.

        The page is found by offset (for ``GET /api/handles?page=``); ``total``
        is counted only when the page does not tell it (a full or empty page).
        Walking a whole prefix is :meth:`list_after`'s job.
        """
        ...

    async def list_after(
        self, prefix: str, after: str | None = None, *, limit: int = 1000
    ) -> list[str]:
        """At most ``limit`` handles directly under ``prefix``, sorted, strictly after ``after``.

        Keyset paging: each page costs an index seek plus ``limit`` rows, however
        deep into the prefix it starts.  Handles sort by code point (the byte
        order of their UTF-8 text) on every backend.
        """
        ...

    async def search(self, query: SearchQuery) -> list[str]:
        """Handles whose search terms match ``query`` (``storage.search``), sorted by
        code point, strictly after ``query.after``: keyset paging over the term index."""
        ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...


def prefix_of(handle: str) -> str:
    return handle.partition("/")[0]


def page_total(page: int, page_size: int, found: int) -> int | None:
    """The prefix's total when a numbered page tells it (a partial page is the last one).

    ``None`` when it must be counted: the page is full, or empty past the end.
    """
    if found < page_size and (found > 0 or page == 0):
        return page * page_size + found
    return None


def check_limit(limit: int) -> int:
    """``limit`` if it is a usable page size (1 or more), else ``ValueInvalid``."""
    if limit < 1:
        raise ValueInvalid(f"a listing limit must be 1 or more, not {limit}")
    return limit
