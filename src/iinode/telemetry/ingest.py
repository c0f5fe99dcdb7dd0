"""The ingest worker: bus → validation → store → live state.

Each worker pulls batches from the bus (a queue group, so several workers can
share one bus) until it holds ``flush_points`` readings or ``linger`` seconds
have passed, validates them, appends the accepted readings to the store in one
durable write (a few larger files rather than many small ones), updates the
live state, and only then acknowledges.

Failures never stop the worker:

* readings the store refuses as they are (``ValueInvalid``: a value or time it
  cannot hold) are isolated by splitting the write in halves until each bad
  reading is alone; the good ones are stored, the bad ones counted as
  ``unstorable`` rejects, and the batches acknowledged;
* a store failure (``StorageError``: disk full, I/O error) or anything
  unexpected gives the batches back to the bus (``nak``), is counted and
  logged, and the worker waits ``retry_delay`` before the next round.  Nothing
  acknowledged is ever lost; a retry after a partly stored split may store
  some readings twice (compaction removes exact duplicates).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from iinode.errors import StorageError, ValueInvalid
from iinode.telemetry.bus import BusClosed, Delivery, ReadingBus, Subscription
from iinode.telemetry.model import Reading
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import ReadingValidator, Reject, RejectReason

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IngestStats:
    batches: int = 0
    accepted: int = 0
    rejected: int = 0
    store_errors: int = 0
    #: Rounds that failed for an unexpected reason (batches returned to the bus).
    errors: int = 0
    #: Store writes made (one per round, more when bad readings were split out).
    writes: int = 0


class IngestWorker:
    """Moves readings from a bus into the store; run with ``await worker.run()``."""

    def __init__(
        self,
        bus: ReadingBus,
        validator: ReadingValidator,
        store: ParquetStore,
        live: LiveState | None = None,
        *,
        max_batches: int = 64,
        wait: float = 0.2,
        retry_delay: float = 0.5,
        flush_points: int = 50_000,
        linger: float = 0.25,
    ) -> None:
        if flush_points < 1 or linger < 0:
            raise ValueInvalid("flush_points must be positive and linger not negative")
        self.bus = bus
        self.validator = validator
        self.store = store
        self.live = live
        self.max_batches = max_batches
        self.wait = wait
        self.retry_delay = retry_delay
        self.flush_points = flush_points
        self.linger = linger
        self.stats = IngestStats()
        #: Told of every stored batch of accepted readings (monitoring); they must not raise.
        self.observers: list[Callable[[list[Reading]], None]] = []
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        sub = await self.bus.subscribe()
        try:
            while not self._stopping.is_set():
                try:
                    await self.step(sub)
                except BusClosed:
                    return
        finally:
            await sub.close()

    async def _gather(self, sub: Subscription) -> list[Delivery]:
        """Batches for one write: up to ``flush_points`` readings or ``linger`` seconds."""
        deliveries = await sub.fetch(self.max_batches, wait=self.wait)
        if not deliveries:
            return deliveries
        points = sum(len(d.readings) for d in deliveries)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger
        while points < self.flush_points and (left := deadline - loop.time()) > 0:
            more = await sub.fetch(self.max_batches, wait=left)
            if not more:
                break
            deliveries += more
            points += sum(len(d.readings) for d in more)
        return deliveries

    async def step(self, sub: Subscription) -> int:
        """One round of fetch, validate, store and acknowledge; returns the readings stored."""
        deliveries = await self._gather(sub)
        if not deliveries:
            return 0
        batch: list[Reading] = []
        for d in deliveries:
            batch.extend(d.readings)
        try:
            accepted = await self.validator.validate(batch)
            self.stats.rejected += len(batch) - len(accepted)
            stored = await self._append(accepted)
        except Exception as exc:  # the worker must outlive any failure
            if isinstance(exc, StorageError):
                self.stats.store_errors += 1
                log.error("telemetry store append failed, batches returned to the bus: %s", exc)
            else:
                self.stats.errors += 1
                log.exception("telemetry ingest round failed, batches returned to the bus")
            await self._give_back(deliveries)
            await asyncio.sleep(self.retry_delay)
            return 0
        if self.live is not None:
            self.live.update(stored)
        for observe in self.observers:
            try:
                observe(stored)
            except Exception:  # an observer must not stop ingest
                log.exception("telemetry ingest observer failed")
        for d in deliveries:
            await d.ack()
        self.stats.batches += len(deliveries)
        self.stats.accepted += len(stored)
        return len(stored)

    async def _append(self, readings: Sequence[Reading]) -> list[Reading]:
        """Store ``readings``, splitting out any the store refuses; returns those stored."""
        if not readings:
            return []
        self.stats.writes += 1
        try:
            await asyncio.to_thread(self.store.append, readings)
        except ValueInvalid as exc:
            if len(readings) == 1:
                r = readings[0]
                self.stats.rejected += 1
                self.validator.rejects.add(
                    Reject(RejectReason.UNSTORABLE, f"{r.equipment} {r.tag}: {exc.message}", r)
                )
                return []
            mid = len(readings) // 2
            return await self._append(readings[:mid]) + await self._append(readings[mid:])
        return list(readings)

    @staticmethod
    async def _give_back(deliveries: list[Delivery]) -> None:
        for d in deliveries:
            try:
                await d.nak()
            except Exception as exc:  # the bus redelivers unacknowledged batches
                log.warning("returning a batch to the bus failed: %s", exc)
