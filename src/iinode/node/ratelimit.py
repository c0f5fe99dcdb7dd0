"""A bound on failed authentications per source address (token buckets).

Each source starts with ``burst`` tokens; every failed authentication takes one
and tokens come back at ``per_second``.  A source with no token left is refused
before any secret is checked, so guessing costs the guesser time and the node
no CPU.  The map of sources is bounded (least recently failed dropped first).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FailureLimits:
    #: Failed authentications a source may make in a row.
    burst: int = 10
    #: Tokens given back per second (0.2: one more attempt every 5 s).
    per_second: float = 0.2
    #: Sources remembered at once.
    max_sources: int = 10_000

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_second <= 0 or self.max_sources < 1:
            raise ValueError("burst and max_sources must be >= 1, per_second > 0")


class FailureLimiter:
    def __init__(
        self, limits: FailureLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or FailureLimits()
        self._clock = clock
        #: source -> (tokens, when they were counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _tokens(self, source: str, now: float) -> float:
        entry = self._buckets.get(source)
        if entry is None:
            return float(self.limits.burst)
        tokens, then = entry
        return min(float(self.limits.burst), tokens + (now - then) * self.limits.per_second)

    def retry_after(self, source: str | None) -> float:
        """Seconds until ``source`` may try again; 0 if it may now."""
        if source is None:
            return 0.0
        tokens = self._tokens(source, self._clock())
        if tokens >= 1:
            return 0.0
        return (1 - tokens) / self.limits.per_second

    def failed(self, source: str | None) -> None:
        """Take a token from ``source`` for a failed authentication."""
        if source is None:
            return
        now = self._clock()
        tokens = max(0.0, self._tokens(source, now) - 1)
        self._buckets[source] = (tokens, now)
        self._buckets.move_to_end(source)
        while len(self._buckets) > self.limits.max_sources:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


def retry_text(seconds: float) -> str:
    return f"{math.ceil(seconds)} s"


__all__ = ["FailureLimiter", "FailureLimits"]
