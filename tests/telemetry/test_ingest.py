from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from iinode.errors import StorageError
from iinode.telemetry.bus import MemoryBus, ReadingBus
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.model import Equipment, Reading, Tag, now_us
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import ReadingValidator, RejectReason

EQ = Equipment(id="88.118.8/M1", tags=(Tag("temp"),))


async def test_workers_store_valid_readings_and_count_rejects(
    make_bus: Callable[..., Awaitable[ReadingBus]], tmp_path: Path
) -> None:
    bus = await make_bus()
    store = ParquetStore(tmp_path / "ts")
    live = LiveState()
    validator = ReadingValidator(MemoryRegistry([EQ]))
    workers = [IngestWorker(bus, validator, store, live, wait=0.1) for _ in range(2)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    t = now_us()
    for i in range(20):
        await bus.publish([Reading(EQ.id, "temp", t + i * 10 + k, float(k)) for k in range(10)])
    await bus.publish([Reading("88.118.8/GHOST", "temp", t, 1.0)])
    for _ in range(200):
        if sum(w.stats.accepted for w in workers) >= 200 and validator.rejects.total >= 1:
            break
        await asyncio.sleep(0.05)
    for w in workers:
        w.stop()
    await asyncio.gather(*tasks)
    assert store.count() == 200
    assert validator.rejects.counts[RejectReason.UNKNOWN_EQUIPMENT] == 1
    assert live.get(EQ.id)["temp"].time_us == t + 199
    assert sum(w.stats.rejected for w in workers) == 1


class FailingStore(ParquetStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.failures = 1

    def append(self, readings: object) -> int:  # type: ignore[override]
        if self.failures:
            self.failures -= 1
            raise StorageError("disk full")
        return super().append(readings)  # type: ignore[arg-type]


async def test_store_failure_returns_batches_to_bus(tmp_path: Path) -> None:
    bus = MemoryBus()
    store = FailingStore(tmp_path / "ts")
    worker = IngestWorker(bus, ReadingValidator(MemoryRegistry([EQ])), store, retry_delay=0)
    await bus.publish([Reading(EQ.id, "temp", now_us(), 1.0)])
    sub = await bus.subscribe()
    assert await worker.step(sub) == 0
    assert worker.stats.store_errors == 1
    assert bus.points == 1
    assert await worker.step(sub) == 1
    assert bus.points == 0
    assert store.count() == 1
