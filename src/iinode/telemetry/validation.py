"""Reading validation against the equipment registry; rejects are counted, not dropped.

A reading is rejected when its equipment is not registered, its tag is not one
of the equipment's tags, its value does not fit the tag's data type, its
timestamp lies further in the future than the allowed clock skew, or its
timestamp is one the store cannot hold (before 1970, such as OPC UA's
MinDateTime in 1601, or after 9999).  Every reject is counted by reason,
logged, and kept in a bounded list of recent rejects.  ``UNSTORABLE`` counts
readings the store itself refused (the ingest worker isolates them).
"""

from __future__ import annotations

import enum
import logging
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from iinode.telemetry.model import Equipment, Reading, Tag, now_us
from iinode.telemetry.registry import EquipmentRegistry

log = logging.getLogger(__name__)

#: The first instant the store cannot hold (10000-01-01T00:00:00Z, in µs); the last is 0 before.
END_OF_TIME_US = 253_402_300_800_000_000


class RejectReason(enum.StrEnum):
    UNKNOWN_EQUIPMENT = "unknown_equipment"
    UNKNOWN_TAG = "unknown_tag"
    WRONG_TYPE = "wrong_type"
    FUTURE_TIMESTAMP = "future_timestamp"
    BAD_TIMESTAMP = "bad_timestamp"
    UNSTORABLE = "unstorable"
    MALFORMED = "malformed"
    PROTOCOL = "protocol"


@dataclass(frozen=True, slots=True)
class Reject:
    """A reading (or raw input, for malformed data) that was refused, and why."""

    reason: RejectReason
    detail: str
    reading: Reading | None = None


class RejectLog:
    """Counts rejects by reason and remembers the most recent ones."""

    def __init__(self, keep: int = 100) -> None:
        self.counts: Counter[RejectReason] = Counter()
        self.recent: deque[Reject] = deque(maxlen=keep)
        #: Told of every reject (monitoring); they must not raise.
        self.observers: list[Callable[[Reject], None]] = []

    def add(self, reject: Reject) -> None:
        self.counts[reject.reason] += 1
        self.recent.append(reject)
        for observe in self.observers:
            observe(reject)
        log.warning("telemetry reject (%s): %s", reject.reason.value, reject.detail)

    def malformed(self, detail: str) -> None:
        self.add(Reject(RejectReason.MALFORMED, detail))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class ReadingValidator:
    """Splits batches into accepted readings and rejects.

    Equipment records are looked up once per batch and cached for
    ``cache_ttl_us`` (at most ``max_cached`` entries, unknown ids included, so
    readings naming random equipment cannot grow memory); ``max_future_us`` is
    the allowed clock skew.
    """

    def __init__(
        self,
        registry: EquipmentRegistry,
        *,
        rejects: RejectLog | None = None,
        max_future_us: int = 300_000_000,
        cache_ttl_us: int = 5_000_000,
        max_cached: int = 65_536,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.registry = registry
        self.rejects = rejects if rejects is not None else RejectLog()
        self.max_future_us = max_future_us
        self.cache_ttl_us = cache_ttl_us
        self.max_cached = max_cached
        self._clock = clock
        self._cache: dict[str, tuple[int, Equipment | None]] = {}

    def forget(self, equipment_id: str | None = None) -> None:
        """Drop cached equipment records (all of them if no id is given)."""
        if equipment_id is None:
            self._cache.clear()
        else:
            self._cache.pop(equipment_id, None)

    async def _lookup(self, equipment_id: str, now: int) -> Equipment | None:
        hit = self._cache.get(equipment_id)
        if hit is not None and now - hit[0] < self.cache_ttl_us:
            return hit[1]
        item = await self.registry.get(equipment_id)
        cache = self._cache
        cache.pop(equipment_id, None)
        if len(cache) >= self.max_cached:
            # Bounded: ids that are not registered must not grow the cache without end.
            fresh = {k: v for k, v in cache.items() if now - v[0] < self.cache_ttl_us}
            if len(fresh) >= self.max_cached:
                fresh = dict(list(fresh.items())[len(fresh) // 2 :])
            self._cache = cache = fresh
        cache[equipment_id] = (now, item)
        return item

    async def validate(self, readings: Sequence[Reading]) -> list[Reading]:
        """The accepted readings, in order; rejects go to ``self.rejects``.

        Accepted readings carry the equipment id in its normal form (``CN.SH/M1``
        for a reading that named ``cn.sh/M1``).
        """
        now = self._clock()
        horizon = now + self.max_future_us
        known: dict[str, dict[str, Tag] | None] = {}
        canonical: dict[str, str] = {}
        for eq in {r.equipment for r in readings}:
            item = await self._lookup(eq, now)
            known[eq] = None if item is None else {t.name: t for t in item.tags}
            if item is not None and item.id != eq:
                canonical[eq] = item.id
        accepted: list[Reading] = []
        for r in readings:
            tags = known[r.equipment]
            reject: Reject | None = None
            if tags is None:
                reject = Reject(RejectReason.UNKNOWN_EQUIPMENT, f"{r.equipment} not registered", r)
            elif (tag := tags.get(r.tag)) is None:
                reject = Reject(RejectReason.UNKNOWN_TAG, f"{r.equipment} has no tag {r.tag!r}", r)
            elif r.value is not None and not tag.data_type.accepts(r.value):
                reject = Reject(
                    RejectReason.WRONG_TYPE,
                    f"{r.equipment} {r.tag}: {r.value!r} is not {tag.data_type.value}",
                    r,
                )
            elif not 0 <= r.time_us < END_OF_TIME_US:
                reject = Reject(
                    RejectReason.BAD_TIMESTAMP,
                    f"{r.equipment} {r.tag}: timestamp {r.time_us} µs is outside 1970..9999",
                    r,
                )
            elif r.time_us > horizon:
                reject = Reject(
                    RejectReason.FUTURE_TIMESTAMP,
                    f"{r.equipment} {r.tag}: timestamp {(r.time_us - now) / 1e6:.0f} s ahead",
                    r,
                )
            if reject is None:
                if canonical and r.equipment in canonical:
                    r = replace(r, equipment=canonical[r.equipment])
                accepted.append(r)
            else:
                self.rejects.add(reject)
        return accepted
