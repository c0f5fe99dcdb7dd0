"""A bounded per-source response-rate limit for the UDP slow path (no I/O, caller's clock).

A UDP source address can be forged, so every answer the slow path sends may
land on a victim.  ``ResponseRateLimit`` gives each source host a token bucket
(``rate`` packets per second, bursts of ``burst``); a datagram that finds its
bucket empty is dropped unanswered.  An answer of several packets costs one
token per packet (``allow`` with ``cost``), so what one source address can draw
is bounded in packets, whatever the answers' sizes.  At most ``max_sources`` buckets are kept;
the least recently used is forgotten first (it starts again with a full
bucket, which is the most a forgotten source could have had anyway).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from iinode.errors import ConfigurationError


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class ResponseRateLimit:
    """Token buckets by source host: ``allow(host, now, cost)`` spends ``cost`` tokens."""

    def __init__(self, rate: float = 500.0, burst: float = 1000.0, max_sources: int = 4096) -> None:
        if rate <= 0 or burst < 1 or max_sources < 1:
            raise ConfigurationError("rate must be positive, burst and max_sources at least 1")
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self.limited = 0
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, host: str, now: float, cost: float = 1.0) -> bool:
        """True if ``host`` may be sent ``cost`` packets now (and charge it for them)."""
        buckets = self._buckets
        bucket = buckets.get(host)
        if bucket is None:
            bucket = buckets[host] = _Bucket(self.burst, now)
            while len(buckets) > self.max_sources:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(host)
            elapsed = now - bucket.updated
            if elapsed > 0:
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
                bucket.updated = now
        if bucket.tokens < cost:
            self.limited += 1
            return False
        bucket.tokens -= cost
        return True


__all__ = ["ResponseRateLimit"]
