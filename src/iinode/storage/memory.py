"""An in-memory store for tests and throwaway nodes.

Listings read a sorted copy of each prefix's handles, kept until a handle is
added to or removed from that prefix, so paging through a prefix sorts it once.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterable, Sequence

from iinode.storage.base import BulkResult, HandlePage, Mutation, check_limit
from iinode.storage.search import BulkTerms, SearchQuery, Term, UniqueValueTaken, record_terms


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, tuple[str, bytes]] = {}
        #: Search terms per handle (``storage.search``), kept with each write.
        self._terms: dict[str, list[Term]] = {}
        self._sorted: dict[str, list[str]] = {}
        self._lock = asyncio.Lock()

    async def get(self, handle: str) -> bytes | None:
        row = self._records.get(handle)
        return None if row is None else row[1]

    async def get_many(self, handles: Sequence[str]) -> dict[str, bytes]:
        records = self._records
        return {h: records[h][1] for h in handles if h in records}

    async def modify(self, handle: str, mutation: Mutation) -> bytes | None:
        async with self._lock:
            row = self._records.get(handle)
            new = mutation(None if row is None else row[1])
            prefix = handle.partition("/")[0]
            if new is None:
                if self._records.pop(handle, None) is not None:
                    self._sorted.pop(prefix, None)
                self._terms.pop(handle, None)
            else:
                self._index(handle, prefix, new)
                if row is None:
                    self._sorted.pop(prefix, None)
                self._records[handle] = (prefix, new)
            return new

    def _index(self, handle: str, prefix: str, data: bytes) -> None:
        """Keep ``data``'s terms for ``handle``; a unique term held under ``prefix`` by
        another handle refuses the write (``UniqueValueTaken``) before anything changes."""
        terms = record_terms(data)
        for name, value, _public, uniq in terms:
            if uniq:
                for other, (other_prefix, _) in self._records.items():
                    if (
                        other != handle
                        and other_prefix == prefix
                        and any(
                            t[0] == name and t[1] == value and t[3]
                            for t in self._terms.get(other, ())
                        )
                    ):
                        raise UniqueValueTaken(
                            f"{name} {value!r} is already held by {other} under {prefix}"
                        )
        if terms:
            self._terms[handle] = terms
        else:
            self._terms.pop(handle, None)

    async def bulk_put(
        self,
        rows: Iterable[tuple[str, str, bytes]],
        *,
        overwrite: bool = False,
        terms: BulkTerms | None = None,
    ) -> BulkResult:
        written = skipped = 0
        async with self._lock:
            for handle, prefix, data in rows:
                old = self._records.get(handle)
                if not overwrite and old is not None:
                    skipped += 1
                    continue
                self._index(handle, prefix, data)
                if old is None or old[0] != prefix:
                    self._sorted.pop(prefix, None)
                    if old is not None:
                        self._sorted.pop(old[0], None)
                self._records[handle] = (prefix, data)
                written += 1
        return BulkResult(written, skipped)

    def _names(self, prefix: str) -> list[str]:
        names = self._sorted.get(prefix)
        if names is None:
            names = sorted(h for h, (p, _) in self._records.items() if p == prefix)
            self._sorted[prefix] = names
        return names

    async def list_handles(
        self, prefix: str, *, page: int = 0, page_size: int = 1000
    ) -> HandlePage:
        names = self._names(prefix)
        start = page * page_size
        return HandlePage(names[start : start + page_size], len(names))

    async def list_after(
        self, prefix: str, after: str | None = None, *, limit: int = 1000
    ) -> list[str]:
        check_limit(limit)
        names = self._names(prefix)
        start = 0 if after is None else bisect.bisect_right(names, after)
        return names[start : start + limit]

    async def search(self, query: SearchQuery) -> list[str]:
        if not query.terms:
            assert query.prefix is not None
            return await self.list_after(query.prefix, query.after, limit=query.limit)
        wanted = set(query.terms)
        found = []
        for handle, terms in self._terms.items():
            if query.after is not None and handle <= query.after:
                continue
            if query.prefix is not None and self._records[handle][0] != query.prefix:
                continue
            have = {(t[0], t[1]) for t in terms if t[2] or not query.public_only}
            if wanted <= have:
                found.append(handle)
        found.sort()
        return found[: query.limit]

    async def count(self) -> int:
        return len(self._records)

    async def close(self) -> None:
        self._records.clear()
        self._sorted.clear()
        self._terms.clear()
