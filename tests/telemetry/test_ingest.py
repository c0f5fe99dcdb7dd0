from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from iinode.connectivity import json_scheme
from iinode.errors import StorageError
from iinode.telemetry.bus import MemoryBus, ReadingBus
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.model import DataType, Equipment, Quality, Reading, Tag, now_us
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


class TrustingValidator(ReadingValidator):
    """Passes everything through, as a validator without the timestamp check did."""

    async def validate(self, readings: Sequence[Reading]) -> list[Reading]:
        return list(readings)


async def test_readings_the_store_refuses_are_split_out_and_the_rest_stored(
    tmp_path: Path,
) -> None:
    bus = MemoryBus()
    store = ParquetStore(tmp_path / "ts")
    validator = TrustingValidator(MemoryRegistry([EQ]))
    worker = IngestWorker(bus, validator, store, retry_delay=0, linger=0)
    t = now_us()
    good = [Reading(EQ.id, "temp", t + i, float(i)) for i in range(100)]
    bad = [Reading(EQ.id, "temp", -5, 1.0), Reading(EQ.id, "temp", 1 << 62, 2.0)]
    await bus.publish(good[:37] + bad[:1] + good[37:80])
    await bus.publish(good[80:] + bad[1:])
    sub = await bus.subscribe()
    assert await worker.step(sub) == 100
    assert bus.points == 0  # acknowledged: nothing is retried for ever
    assert store.count() == 100
    assert validator.rejects.counts == {RejectReason.UNSTORABLE: 2}
    assert {r.reading for r in validator.rejects.recent} == set(bad)
    assert worker.stats.rejected == 2
    assert worker.stats.writes < 2 * 2 * 8  # two bad readings, log2(102) halvings each


async def test_bad_json_timestamp_does_not_stop_ingest(tmp_path: Path) -> None:
    bus = MemoryBus()
    store = ParquetStore(tmp_path / "ts")
    validator = ReadingValidator(MemoryRegistry([EQ]))
    worker = IngestWorker(bus, validator, store, retry_delay=0, linger=0)
    topic = json_scheme.topic_for(EQ.id)
    t_ms = now_us() // 1000
    for ts in (t_ms, -5, t_ms + 1, -11_644_473_600_000):
        await bus.publish(json_scheme.decode(topic, json_scheme.encode({"temp": 1.0}, ts), 0))
    sub = await bus.subscribe()
    assert await worker.step(sub) == 2
    assert bus.points == 0
    assert store.count() == 2
    assert validator.rejects.counts == {RejectReason.BAD_TIMESTAMP: 2}


class ExplodingStore(ParquetStore):
    """Fails like a library bug would (not an IinodeError), a given number of times."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root)
        self.failures = failures

    def append(self, readings: Sequence[Reading]) -> int:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("pyarrow: unexpected internal error")
        return super().append(readings)


async def test_worker_survives_unexpected_exceptions(tmp_path: Path) -> None:
    bus = MemoryBus(max_points=50)
    store = ExplodingStore(tmp_path / "ts", failures=3)
    worker = IngestWorker(
        bus, ReadingValidator(MemoryRegistry([EQ])), store, retry_delay=0.01, wait=0.05, linger=0
    )
    task = asyncio.create_task(worker.run())
    t = now_us()
    async with asyncio.timeout(10):
        # More than the bus holds: publishing only finishes if the worker keeps acknowledging.
        for i in range(20):
            await bus.publish([Reading(EQ.id, "temp", t + i * 10 + k, 1.0) for k in range(10)])
        for _ in range(500):
            if worker.stats.accepted >= 200:
                break
            await asyncio.sleep(0.02)
    assert not task.done()
    worker.stop()
    await task
    assert worker.stats.errors == 3
    assert store.count() == 200
    assert bus.points == 0


async def test_worker_batches_small_deliveries_into_one_write(tmp_path: Path) -> None:
    bus = MemoryBus()
    store = ParquetStore(tmp_path / "ts")
    worker = IngestWorker(
        bus, ReadingValidator(MemoryRegistry([EQ])), store, max_batches=4, flush_points=1000
    )
    t = now_us()
    for i in range(30):
        await bus.publish([Reading(EQ.id, "temp", t + i * 10 + k, 1.0) for k in range(10)])
    sub = await bus.subscribe()
    assert await worker.step(sub) == 300  # 8 fetches of 4 batches, one write
    assert len(store.files()) == 1
    assert worker.stats.writes == 1


async def test_typed_values_through_the_bus_store_and_live(
    make_bus: Callable[..., Awaitable[ReadingBus]], tmp_path: Path
) -> None:
    """Through both buses (the NATS one carries the batch as JSON): 64-bit integers exact,
    booleans, a reading without a value; a JSON device's too-big integer is a float."""
    bus = await make_bus()
    store = ParquetStore(tmp_path / "ts")
    live = LiveState()
    item = Equipment(id="88.118.8/M2", tags=(Tag("n", DataType.INT), Tag("t"),
                                              Tag("on", DataType.BOOL)))  # fmt: skip
    validator = ReadingValidator(MemoryRegistry([item]))
    worker = IngestWorker(bus, validator, store, live, retry_delay=0, linger=0)
    t = now_us()
    device = json_scheme.decode(
        json_scheme.topic_for(item.id), b'{"values": {"n": 18446744073709551616, "t": 2}}', t
    )
    await bus.publish([
        Reading(item.id, "n", t, 2**64 - 1), Reading(item.id, "n", t + 1, -(2**63)),
        Reading(item.id, "on", t + 2, False), Reading(item.id, "t", t + 3, 1.5),
        Reading(item.id, "t", t + 4, None, Quality.BAD),
    ])  # fmt: skip
    await bus.publish(device)
    sub = await bus.subscribe()
    try:
        assert await worker.step(sub) == 6
    finally:
        await sub.close()
    assert validator.rejects.counts == {RejectReason.WRONG_TYPE: 1}  # 2^64 as a float
    assert [(r.tag, r.value, r.quality) for r in store.history(item.id)] == [
        ("n", 2**64 - 1, Quality.GOOD), ("t", 2, Quality.GOOD), ("n", -(2**63), Quality.GOOD),
        ("on", False, Quality.GOOD), ("t", 1.5, Quality.GOOD), ("t", None, Quality.BAD),
    ]  # fmt: skip
    assert [type(r.value) for r in store.history(item.id, "on")] == [bool]
    now = live.get(item.id)
    assert (now["n"].value, now["t"].value, now["t"].quality) == (-(2**63), 1.5, Quality.BAD)
