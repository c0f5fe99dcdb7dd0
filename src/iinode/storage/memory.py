"""An in-memory store for tests and throwaway nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from iinode.storage.base import BulkResult, HandlePage, Mutation


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, tuple[str, bytes]] = {}
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
            if new is None:
                self._records.pop(handle, None)
            else:
                self._records[handle] = (handle.partition("/")[0], new)
            return new

    async def bulk_put(
        self, rows: Iterable[tuple[str, str, bytes]], *, overwrite: bool = False
    ) -> BulkResult:
        written = skipped = 0
        async with self._lock:
            for handle, prefix, data in rows:
                if not overwrite and handle in self._records:
                    skipped += 1
                    continue
                self._records[handle] = (prefix, data)
                written += 1
        return BulkResult(written, skipped)

    async def list_handles(
        self, prefix: str, *, page: int = 0, page_size: int = 1000
    ) -> HandlePage:
        names = sorted(h for h, (p, _) in self._records.items() if p == prefix)
        start = page * page_size
        return HandlePage(names[start : start + page_size], len(names))

    async def count(self) -> int:
        return len(self._records)

    async def close(self) -> None:
        self._records.clear()
