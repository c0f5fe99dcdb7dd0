"""Failed-authentication counts shared by all processes of a node.

``iinode serve --workers N`` runs N HTTP worker processes and native worker
processes on one data directory, and the kernel hands each connection to any
of them.  Counted per process, a guesser spreading its attempts over
connections would get N times the limits of ``node.ratelimit``; so the
buckets live in a ``FailureStore`` every process of the node opens:

* ``SQLiteFailureStore`` (``node.failure_sqlite``): ``<data dir>/failures.sqlite3``;
* ``RedisFailureStore`` (``node.failure_redis``): the Redis of the node's
  ``cache_url``, when it has one (keys ``iinode:<node>:failures:...``).

``SharedFailureLimiter`` is the ``FailureCounter`` an ``Authorizer`` uses over
such a store.  It keeps the process's own ``FailureLimiter`` as a first level,
charged with every failure here: a source this process already knows to be out
of attempts is refused without asking the store, and while the store fails
(Redis down, a file error) the limits hold per process, as without a store, for
``pause`` seconds before the store is tried again.  A check that passes
the first level is one read of two buckets (no write, no fsync); a failure is
the only write.

Each store holds the buckets of several scopes (the client limits and the
lenient limits of neighbour nodes: ``Authorizer.node_limiter``), each tier
bounded to ``FailureLimits.max_sources`` buckets: past that, expired buckets go
first, then those nearest to full (whose loss costs the least).
"""

from __future__ import annotations

import abc
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from iinode.errors import StorageError, TransportError
from iinode.node.ratelimit import (
    FailureCounter,
    FailureKey,
    FailureLimiter,
    FailureLimits,
    split_key,
)

if TYPE_CHECKING:
    from iinode.node.settings import NodeSettings

log = logging.getLogger(__name__)

#: File of the shared buckets inside the node's data directory.
FAILURES_FILE = "failures.sqlite3"
#: Scope of the limits of clients, and of neighbour nodes asking for their clients.
CLIENT_SCOPE = "client"
NODE_SCOPE = "node"


class FailureStore(abc.ABC):
    """Buckets (``full_at`` times, see ``ratelimit.Tier``) shared by a node's processes.

    Backends raise ``StorageError`` or ``TransportError`` when they cannot answer.
    """

    @abc.abstractmethod
    async def full_times(
        self, scope: str, source: str, pair: tuple[str, str]
    ) -> tuple[float | None, float | None]:
        """When the buckets of ``source`` and of ``pair`` are full again (None: no bucket)."""

    @abc.abstractmethod
    async def charge(
        self, scope: str, limits: FailureLimits, source: str, pair: tuple[str, str], now: float
    ) -> None:
        """Take a token from both buckets at once, within ``limits``' bounds."""

    @abc.abstractmethod
    async def held(self, scope: str, now: float) -> tuple[int, int]:
        """Source and pair buckets stored for ``scope``, expired ones included."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release connections (a later use opens them again)."""


class SharedFailureLimiter(FailureCounter):
    """The two tiers of ``node.ratelimit`` counted in a ``FailureStore``."""

    def __init__(
        self,
        store: FailureStore,
        scope: str = CLIENT_SCOPE,
        limits: FailureLimits | None = None,
        *,
        clock: Callable[[], float] = time.time,
        pause: float = 5.0,
    ) -> None:
        self.store = store
        self.scope = scope
        self.limits = limits or FailureLimits()
        self._clock = clock
        #: This process's own counts: the first level, and the fallback.
        self.local = FailureLimiter(self.limits, clock)
        #: Seconds the store is left alone after it failed.
        self.pause = pause
        self._down_until = -math.inf
        #: Store operations that failed (each then counted per process only).
        self.errors = 0

    def _available(self) -> bool:
        return self._clock() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        log.warning("failed-authentication counts not shared for %s s: %s", self.pause, exc)
        self._down_until = self._clock() + self.pause

    async def wait(self, key: FailureKey | None) -> float:
        if key is None:
            return 0.0
        known = self.local.retry_after(key)
        if known > 0 or not self._available():
            return known
        source, pair = split_key(key)
        try:
            source_full, pair_full = await self.store.full_times(self.scope, source, pair)
        except (StorageError, TransportError) as exc:
            self._failed(exc)
            return known
        now = self._clock()
        return max(
            self.limits.source_tier.wait(source_full, now),
            self.limits.pair_tier.wait(pair_full, now),
        )

    async def charge(self, key: FailureKey | None) -> None:
        if key is None:
            return
        self.local.failed(key)
        if not self._available():
            return
        source, pair = split_key(key)
        try:
            await self.store.charge(self.scope, self.limits, source, pair, self._clock())
        except (StorageError, TransportError) as exc:
            self._failed(exc)

    def known_wait(self, key: FailureKey | None) -> float:
        return self.local.retry_after(key)

    async def held(self) -> tuple[int, int]:
        """Source and pair buckets in the store for this scope."""
        return await self.store.held(self.scope, self._clock())

    async def aclose(self) -> None:
        await self.store.aclose()


def store_namespace(settings: NodeSettings) -> str:
    """The node's key namespace in a shared Redis: its name, else its prefix."""
    name = settings.name or settings.prefix or "recursive"
    return name.replace("%", "%25").replace(":", "%3A")


def failure_store_for(settings: NodeSettings) -> FailureStore | None:
    """Where the node's processes share their failure counts: the Redis of
    ``cache_url`` if set, else ``<data dir>/failures.sqlite3``; ``None`` (each
    process counts alone) for a node whose store is in memory (one process)."""
    if settings.cache_url:
        from iinode.node.failure_redis import RedisFailureStore

        return RedisFailureStore(settings.cache_url, store_namespace(settings))
    if settings.store_url in ("memory:", "memory://"):
        return None
    from iinode.node.failure_sqlite import SQLiteFailureStore

    return SQLiteFailureStore(settings.data_dir / FAILURES_FILE)


__all__ = [
    "CLIENT_SCOPE",
    "FAILURES_FILE",
    "NODE_SCOPE",
    "FailureStore",
    "SharedFailureLimiter",
    "failure_store_for",
    "store_namespace",
]
