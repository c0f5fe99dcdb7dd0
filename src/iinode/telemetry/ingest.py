"""The ingest worker: bus → validation → store → live state.

Each worker pulls batches from the bus (a queue group, so several workers can
share one bus), validates them, appends the accepted readings to the store in
one write per fetch, updates the live state, and only then acknowledges.  If
the store fails, the batches are given back to the bus (``nak``) and the error
is counted; nothing acknowledged is ever lost.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from iinode.errors import IinodeError
from iinode.telemetry.bus import BusClosed, ReadingBus, Subscription
from iinode.telemetry.model import Reading
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import ReadingValidator

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IngestStats:
    batches: int = 0
    accepted: int = 0
    rejected: int = 0
    store_errors: int = 0


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
    ) -> None:
        self.bus = bus
        self.validator = validator
        self.store = store
        self.live = live
        self.max_batches = max_batches
        self.wait = wait
        self.retry_delay = retry_delay
        self.stats = IngestStats()
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

    async def step(self, sub: Subscription) -> int:
        """One round of fetch, validate, store and acknowledge; returns the readings stored."""
        deliveries = await sub.fetch(self.max_batches, wait=self.wait)
        if not deliveries:
            return 0
        batch: list[Reading] = []
        for d in deliveries:
            batch.extend(d.readings)
        before = self.validator.rejects.total
        accepted = await self.validator.validate(batch)
        self.stats.rejected += self.validator.rejects.total - before
        try:
            await asyncio.to_thread(self.store.append, accepted)
        except IinodeError as exc:
            self.stats.store_errors += 1
            log.error("telemetry store append failed, batches returned to the bus: %s", exc)
            for d in deliveries:
                await d.nak()
            await asyncio.sleep(self.retry_delay)
            return 0
        if self.live is not None:
            self.live.update(accepted)
        for d in deliveries:
            await d.ack()
        self.stats.batches += len(deliveries)
        self.stats.accepted += len(accepted)
        return len(accepted)
