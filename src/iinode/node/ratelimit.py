"""Bounds on failed authentications: per source address, then per address and identity.

Two tiers of token buckets.  Every failed authentication takes a token from
its source address's bucket (``source_burst``, back at ``source_per_second``)
and one from the bucket of that address *and* the identity it tried
(``burst``, back at ``per_second``).  An attempt is refused before any secret
is checked when either bucket is empty, so guessing costs the guesser time and
the node no CPU:

* the pair tier slows guessing one identity's secret without locking out the
  other users behind the same address (a NAT, a proxy);
* the address tier bounds what an address may cost in all, so rotating the
  identity name (each new name a fresh pair bucket) does not buy unlimited
  password derivations.

IPv6 sources count per /64 in the address tier (one host usually holds the
whole /64).  Both maps are bounded (least recently failed dropped first), and
one address keeps at most ``identities_per_source`` pair buckets: failures for
further names count in its address bucket only.  So an address rotating
names can neither grow the pair map nor push its own locked pair (or anyone
else's) out of it.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: What a failure is counted against: a source address, or (source address, identity).
FailureKey = str | tuple[str, str]


@dataclass(frozen=True, slots=True)
class FailureLimits:
    #: Failed authentications a source may make in a row as one identity.
    burst: int = 10
    #: Tokens given back per second (0.2: one more attempt every 5 s).
    per_second: float = 0.2
    #: Sources (and, separately, source and identity pairs) remembered at once.
    max_sources: int = 10_000
    #: Failed authentications a source may make in a row, whatever identities it tries.
    source_burst: int = 30
    #: Tokens given back to a source per second.
    source_per_second: float = 0.5
    #: Identities with their own bucket per source; further ones count per source only.
    identities_per_source: int = 16

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_second <= 0 or self.max_sources < 1:
            raise ValueError("burst and max_sources must be >= 1, per_second > 0")
        if self.source_burst < 1 or self.source_per_second <= 0:
            raise ValueError("source_burst must be >= 1, source_per_second > 0")
        if self.identities_per_source < 1:
            raise ValueError("identities_per_source must be >= 1")


class _Buckets:
    """Token buckets by key, bounded (least recently charged dropped first)."""

    def __init__(self, burst: int, per_second: float, bound: int) -> None:
        self.burst = float(burst)
        self.per_second = per_second
        self.bound = bound
        #: key -> (tokens, when they were counted)
        self.entries: OrderedDict[object, tuple[float, float]] = OrderedDict()

    def tokens(self, key: object, now: float) -> float:
        entry = self.entries.get(key)
        if entry is None:
            return self.burst
        tokens, then = entry
        return min(self.burst, tokens + (now - then) * self.per_second)

    def wait(self, key: object, now: float) -> float:
        tokens = self.tokens(key, now)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.per_second

    def take(self, key: object, now: float) -> list[object]:
        """Charge ``key``; returns the keys dropped to stay within the bound."""
        self.entries[key] = (max(0.0, self.tokens(key, now) - 1), now)
        self.entries.move_to_end(key)
        dropped = []
        while len(self.entries) > self.bound:
            dropped.append(self.entries.popitem(last=False)[0])
        return dropped


def source_of(address: str) -> str:
    """The address tier's key: the address, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address if ip.version == 4 else str(ip.ipv4_mapped)


class FailureLimiter:
    """The two tiers (see the module docstring); keys are :data:`FailureKey`.

    A plain address as key is that address with no identity named.
    """

    def __init__(
        self, limits: FailureLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or FailureLimits()
        self._clock = clock
        lim = self.limits
        self._sources = _Buckets(lim.source_burst, lim.source_per_second, lim.max_sources)
        self._pairs = _Buckets(lim.burst, lim.per_second, lim.max_sources)
        #: Pair buckets held per source.
        self._held: dict[str, int] = {}

    @staticmethod
    def _split(key: FailureKey) -> tuple[str, tuple[str, str]]:
        address, identity = (key, "") if isinstance(key, str) else key
        return source_of(address), (address, identity)

    def retry_after(self, key: FailureKey | None) -> float:
        """Seconds until ``key`` may try again; 0 if it may now."""
        if key is None:
            return 0.0
        source, pair = self._split(key)
        now = self._clock()
        return max(self._sources.wait(source, now), self._pairs.wait(pair, now))

    def failed(self, key: FailureKey | None) -> None:
        """Count a failed authentication against ``key``'s source and pair buckets."""
        if key is None:
            return
        source, pair = self._split(key)
        now = self._clock()
        self._sources.take(source, now)
        if pair not in self._pairs.entries:
            if self._held.get(source, 0) >= self.limits.identities_per_source:
                return  # counted per source only: rotation cannot grow the pair map
            self._held[source] = self._held.get(source, 0) + 1
        for dropped in self._pairs.take(pair, now):
            assert isinstance(dropped, tuple)
            left = self._held.get(source_of(dropped[0]), 1) - 1
            if left:
                self._held[source_of(dropped[0])] = left
            else:
                self._held.pop(source_of(dropped[0]), None)

    def __len__(self) -> int:
        """Pair buckets held."""
        return len(self._pairs.entries)

    @property
    def sources(self) -> int:
        """Source buckets held."""
        return len(self._sources.entries)


def retry_text(seconds: float) -> str:
    return f"{math.ceil(seconds)} s"


__all__ = ["FailureKey", "FailureLimiter", "FailureLimits", "source_of"]
