"""Back-pressure through Mosquitto: acknowledge after the bus, let the broker hold the backlog."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from iinode.connectivity import json_scheme
from iinode.connectivity.mqtt import MqttConnector, MqttSettings
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.model import DataType, Equipment, Reading, Tag
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.validation import ReadingValidator
from support import require_service

NOW_MS = 1_767_225_690_000
EQ = "88.1/M1"


@pytest.fixture
def broker() -> tuple[str, int]:
    """Mosquitto only: the embedded broker has no in-flight limit (see MqttSettings.manual_ack)."""
    return require_service("mosquitto")


class SlowStore(ParquetStore):
    """The real store, made slow: every append takes at least ``delay`` seconds."""

    def __init__(self, root: Path, delay: float) -> None:
        super().__init__(root)
        self.delay = delay

    def append(self, readings: Sequence[Reading]) -> int:
        time.sleep(self.delay)
        return super().append(readings)


def stored_values(store: ParquetStore) -> set[int]:
    return {int(r.value) for r in store.history(EQ, "n")}


def settings(tag: str, port: int = 1883, **kw: object) -> MqttSettings:
    return MqttSettings(
        port=port,
        client_id=f"iinode-bp-{tag}",
        sparkplug=False,
        json_root=f"bp/{tag}",
        reconnect_min=0.05,
        reconnect_max=0.2,
        **kw,  # type: ignore[arg-type]
    )


async def publish(port: int, tag: str, values: range) -> None:
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=f"dev-bp-{tag}", max_inflight_messages=100
    ) as client:
        await asyncio.gather(
            *(
                client.publish(f"bp/{tag}/{EQ}", json_scheme.encode({"n": i}, NOW_MS + i), qos=1)
                for i in values
            )
        )


async def forget_session(tag: str, port: int) -> None:
    """Drop the broker's persistent session for this test's client id."""
    connector = MqttConnector(settings(tag, port, persistent_session=False), MemoryBus())
    task = asyncio.create_task(connector.run())
    async with asyncio.timeout(10):
        await connector.connected.wait()
    connector.stop()
    await task


@pytest.mark.parametrize("manual_ack", [True, False], ids=["ack-after-bus", "ack-on-receipt"])
async def test_slow_consumer_keeps_the_backlog_in_the_broker(
    broker: tuple[str, int], tmp_path: Path, manual_ack: bool
) -> None:
    port = broker[1]
    tag = uuid.uuid4().hex[:10]
    n = 400
    bus = MemoryBus(max_points=5)
    validator = ReadingValidator(
        MemoryRegistry([Equipment(id=EQ, tags=(Tag("n", DataType.FLOAT),))])
    )
    store = SlowStore(tmp_path / "ts", delay=0.02)
    worker = IngestWorker(bus, validator, store, max_batches=1, wait=0.05)
    bound = 50 if manual_ack else 1_000
    connector = MqttConnector(
        settings(tag, port, manual_ack=manual_ack, max_queued_messages=bound, batch_points=20),
        bus,
    )
    tasks = [asyncio.create_task(connector.run()), asyncio.create_task(worker.run())]
    try:
        async with asyncio.timeout(10):
            await connector.connected.wait()
        await publish(port, tag, range(n))
        stored_when_published = worker.stats.accepted
        most_held = 0
        async with asyncio.timeout(60):
            while worker.stats.accepted < n or len(stored_values(store)) < n:
                for _ in range(20):
                    most_held = max(most_held, bus.points)
                    await asyncio.sleep(0.005)
    finally:
        connector.stop()
        worker.stop()
        await asyncio.gather(*tasks)
        await forget_session(tag, port)
    assert stored_when_published < n / 2  # the pipeline was well behind the publisher
    assert stored_values(store) == set(range(n))  # a redelivery may be stored twice
    if manual_ack:
        # The broker kept the backlog: the client never held more than its bound; a
        # message turned away by a full queue was redelivered after a reconnect.
        assert connector.stats.max_queued <= bound
        assert most_held <= 20  # one batch above max_points may enter an empty bus
        assert connector.stats.acked >= n
        assert (connector.stats.connects > 1) == (connector.stats.overflows > 0)
    else:
        assert connector.stats.max_queued > 100  # the client library held the backlog


@pytest.mark.parametrize("manual_ack", [True, False], ids=["ack-after-bus", "ack-on-receipt"])
async def test_unacknowledged_messages_are_redelivered_after_a_cut(
    broker: tuple[str, int], link: Any, manual_ack: bool
) -> None:
    port = broker[1]
    tag = uuid.uuid4().hex[:10]
    n = 50
    first_bus = MemoryBus(max_points=1)  # holds one message; nobody takes it off
    first = MqttConnector(
        settings(tag, link.port, manual_ack=manual_ack, batch_points=1), first_bus
    )
    task = asyncio.create_task(first.run())
    try:
        async with asyncio.timeout(10):
            await first.connected.wait()
        await publish(port, tag, range(n))
        await asyncio.sleep(0.5)  # one message accepted, the next blocked on the full bus
        assert first.stats.messages >= 2
        await link.down()  # the connection dies with messages taken but unacknowledged
        first.stop()
        async with asyncio.timeout(10):
            await task
        held = await (await first_bus.subscribe()).fetch(64, wait=0.1)
        accepted = {int(r.value) for d in held for r in d.readings}
        assert accepted == {0}

        bus = MemoryBus()
        second = MqttConnector(settings(tag, port, manual_ack=manual_ack), bus)
        again = asyncio.create_task(second.run())
        async with asyncio.timeout(10):
            await second.connected.wait()
        sub = await bus.subscribe()
        redelivered: set[int] = set()
        for _ in range(10):
            for d in await sub.fetch(64, wait=0.2):
                redelivered |= {int(r.value) for r in d.readings}
                await d.ack()
            if redelivered >= set(range(1, n)):
                break
        second.stop()
        await again
    finally:
        await forget_session(tag, port)
    if manual_ack:
        assert accepted | redelivered == set(range(n))
    else:
        # Acknowledged on receipt, the messages queued in the dead client are gone.
        assert accepted | redelivered != set(range(n))
