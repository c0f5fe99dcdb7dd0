"""Failed-authentication buckets in Redis, shared by the node's processes.

Used when the node has a ``cache_url`` (its processes already share that
Redis for the resolution cache).  Per scope, under
``iinode:<node>:failures:<scope>:``:

* ``s``: a sorted set of source buckets, each member's score the time its
  bucket is full again (``ratelimit.Tier``);
* ``p``: the same for (address, identity) pairs, the member
  ``<source> NUL <pair as JSON>``;
* ``h:<source>``: the pairs a source holds (at most ``identities_per_source``
  live ones), scored alike.

A check is one round trip of two ``ZSCORE``; a failure is one script, so two
processes charging together lose nothing.  Bounds: every key expires when its
last bucket is full again, and a new bucket first drops the set's expired
members, then (at ``max_sources``) those nearest to full.  Times are the
processes' wall clock (one machine's).

The client is redis-py's blocking one, called in a worker thread: its
connections belong to no event loop, so one store serves every loop of the
process, and nothing is left to close if the process ends without ``aclose``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

from iinode.errors import ConfigurationError, TransportError
from iinode.node.failure_counts import FailureStore
from iinode.node.failure_sqlite import pair_key
from iinode.node.ratelimit import FailureLimits

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis

T = TypeVar("T")

#: Charge a source bucket and (within the source's allowance) a pair bucket.
#: KEYS: sources set, pairs set, the source's held set.  ARGV: now, source, pair
#: member, source interval, source capacity, pair interval, pair capacity, bound,
#: identities per source, prefix of held sets.
_CHARGE = """
local now = tonumber(ARGV[1])
local bound = tonumber(ARGV[8])

local function charged(set, member, interval, capacity)
  local full = tonumber(redis.call('ZSCORE', set, member))
  local live = full ~= nil and full > now
  if not live then full = now end
  return math.min(full + interval, now + capacity), live
end

local function expire_with_latest(key)
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if top[2] then
    redis.call('PEXPIREAT', key, math.ceil(tonumber(top[2]) * 1000))
  end
end

local function make_room(set, held_prefix)
  if redis.call('ZCARD', set) < bound then return end
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
  local excess = redis.call('ZCARD', set) - bound + 1
  if excess <= 0 then return end
  local dropped = redis.call('ZPOPMIN', set, excess)
  if held_prefix then
    for i = 1, #dropped, 2 do
      local member = dropped[i]
      local cut = string.find(member, '\\0', 1, true)
      redis.call('ZREM', held_prefix .. string.sub(member, 1, cut - 1), member)
    end
  end
end

local full, live = charged(KEYS[1], ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5]))
if not live then make_room(KEYS[1], nil) end
redis.call('ZADD', KEYS[1], full, ARGV[2])
expire_with_latest(KEYS[1])

redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
full, live = charged(KEYS[2], ARGV[3], tonumber(ARGV[6]), tonumber(ARGV[7]))
if not live then
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[9]) then return 0 end
  make_room(KEYS[2], ARGV[10])
end
redis.call('ZADD', KEYS[2], full, ARGV[3])
redis.call('ZADD', KEYS[3], full, ARGV[3])
expire_with_latest(KEYS[2])
expire_with_latest(KEYS[3])
return 1
"""


class RedisFailureStore(FailureStore):
    """Buckets in the Redis at ``url`` (``redis://HOST:PORT/DB``, ``rediss://``, ``unix://``)."""

    def __init__(self, url: str, namespace: str, *, timeout: float = 0.5) -> None:
        import redis

        if not namespace or ":" in namespace:
            raise ConfigurationError(f"failure count namespace {namespace!r} is empty or has ':'")
        try:
            self._redis: redis.Redis = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except ValueError as exc:
            raise ConfigurationError(f"invalid cache_url for failure counts: {exc}") from None
        self._script = self._redis.register_script(_CHARGE)
        self._base = f"iinode:{namespace}:failures:"

    def _keys(self, scope: str) -> tuple[str, str, str]:
        base = f"{self._base}{scope}:"
        return base + "s", base + "p", base + "h:"

    @staticmethod
    def _member(source: str, pair: tuple[str, str]) -> str:
        return source.replace("\0", "\\0") + "\0" + pair_key(pair)

    async def _call(self, operation: Callable[[], T]) -> T:
        import redis.exceptions

        try:
            return await asyncio.to_thread(operation)
        except (redis.exceptions.RedisError, OSError) as exc:
            raise TransportError(f"failure counts in Redis unavailable: {exc}") from exc

    async def full_times(
        self, scope: str, source: str, pair: tuple[str, str]
    ) -> tuple[float | None, float | None]:
        sources, pairs, _ = self._keys(scope)
        member = self._member(source, pair)

        def read() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zscore(sources, source.replace("\0", "\\0"))
            pipe.zscore(pairs, member)
            return pipe.execute()

        source_full, pair_full = await self._call(read)
        return (
            None if source_full is None else float(source_full),
            None if pair_full is None else float(pair_full),
        )

    async def charge(
        self, scope: str, limits: FailureLimits, source: str, pair: tuple[str, str], now: float
    ) -> None:
        sources, pairs, held = self._keys(scope)
        safe = source.replace("\0", "\\0")
        s, p = limits.source_tier, limits.pair_tier
        args: list[str | int] = [repr(now), safe, self._member(source, pair), repr(s.interval),
                repr(s.capacity), repr(p.interval), repr(p.capacity), limits.max_sources,
                limits.identities_per_source, held]  # fmt: skip
        await self._call(lambda: self._script(keys=[sources, pairs, held + safe], args=args))

    async def held(self, scope: str, now: float) -> tuple[int, int]:
        sources, pairs, _ = self._keys(scope)

        def count() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zcard(sources)
            pipe.zcard(pairs)
            return pipe.execute()

        counts = await self._call(count)
        return int(counts[0]), int(counts[1])

    async def aclose(self) -> None:
        await self._call(self._redis.close)


__all__ = ["RedisFailureStore"]
