"""The resolution cache shared by all server processes of a node (the second level).

Each process keeps its in-process ``ResolutionCache`` as the driver's
synchronous first level.  Behind it a ``SharedCache`` (Redis in production)
holds what any process has learnt, so one worker's walk through the hierarchy
serves every other worker.  The transport loop (``run_resolution``) asks it
before sending a query and fills it from the answers the driver accepted; the
driver itself stays free of I/O.

Keys are namespaced per node: ``iinode:<namespace>:a:<handle>`` holds an answer
(a record, or "not found"), ``iinode:<namespace>:s:<prefix>`` a delegation (the
record whose HS_SITE values serve the prefix).  A value is one kind octet
(0 not found, 1 record, 2 delegation), the wall-clock expiry as an 8-octet
IEEE double, and, for records and delegations, the values in the RFC 3651 wire
form (``encode_record``).  The key's own TTL is the record's TTL (the negative
TTL for "not found"), so Redis drops entries when they expire.  An answer read
back carries the time it has left: relative TTLs are lowered to the remaining
seconds, so neither level keeps it longer than the first process was allowed to.

A shared cache that fails (Redis down, a timeout, a garbled value) never fails
a resolution: the operation counts as an error and answers "nothing cached",
and after an error the cache is bypassed for ``retry_after`` seconds.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import math
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from iinode.errors import ConfigurationError, HandleError, TransportError
from iinode.identifiers import (
    HandleName,
    Prefix,
    Record,
    SiteData,
    TTLType,
    decode_record,
    encode_record,
)
from iinode.resolution.cache import ResolutionCache, record_ttl

if TYPE_CHECKING:
    import redis.asyncio

    from iinode.node.settings import NodeSettings

_HEADER = struct.Struct(">Bd")
_MISSING, _ANSWER, _SITES = 0, 1, 2


@dataclass(frozen=True, slots=True)
class SharedAnswer:
    values: Record | None  # None: the handle does not exist
    remaining: float


@dataclass(frozen=True, slots=True)
class SharedSites:
    prefix: Prefix
    values: Record
    sites: tuple[SiteData, ...]
    remaining: float


class SharedCache(abc.ABC):
    """Answers and delegations shared by a node's processes, each kept for its TTL.

    Backends implement three raw operations on byte keys; this class encodes,
    decodes, counts and absorbs their failures (``TransportError``).
    """

    def __init__(
        self,
        namespace: str,
        *,
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not namespace or ":" in namespace:
            raise ConfigurationError(f"shared cache namespace {namespace!r} is empty or has ':'")
        self.namespace = namespace
        self.retry_after = retry_after
        self._clock = clock
        self._wall = wall_clock
        self._base = f"iinode:{namespace}:".encode()
        self._down_until = -math.inf
        self.hits = 0
        self.misses = 0
        self.stores = 0
        #: Operations that failed (unreachable backend, timeout, garbled value).
        self.errors = 0
        #: Operations skipped while waiting ``retry_after`` after an error.
        self.bypassed = 0

    # -- the backend's raw operations ---------------------------------------------------

    @abc.abstractmethod
    async def _get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...

    @abc.abstractmethod
    async def _set(self, key: bytes, value: bytes, ttl_ms: int) -> None: ...

    @abc.abstractmethod
    async def _delete(self, key: bytes) -> None: ...

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the backend's connections."""

    # -- answers ------------------------------------------------------------------------

    async def get_answer(self, handle: HandleName) -> SharedAnswer | None:
        raw = await self._read([self._answer_key(handle)])
        entry = self._decode(raw[0], (_MISSING, _ANSWER)) if raw else None
        if entry is None:
            self.misses += 1
            return None
        kind, remaining, values = entry
        self.hits += 1
        return SharedAnswer(None if kind == _MISSING else values, remaining)

    async def put_answer(self, handle: HandleName, values: Record) -> None:
        ttl = record_ttl(values, self._wall())
        await self._write(self._answer_key(handle), _ANSWER, ttl, encode_record(values))

    async def put_missing(self, handle: HandleName, negative_ttl: float) -> None:
        await self._write(self._answer_key(handle), _MISSING, negative_ttl, b"")

    # -- delegations --------------------------------------------------------------------

    async def closest_sites(self, prefix: Prefix) -> SharedSites | None:
        """The cached delegation of ``prefix`` or its nearest ancestor (one round trip)."""
        candidates = prefix.ancestors()
        raw = await self._read([self._sites_key(p) for p in candidates])
        for candidate, value in zip(candidates, raw, strict=False):
            entry = self._decode(value, (_SITES,))
            if entry is not None:
                _, remaining, values = entry
                sites = tuple(v.data for v in values if isinstance(v.data, SiteData))
                if sites:
                    self.hits += 1
                    return SharedSites(candidate, values, sites, remaining)
        self.misses += 1
        return None

    async def put_sites(self, prefix: Prefix, values: Record) -> None:
        if any(isinstance(v.data, SiteData) for v in values):
            ttl = record_ttl(values, self._wall())
            await self._write(self._sites_key(prefix), _SITES, ttl, encode_record(values))

    async def forget_sites(self, prefix: Prefix) -> None:
        if self._available():
            try:
                await self._delete(self._sites_key(prefix))
            except TransportError:
                self._failed()

    # -- encoding and failure handling --------------------------------------------------

    def _answer_key(self, handle: HandleName) -> bytes:
        return self._base + b"a:" + str(handle).encode()

    def _sites_key(self, prefix: Prefix) -> bytes:
        return self._base + b"s:" + prefix.text.encode()

    def _available(self) -> bool:
        if self._clock() < self._down_until:
            self.bypassed += 1
            return False
        return True

    def _failed(self) -> None:
        self.errors += 1
        self._down_until = self._clock() + self.retry_after

    async def _read(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not self._available():
            return []
        try:
            return await self._get_many(keys)
        except TransportError:
            self._failed()
            return []

    async def _write(self, key: bytes, kind: int, ttl: float, body: bytes) -> None:
        ttl_ms = int(ttl * 1000)
        if ttl_ms <= 0 or not self._available():
            return
        value = _HEADER.pack(kind, self._wall() + ttl) + body
        try:
            await self._set(key, value, ttl_ms)
        except TransportError:
            self._failed()
        else:
            self.stores += 1

    def _decode(
        self, raw: bytes | None, kinds: tuple[int, ...]
    ) -> tuple[int, float, Record] | None:
        """``(kind, seconds left, values)``, or None if absent, expired or garbled."""
        if raw is None:
            return None
        try:
            kind, expires = _HEADER.unpack_from(raw)
            values = decode_record(raw[_HEADER.size :]) if kind != _MISSING else ()
        except (struct.error, HandleError):
            self.errors += 1
            return None
        if kind not in kinds or (kind == _MISSING and len(raw) != _HEADER.size):
            self.errors += 1
            return None
        remaining = expires - self._wall()
        if remaining <= 0:
            return None
        return kind, remaining, with_remaining_ttl(values, remaining)


def with_remaining_ttl(values: Record, remaining: float) -> Record:
    """``values`` with relative TTLs lowered to ``remaining`` seconds (rounded up)."""
    cap = max(1, math.ceil(remaining))
    return tuple(
        dataclasses.replace(v, ttl=cap) if v.ttl_type is TTLType.RELATIVE and v.ttl > cap else v
        for v in values
    )


class MemorySharedCache(SharedCache):
    """A ``SharedCache`` in this process (tests, and a node with one process)."""

    def __init__(
        self,
        namespace: str,
        *,
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(namespace, retry_after=retry_after, clock=clock, wall_clock=wall_clock)
        self._data: dict[bytes, tuple[bytes, float]] = {}

    async def _get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        now = self._clock()
        out: list[bytes | None] = []
        for key in keys:
            entry = self._data.get(key)
            out.append(entry[0] if entry is not None and entry[1] > now else None)
        return out

    async def _set(self, key: bytes, value: bytes, ttl_ms: int) -> None:
        self._data[key] = (value, self._clock() + ttl_ms / 1000)

    async def _delete(self, key: bytes) -> None:
        self._data.pop(key, None)

    async def aclose(self) -> None:
        self._data.clear()


class RedisSharedCache(SharedCache):
    """A ``SharedCache`` in Redis (``redis://HOST:PORT/DB``), shared by every process."""

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        timeout: float = 0.5,
        retry_after: float = 1.0,
    ) -> None:
        import redis.asyncio as aioredis

        super().__init__(namespace, retry_after=retry_after)
        self.url = url
        try:
            self._redis: redis.asyncio.Redis = aioredis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except ValueError as exc:
            raise ConfigurationError(f"invalid cache_url {redacted(url)!r}: {exc}") from None

    async def _get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        async with _converted():
            values = await self._redis.mget(list(keys))
        return [v.encode() if isinstance(v, str) else v for v in values]

    async def _set(self, key: bytes, value: bytes, ttl_ms: int) -> None:
        async with _converted():
            await self._redis.set(key, value, px=ttl_ms)

    async def _delete(self, key: bytes) -> None:
        async with _converted():
            await self._redis.delete(key)

    async def aclose(self) -> None:
        await self._redis.aclose()


class _converted:
    """Turn Redis and socket errors into ``TransportError`` (the boundary)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: object) -> None:  # fmt: skip
        import redis.exceptions

        if isinstance(exc, (redis.exceptions.RedisError, OSError, asyncio.TimeoutError)):
            raise TransportError(f"shared cache unavailable: {exc}") from exc


class TwoLevelCache(ResolutionCache):
    """The in-process cache (level one) with a ``SharedCache`` behind it (level two)."""

    def __init__(
        self,
        shared: SharedCache,
        max_entries: int = 100_000,
        *,
        negative_ttl: float = 60,
    ) -> None:
        super().__init__(max_entries, negative_ttl=negative_ttl)
        self.shared = shared

    async def aclose(self) -> None:
        await self.shared.aclose()


def shared_cache_from_url(url: str, namespace: str) -> SharedCache | None:
    """The shared cache ``url`` names: ``""`` none, or Redis (``redis://…``)."""
    if not url:
        return None
    if url.split("://", 1)[0] in ("redis", "rediss", "unix"):
        return RedisSharedCache(url, namespace)
    raise ConfigurationError(
        f"cache_url {redacted(url)!r} is not redis://HOST:PORT/DB, rediss:// or unix://"
    )


def node_namespace(settings: NodeSettings) -> str:
    """The key namespace of a node: its name, else its prefix, else ``recursive``."""
    name = settings.name or settings.prefix or "recursive"
    return name.replace("%", "%25").replace(":", "%3A")


def resolution_cache_for(settings: NodeSettings) -> ResolutionCache:
    """The resolution cache a node's settings ask for (two levels if ``cache_url`` is set)."""
    shared = shared_cache_from_url(settings.cache_url, node_namespace(settings))
    if shared is None:
        return ResolutionCache(settings.cache_size, negative_ttl=settings.negative_ttl)
    return TwoLevelCache(shared, settings.cache_size, negative_ttl=settings.negative_ttl)


async def close_resolution_cache(cache: ResolutionCache | None) -> None:
    """Release a two-level cache's connections (nothing to do for one level)."""
    if isinstance(cache, TwoLevelCache):
        await cache.aclose()


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


__all__ = [
    "MemorySharedCache",
    "RedisSharedCache",
    "SharedAnswer",
    "SharedCache",
    "SharedSites",
    "TwoLevelCache",
    "close_resolution_cache",
    "node_namespace",
    "resolution_cache_for",
    "shared_cache_from_url",
    "with_remaining_ttl",
]
