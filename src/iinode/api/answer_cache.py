"""Rendered REST answers, kept until the next committed write.

``GET /api/handles/{h}`` spends most of its time decoding the stored record,
filtering it by permission, type and index, and rendering JSON.  The answer to
an anonymous request depends only on the store's contents and on the request
(handle as written plus query string), so its rendered bytes are kept here.

Every entry belongs to one value of the node's :class:`ChangeCounter`; a write
in any process serving the data directory bumps the counter, and the next
lookup finds a different value and drops every entry.  Callers take
:meth:`AnswerCache.generation` *before* reading the store and hand it back to
:meth:`AnswerCache.put`, which refuses the entry if a write happened since, so
a rendering of a stale read is never kept.

Answers to authenticated requests (whose result depends on who asks) and
answers obtained from other nodes (which have their own lifetimes) are not
kept.  The cache holds at most ``max_entries`` answers and forgets the oldest
first.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from iinode.node.changes import ChangeCounter

__all__ = ["AnswerCache", "UntilWrite"]

#: (handle as it appears in the request path, raw query string)
CacheKey = tuple[str, bytes]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class UntilWrite(Generic[K, V]):
    """Entries kept until the next committed write (any kind of key and value)."""

    __slots__ = ("_changes", "_entries", "_generation", "max_entries")

    def __init__(self, changes: ChangeCounter, max_entries: int = 65_536) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._changes = changes
        self._entries: dict[K, V] = {}
        self._generation = changes.value()
        self.max_entries = max_entries

    def generation(self) -> int:
        """The counter value to pass to :meth:`put`; take it before reading the store."""
        return self._changes.value()

    def get(self, key: K) -> V | None:
        generation = self._changes.value()
        if generation != self._generation:
            self._entries.clear()
            self._generation = generation
            return None
        return self._entries.get(key)

    def put(self, key: K, body: V, generation: int) -> None:
        """Keep ``body`` unless a write was committed since ``generation`` was taken."""
        if generation != self._changes.value():
            return
        entries = self._entries
        if generation != self._generation:
            entries.clear()
            self._generation = generation
        if len(entries) >= self.max_entries and key not in entries:
            del entries[next(iter(entries))]
        entries[key] = body

    def __len__(self) -> int:
        return len(self._entries)


class AnswerCache(UntilWrite[CacheKey, bytes]):
    """Rendered JSON of anonymous, locally answered ``GET /api/handles/{h}`` requests."""

    __slots__ = ()
