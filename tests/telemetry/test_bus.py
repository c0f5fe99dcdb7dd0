"""The same tests for every bus backend (memory and NATS JetStream)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from iinode.telemetry.bus import BusClosed, MemoryBus, ReadingBus
from iinode.telemetry.model import Quality, Reading

MakeBus = Callable[..., Awaitable[ReadingBus]]


def batch(start: int, n: int = 100) -> list[Reading]:
    return [
        Reading("88.118.8/M1", "t", start + i, float(i) if i % 2 else i, Quality.GOOD)
        for i in range(n)
    ]


async def drain(bus: ReadingBus, want: int, limit: float = 5.0) -> list[Reading]:
    sub = await bus.subscribe()
    got: list[Reading] = []
    async with asyncio.timeout(limit):
        while len(got) < want:
            for d in await sub.fetch(16, wait=0.5):
                got.extend(d.readings)
                await d.ack()
    await sub.close()
    return got


async def test_round_trip_keeps_order_and_types(make_bus: MakeBus) -> None:
    bus = await make_bus()
    sub = await bus.subscribe()
    sent = [*batch(0, 10), Reading("88.1/X", "s", 5, "text", Quality.BAD)]
    await bus.publish(sent)
    await bus.publish([])
    deliveries = await sub.fetch(4, wait=2.0)
    assert len(deliveries) == 1
    assert deliveries[0].readings == sent
    assert [type(r.value) for r in deliveries[0].readings[:2]] == [int, float]
    await deliveries[0].ack()
    assert await sub.fetch(1, wait=0.2) == []
    await sub.close()


async def test_queue_group_shares_work(make_bus: MakeBus) -> None:
    bus = await make_bus()
    subs = [await bus.subscribe() for _ in range(3)]
    for i in range(30):
        await bus.publish(batch(i * 1000, 10))
    seen: list[list[int]] = [[] for _ in subs]

    async def worker(k: int) -> None:
        while sum(len(s) for s in seen) < 300:
            for d in await subs[k].fetch(2, wait=0.2):
                seen[k].extend(r.time_us for r in d.readings)
                await d.ack()
                await asyncio.sleep(0)

    async with asyncio.timeout(10):
        await asyncio.gather(*(worker(k) for k in range(3)))
    all_times = sorted(t for s in seen for t in s)
    assert all_times == sorted(i * 1000 + j for i in range(30) for j in range(10))
    for s in subs:
        await s.close()


async def test_nak_redelivers(make_bus: MakeBus) -> None:
    bus = await make_bus()
    sub = await bus.subscribe()
    await bus.publish(batch(0, 5))
    first = await sub.fetch(1, wait=2.0)
    await first[0].nak()
    async with asyncio.timeout(5):
        again: list[Reading] = []
        while not again:
            for d in await sub.fetch(1, wait=0.5):
                again = d.readings
                await d.ack()
    assert again == first[0].readings
    await sub.close()


async def test_back_pressure_blocks_publisher_until_acked(make_bus: MakeBus) -> None:
    bus = await make_bus(max_points=300)
    for i in range(3):
        await bus.publish(batch(i * 100))
    blocked = asyncio.create_task(bus.publish(batch(999)))
    await asyncio.sleep(0.3)
    assert not blocked.done()
    got = await drain(bus, 400)
    async with asyncio.timeout(5):
        await blocked
    assert len(got) == 400


async def test_many_batches_none_lost(make_bus: MakeBus) -> None:
    bus = await make_bus(max_points=2_000)
    consumer = asyncio.create_task(drain(bus, 20_000, limit=20))
    for i in range(200):
        await bus.publish(batch(i * 100))
    got = await consumer
    assert len(got) == 20_000
    assert len({r.time_us for r in got}) == 20_000


async def test_memory_bus_accounting_and_close() -> None:
    bus = MemoryBus(max_points=10)
    await bus.publish(batch(0, 50))  # oversized batch accepted when empty
    assert bus.points == 50
    sub = await bus.subscribe()
    [d] = await sub.fetch()
    assert bus.points == 50
    await d.ack()
    await d.ack()
    assert bus.points == 0
    await bus.close()
    with pytest.raises(BusClosed):
        await bus.publish(batch(0, 1))
    with pytest.raises(BusClosed):
        await sub.fetch(wait=0.1)
    with pytest.raises(BusClosed):
        await bus.subscribe()
    with pytest.raises(ValueError, match="positive"):
        MemoryBus(0)
