"""The reading bus: connectors publish batches, ingest workers take them off.

A bus is a work queue shared by all its subscribers (a queue group): each
batch goes to exactly one subscriber, which acknowledges it once stored, or
gives it back (``nak``) to be delivered again.  Memory is bounded: ``publish``
waits while the bus is full, which slows connectors down instead of dropping
data (back-pressure).

:class:`MemoryBus` is the in-process default; the NATS JetStream backend lives
in :mod:`iinode.connectivity.nats_bus`.  Both pass the same test suite.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from iinode.errors import TransportError
from iinode.telemetry.model import Reading


class BusClosed(TransportError):
    """The bus was closed while publishing or fetching."""


class Delivery:
    """One batch handed to one subscriber; call ``ack`` or ``nak`` exactly once."""

    __slots__ = ("_ack", "_done", "_nak", "readings")

    def __init__(
        self,
        readings: list[Reading],
        ack: Callable[[], Awaitable[None]],
        nak: Callable[[], Awaitable[None]],
    ) -> None:
        self.readings = readings
        self._ack = ack
        self._nak = nak
        self._done = False

    async def ack(self) -> None:
        if not self._done:
            self._done = True
            await self._ack()

    async def nak(self) -> None:
        if not self._done:
            self._done = True
            await self._nak()


class Subscription(Protocol):
    async def fetch(self, max_batches: int = 16, wait: float = 1.0) -> list[Delivery]:
        """Up to ``max_batches`` batches; an empty list if none arrive within ``wait`` seconds."""

    async def close(self) -> None: ...


class ReadingBus(Protocol):
    async def publish(self, readings: Sequence[Reading]) -> None:
        """Queue a batch; waits while the bus is full."""

    async def subscribe(self) -> Subscription:
        """Join the queue group of this bus."""

    async def close(self) -> None: ...


class MemoryBus:
    """An in-process bus holding at most ``max_points`` readings (queued or unacknowledged).

    A single batch larger than ``max_points`` is still accepted when the bus is
    empty, so an oversized batch cannot block forever.
    """

    def __init__(self, max_points: int = 100_000) -> None:
        if max_points < 1:
            raise ValueError("max_points must be positive")
        self.max_points = max_points
        self._queue: deque[list[Reading]] = deque()
        self._points = 0
        self._cond = asyncio.Condition()
        self._closed = False

    @property
    def points(self) -> int:
        """Readings held: queued plus delivered but not yet acknowledged."""
        return self._points

    async def publish(self, readings: Sequence[Reading]) -> None:
        if not readings:
            return
        batch = list(readings)
        n = len(batch)
        async with self._cond:
            await self._cond.wait_for(
                lambda: self._closed or self._points == 0 or self._points + n <= self.max_points
            )
            if self._closed:
                raise BusClosed("bus is closed")
            self._queue.append(batch)
            self._points += n
            self._cond.notify_all()

    async def subscribe(self) -> Subscription:
        if self._closed:
            raise BusClosed("bus is closed")
        return _MemorySubscription(self)

    async def close(self) -> None:
        async with self._cond:
            self._closed = True
            self._cond.notify_all()

    async def _take(self, max_batches: int, wait: float) -> list[Delivery]:
        async with self._cond:
            try:
                async with asyncio.timeout(wait):
                    await self._cond.wait_for(lambda: self._closed or bool(self._queue))
            except TimeoutError:
                return []
            if not self._queue and self._closed:
                raise BusClosed("bus is closed")
            out: list[Delivery] = []
            while self._queue and len(out) < max_batches:
                batch = self._queue.popleft()
                out.append(Delivery(batch, self._acker(batch), self._naker(batch)))
            return out

    def _acker(self, batch: list[Reading]) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            async with self._cond:
                self._points -= len(batch)
                self._cond.notify_all()

        return ack

    def _naker(self, batch: list[Reading]) -> Callable[[], Awaitable[None]]:
        async def nak() -> None:
            async with self._cond:
                self._queue.appendleft(batch)
                self._cond.notify_all()

        return nak


class _MemorySubscription:
    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus

    async def fetch(self, max_batches: int = 16, wait: float = 1.0) -> list[Delivery]:
        return await self._bus._take(max_batches, wait)

    async def close(self) -> None:
        return None
