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
whole /64).  Both maps are bounded, and one address keeps at most
``identities_per_source`` pair buckets: failures for further names count in
its address bucket only.  So an address rotating names can neither grow the
pair map nor push its own locked pair (or anyone else's) out of it.

A bucket is one number, the time it is full again (``full_at``; the generic
cell rate form of a token bucket): ``Tier`` holds that arithmetic, used by the
in-process ``FailureLimiter`` here and by the stores the node's processes share
(``node.failure_counts``).  A bucket whose ``full_at`` has passed is the same
as no bucket, so it can be forgotten.
"""

from __future__ import annotations

import abc
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: What a failure is counted against: a source address, or (source address, identity).
FailureKey = str | tuple[str, str]
#: Waits below this many seconds are rounding, not a lockout.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Tier:
    """The arithmetic of one tier's buckets, each held as the time it is full again."""

    burst: int
    per_second: float

    @property
    def interval(self) -> float:
        """Seconds one token takes to come back."""
        return 1.0 / self.per_second

    @property
    def capacity(self) -> float:
        """Seconds an empty bucket takes to fill."""
        return self.burst * self.interval

    def wait(self, full_at: float | None, now: float) -> float:
        """Seconds until the bucket holds a token again (0: it holds one now)."""
        if full_at is None:
            return 0.0
        # Never more than an empty bucket's wait, even after the clock went back.
        behind = min(full_at - now, self.capacity)
        wait = behind - (self.burst - 1) * self.interval
        return wait if wait > _EPSILON else 0.0

    def charged(self, full_at: float | None, now: float) -> float:
        """``full_at`` after one token is taken at ``now`` (an empty bucket stays empty)."""
        start = now if full_at is None or full_at < now else full_at
        return min(start + self.interval, now + self.capacity)


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

    @property
    def source_tier(self) -> Tier:
        return Tier(self.source_burst, self.source_per_second)

    @property
    def pair_tier(self) -> Tier:
        return Tier(self.burst, self.per_second)


def source_of(address: str) -> str:
    """The address tier's key: the address, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address if ip.version == 4 else str(ip.ipv4_mapped)


def split_key(key: FailureKey) -> tuple[str, tuple[str, str]]:
    """``(source, (address, identity))`` of a key; a plain address names no identity."""
    address, identity = (key, "") if isinstance(key, str) else key
    return source_of(address), (address, identity)


class FailureCounter(abc.ABC):
    """Where an ``Authorizer`` counts failed authentications (keys: :data:`FailureKey`).

    ``FailureLimiter`` counts in this process; ``failure_counts.SharedFailureLimiter``
    in a store every process of the node shares.  ``None`` as key (no known
    source address) is never limited.
    """

    limits: FailureLimits

    @abc.abstractmethod
    async def wait(self, key: FailureKey | None) -> float:
        """Seconds until ``key`` may try again; 0 if it may now."""

    @abc.abstractmethod
    async def charge(self, key: FailureKey | None) -> None:
        """Count a failed authentication against ``key``'s source and pair buckets."""

    @abc.abstractmethod
    def known_wait(self, key: FailureKey | None) -> float:
        """``wait`` as far as this process knows without asking a shared store."""

    async def aclose(self) -> None:
        """Release what the counter holds open (nothing, in memory)."""
        return None


class _Buckets:
    """Buckets of one tier by key, bounded (least recently charged dropped first)."""

    def __init__(self, tier: Tier, bound: int) -> None:
        self.tier = tier
        self.bound = bound
        #: key -> when its bucket is full again
        self.entries: OrderedDict[object, float] = OrderedDict()

    def wait(self, key: object, now: float) -> float:
        return self.tier.wait(self.entries.get(key), now)

    def take(self, key: object, now: float) -> list[object]:
        """Charge ``key``; returns the keys dropped to stay within the bound."""
        self.entries[key] = self.tier.charged(self.entries.get(key), now)
        self.entries.move_to_end(key)
        dropped = []
        while len(self.entries) > self.bound:
            dropped.append(self.entries.popitem(last=False)[0])
        return dropped


class FailureLimiter(FailureCounter):
    """The two tiers in this process's memory (see the module docstring)."""

    def __init__(
        self, limits: FailureLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or FailureLimits()
        self._clock = clock
        lim = self.limits
        self._sources = _Buckets(lim.source_tier, lim.max_sources)
        self._pairs = _Buckets(lim.pair_tier, lim.max_sources)
        #: Pair buckets held per source.
        self._held: dict[str, int] = {}

    def retry_after(self, key: FailureKey | None) -> float:
        """Seconds until ``key`` may try again; 0 if it may now."""
        if key is None:
            return 0.0
        source, pair = split_key(key)
        now = self._clock()
        return max(self._sources.wait(source, now), self._pairs.wait(pair, now))

    def failed(self, key: FailureKey | None) -> None:
        """Count a failed authentication against ``key``'s source and pair buckets."""
        if key is None:
            return
        source, pair = split_key(key)
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

    async def wait(self, key: FailureKey | None) -> float:
        return self.retry_after(key)

    async def charge(self, key: FailureKey | None) -> None:
        self.failed(key)

    def known_wait(self, key: FailureKey | None) -> float:
        return self.retry_after(key)

    def __len__(self) -> int:
        """Pair buckets held."""
        return len(self._pairs.entries)

    @property
    def sources(self) -> int:
        """Source buckets held."""
        return len(self._sources.entries)


def retry_text(seconds: float) -> str:
    return f"{math.ceil(seconds)} s"


__all__ = [
    "FailureCounter",
    "FailureKey",
    "FailureLimiter",
    "FailureLimits",
    "Tier",
    "source_of",
    "split_key",
]
