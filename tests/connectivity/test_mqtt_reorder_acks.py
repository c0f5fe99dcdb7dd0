"""Acknowledgements against Mosquitto: held Sparkplug messages wait, bus outages are survived."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import pytest

from iinode.connectivity import json_scheme
from iinode.connectivity.mqtt import MqttConnector, MqttSettings
from iinode.connectivity.sparkplug import EdgeNode, HostApplication, Outgoing
from iinode.connectivity.sparkplug.host import HostSettings
from iinode.errors import TransportError
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.model import Reading
from support import require_service

NOW_MS = 1_767_225_690_000


@pytest.fixture
def broker() -> tuple[str, int]:
    """Mosquitto: acknowledgements after processing need a broker that waits for them."""
    return require_service("mosquitto")


def make(port: int, tag: str, timeout_s: float) -> tuple[MqttConnector, MemoryBus]:
    bus = MemoryBus()
    settings = MqttSettings(
        port=port,
        client_id=f"iinode-ra-{tag}",
        sparkplug_groups=(f"88.{tag}",),
        json_root=f"ra/{tag}",
        host_id=f"host-ra-{tag}",
        reconnect_min=0.05,
        reconnect_max=0.2,
    )
    host = HostApplication(
        settings.host_id, settings=HostSettings(reorder_timeout_us=int(timeout_s * 1e6))
    )
    return MqttConnector(settings, bus, host=host), bus


@asynccontextmanager
async def running(connector: MqttConnector, port: int) -> AsyncIterator[None]:
    task = asyncio.create_task(connector.run())
    try:
        async with asyncio.timeout(10):
            await connector.connected.wait()
        yield
    finally:
        connector.stop()
        async with asyncio.timeout(10):
            await task
        forget = MqttConnector(
            MqttSettings(port=port, client_id=connector.settings.client_id, sparkplug=False,
                         json_topics=False, persistent_session=False),
            MemoryBus(),
        )  # fmt: skip
        drop = asyncio.create_task(forget.run())
        async with asyncio.timeout(10):
            await forget.connected.wait()
        forget.stop()
        await drop


async def until(check: Callable[[], bool], limit: float = 10.0) -> None:
    for _ in range(int(limit / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not reached within {limit} s")


async def send(client: aiomqtt.Client, out: Outgoing) -> None:
    await client.publish(out.topic, out.payload, qos=1)


async def drain(bus: MemoryBus) -> list[Reading]:
    sub = await bus.subscribe()
    got: list[Reading] = []
    for d in await sub.fetch(1000, wait=0.1):
        got.extend(d.readings)
        await d.ack()
    return got


async def test_held_messages_and_those_after_them_wait_for_the_gap(
    broker: tuple[str, int],
) -> None:
    tag = uuid.uuid4().hex[:10]
    connector, bus = make(broker[1], tag, timeout_s=60)
    edge = EdgeNode(f"88.{tag}", "edge1")
    async with (
        running(connector, broker[1]),
        aiomqtt.Client(*broker, identifier=f"edge-ra-{tag}") as client,
    ):
        await send(client, edge.birth({"x": 0}, NOW_MS))
        await until(lambda: connector.stats.acked == 1)
        seq1 = edge.data({"x": 1}, NOW_MS + 1)  # delayed: seq 2 and 3 wait for it
        await send(client, edge.data({"x": 2}, NOW_MS + 2))
        await send(client, edge.data({"x": 3}, NOW_MS + 3))
        topic = json_scheme.topic_for(f"88.{tag}/M1", f"ra/{tag}")
        await client.publish(topic, json_scheme.encode({"y": 9.0}, NOW_MS), qos=1)
        await until(lambda: connector.stats.messages == 4)
        await asyncio.sleep(0.3)
        assert connector.stats.acked == 1  # held, and the JSON message behind them in order
        assert [r.value for r in await drain(bus)] == [0, 9.0]  # not held: on the bus
        await send(client, seq1)
        await until(lambda: connector.stats.acked == 5)
        assert [r.value for r in await drain(bus)] == [1, 2, 3]


async def test_reorder_timeout_releases_the_acknowledgement(broker: tuple[str, int]) -> None:
    tag = uuid.uuid4().hex[:10]
    connector, bus = make(broker[1], tag, timeout_s=0.5)
    edge = EdgeNode(f"88.{tag}", "edge1")
    async with (
        running(connector, broker[1]),
        aiomqtt.Client(*broker, identifier=f"edge-ra-{tag}") as client,
    ):
        await send(client, edge.birth({"x": 0}, NOW_MS))
        edge.data({"x": 1}, NOW_MS + 1)  # lost for good
        await send(client, edge.data({"x": 2}, NOW_MS + 2))
        await until(lambda: connector.stats.messages == 2)
        assert connector.stats.acked == 1
        await until(lambda: connector.stats.acked == 2, limit=5)
        assert [r.value for r in await drain(bus)] == [0, 2]


async def test_held_message_is_redelivered_after_a_cut(broker: tuple[str, int], link: Any) -> None:
    tag = uuid.uuid4().hex[:10]
    connector, bus = make(link.port, tag, timeout_s=60)
    edge = EdgeNode(f"88.{tag}", "edge1")
    async with (
        running(connector, broker[1]),
        aiomqtt.Client(*broker, identifier=f"edge-ra-{tag}") as client,
    ):
        await send(client, edge.birth({"x": 0}, NOW_MS))
        seq1 = edge.data({"x": 1}, NOW_MS + 1)
        await send(client, edge.data({"x": 2}, NOW_MS + 2))
        await until(lambda: connector.stats.messages == 2)
        await link.down()  # the held message was not acknowledged: the broker keeps it
        await link.up()
        await until(lambda: connector.stats.connects == 2 and connector.connected.is_set())
        await until(lambda: connector.stats.messages == 3)  # seq 2 again, held in place
        await send(client, seq1)
        await until(lambda: connector.stats.messages == 4 and connector.stats.acked == 3)
        assert sorted(r.value for r in await drain(bus)) == [0, 1, 2]


class FlakyBus(MemoryBus):
    """A bus that is away for its first ``failures`` publishes, as NATS in an outage."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def publish(self, readings: Sequence[Reading]) -> None:
        if self.failures:
            self.failures -= 1
            raise TransportError("nats: no servers available for connection")
        await super().publish(readings)


async def test_connector_outlives_a_bus_outage(broker: tuple[str, int]) -> None:
    tag = uuid.uuid4().hex[:10]
    bus = FlakyBus(failures=3)
    settings = MqttSettings(
        port=broker[1],
        client_id=f"iinode-ra-{tag}",
        sparkplug=False,
        json_root=f"ra/{tag}",
        reconnect_min=0.05,
        reconnect_max=0.2,
    )
    connector = MqttConnector(settings, bus)
    topic = json_scheme.topic_for("88.1/M1", f"ra/{tag}")
    async with (
        running(connector, broker[1]),
        aiomqtt.Client(*broker, identifier=f"dev-ra-{tag}") as client,
    ):
        for i in range(20):
            await client.publish(topic, json_scheme.encode({"n": i}, NOW_MS + i), qos=1)
        got: set[float | int | bool | str] = set()
        async with asyncio.timeout(10):
            while len(got) < 20:
                got |= {r.value for r in await drain(bus)}
        assert connector.stats.failures == 3
        assert connector.stats.connects == 4
        assert "no servers available" in connector.stats.last_error
    assert got == set(range(20))  # nothing lost: unacknowledged messages came again
