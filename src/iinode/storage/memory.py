"""An in-memory store for tests and throwaway nodes.

Listings read a sorted copy of each prefix's handles, kept until a handle is
added to or removed from that prefix, so paging through a prefix sorts it once.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterable, Sequence

from iinode.storage.base import BulkResult, HandlePage, Mutation, check_limit


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, tuple[str, bytes]] = {}
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
            else:
                if row is None:
                    self._sorted.pop(prefix, None)
                self._records[handle] = (prefix, new)
            return new

    async def bulk_put(
        self, rows: Iterable[tuple[str, str, bytes]], *, overwrite: bool = False
    ) -> BulkResult:
        written = skipped = 0
        async with self._lock:
            for handle, prefix, data in rows:
                old = self._records.get(handle)
                if not overwrite and old is not None:
                    skipped += 1
                    continue
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

    async def count(self) -> int:
        return len(self._records)

    async def close(self) -> None:
        self._records.clear()
        self._sorted.clear()
