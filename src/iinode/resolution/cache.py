"""The resolution cache: answers and delegations, each kept for its TTL.

Positive answers live for the smallest TTL of their values (relative TTLs are
seconds from now, absolute TTLs an expiry time); "not found" answers live for
the negative TTL; delegation sites learnt from referrals are kept per prefix so
a later resolution below the same prefix skips the upper levels.  Bounded in
entries, least recently used evicted first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from iinode.identifiers import HandleName, Prefix, Record, SiteData, TTLType

_E = TypeVar("_E")

#: Never cache longer than a day, whatever a value says.
MAX_TTL = 86400


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    values: Record | None  # None: the handle does not exist
    expires: float


@dataclass(frozen=True, slots=True)
class CachedSites:
    prefix: Prefix
    sites: tuple[SiteData, ...]
    expires: float


def record_ttl(values: Record, now: float, default: int = 3600) -> float:
    """Seconds ``values`` may be cached, from their TTL fields."""
    ttls: list[float] = []
    for v in values:
        if v.ttl_type is TTLType.ABSOLUTE:
            ttls.append(v.ttl - now)
        else:
            ttls.append(v.ttl)
    return max(0.0, min(min(ttls, default=default), MAX_TTL))


class ResolutionCache:
    def __init__(
        self,
        max_entries: int = 100_000,
        *,
        negative_ttl: float = 60,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_entries = max_entries
        self.negative_ttl = negative_ttl
        self._clock = clock
        self._wall = wall_clock
        self._answers: OrderedDict[str, CachedAnswer] = OrderedDict()
        self._sites: OrderedDict[str, CachedSites] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._answers) + len(self._sites)

    def get(self, handle: HandleName) -> CachedAnswer | None:
        key = str(handle)
        entry = self._answers.get(key)
        if entry is None or entry.expires <= self._clock():
            if entry is not None:
                del self._answers[key]
            self.misses += 1
            return None
        self._answers.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, handle: HandleName, values: Record) -> None:
        ttl = record_ttl(values, self._wall())
        if ttl <= 0:
            return
        self._store(self._answers, str(handle), CachedAnswer(values, self._clock() + ttl))

    def put_missing(self, handle: HandleName) -> None:
        if self.negative_ttl > 0:
            expires = self._clock() + self.negative_ttl
            self._store(self._answers, str(handle), CachedAnswer(None, expires))

    def put_sites(self, prefix: Prefix, sites: Sequence[SiteData], values: Record) -> None:
        ttl = record_ttl(values, self._wall())
        if ttl > 0 and sites:
            entry = CachedSites(prefix, tuple(sites), self._clock() + ttl)
            self._store(self._sites, prefix.text, entry)

    def closest_sites(self, prefix: Prefix) -> CachedSites | None:
        """The cached delegation of ``prefix`` or its nearest ancestor."""
        now = self._clock()
        for candidate in prefix.ancestors():
            entry = self._sites.get(candidate.text)
            if entry is not None:
                if entry.expires > now:
                    self._sites.move_to_end(candidate.text)
                    return entry
                del self._sites[candidate.text]
        return None

    def forget_sites(self, prefix: Prefix) -> None:
        """Drop the cached site of exactly ``prefix`` (its ancestors stay)."""
        self._sites.pop(prefix.text, None)

    def invalidate(self, handle: HandleName) -> None:
        self._answers.pop(str(handle), None)

    def clear(self) -> None:
        self._answers.clear()
        self._sites.clear()

    def _store(self, table: OrderedDict[str, _E], key: str, entry: _E) -> None:
        table[key] = entry
        table.move_to_end(key)
        while len(self._answers) + len(self._sites) > self.max_entries and table:
            table.popitem(last=False)
