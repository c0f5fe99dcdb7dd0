"""The MQTT connector against a real broker (embedded amqtt and Mosquitto)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt

from iinode.connectivity import json_scheme
from iinode.connectivity.mqtt import MqttConnector, MqttSettings
from iinode.connectivity.sparkplug import EdgeNode, Outgoing, decode_payload
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.model import Reading
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import RejectReason
from support import free_port

NOW_MS = 1_767_225_690_000


def unique() -> str:
    return uuid.uuid4().hex[:10]


def settings_for(broker: tuple[str, int], tag: str, **kw: object) -> MqttSettings:
    return MqttSettings(
        host=broker[0],
        port=broker[1],
        client_id=f"iinode-test-{tag}",
        sparkplug_groups=(f"88.{tag}",),
        json_root=f"test/{tag}",
        host_id=f"host-{tag}",
        reconnect_min=0.05,
        reconnect_max=0.2,
        **kw,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def running(connector: MqttConnector) -> AsyncIterator[MqttConnector]:
    task = asyncio.create_task(connector.run())
    try:
        async with asyncio.timeout(10):
            await connector.connected.wait()
        yield connector
    finally:
        connector.stop()
        async with asyncio.timeout(10):
            await task


async def collect(bus: MemoryBus, want: int, limit: float = 10.0) -> list[Reading]:
    return await collect_until(bus, lambda got: len(got) >= want, limit)


async def collect_until(
    bus: MemoryBus, done: Callable[[list[Reading]], bool], limit: float = 10.0
) -> list[Reading]:
    sub = await bus.subscribe()
    got: list[Reading] = []
    async with asyncio.timeout(limit):
        while not done(got):
            for d in await sub.fetch(64, wait=0.2):
                got.extend(d.readings)
                await d.ack()
    return got


async def send(client: aiomqtt.Client, out: Outgoing, qos: int = 1) -> None:
    await client.publish(out.topic, out.payload, qos=qos)


async def test_sparkplug_end_to_end(broker: tuple[str, int]) -> None:
    tag = unique()
    bus = MemoryBus()
    live = LiveState()
    connector = MqttConnector(settings_for(broker, tag), bus, live=live)
    edge = EdgeNode(f"88.{tag}", "edge1")
    async with running(connector), aiomqtt.Client(*broker, identifier=f"edge-{tag}") as client:
        await send(client, edge.birth({"uptime": 1}, NOW_MS))
        await send(client, edge.device_birth("PRESS-01", {"temp": 20.0, "state": "idle"}, NOW_MS))
        for i in range(50):
            await send(client, edge.data({"temp": 20.0 + i}, NOW_MS + i + 1, device="PRESS-01"))
        got = await collect(bus, 53)
        await send(client, edge.device_death("PRESS-01", NOW_MS + 100))
        for _ in range(100):
            if live.get(f"88.{tag.upper()}/PRESS-01"):
                break
            await asyncio.sleep(0.02)
    press = [r for r in got if r.equipment == f"88.{tag.upper()}/PRESS-01" and r.tag == "temp"]
    assert [r.value for r in press] == [20.0 + i for i in [0, *range(50)]]
    assert connector.rejects.total == 0
    assert connector.stats.readings == 53


async def test_rebirth_request_reaches_edge_node(broker: tuple[str, int]) -> None:
    tag = unique()
    bus = MemoryBus()
    connector = MqttConnector(settings_for(broker, tag), bus)
    edge = EdgeNode(f"88.{tag}", "edge1")
    async with (
        running(connector),
        aiomqtt.Client(*broker, identifier=f"edge-{tag}") as client,
    ):
        await client.subscribe(f"spBv1.0/88.{tag}/NCMD/edge1", qos=1)
        await send(client, edge.birth({"x": 1}, NOW_MS))
        edge.data({"x": 2}, NOW_MS)  # never sent: a gap in sequence numbers
        await send(client, edge.data({"x": 3}, NOW_MS))
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                answer = edge.on_command(message.topic.value, message.payload, NOW_MS)
                break
        assert [decode_payload(a.payload).seq for a in answer] == [0]
        for a in answer:
            await send(client, a)
        got = await collect(bus, 3)
    assert [r.value for r in got] == [1, 3, 3]
    assert connector.rejects.counts[RejectReason.PROTOCOL] == 1


async def test_json_messages_and_malformed_input(broker: tuple[str, int]) -> None:
    tag = unique()
    bus = MemoryBus()
    connector = MqttConnector(settings_for(broker, tag, sparkplug=False), bus)
    root = f"test/{tag}"
    async with running(connector), aiomqtt.Client(*broker, identifier=f"dev-{tag}") as client:
        await client.publish(f"{root}/88.1/M1", b"garbage", qos=1)
        await client.publish(f"{root}/88.1/M1", json_scheme.encode({"t": 1.5}, NOW_MS), qos=1)
        got = await collect(bus, 1)
        for _ in range(100):
            if connector.rejects.total:
                break
            await asyncio.sleep(0.02)
    assert got == [Reading("88.1/M1", "t", NOW_MS * 1000, 1.5)]
    assert connector.rejects.counts[RejectReason.MALFORMED] == 1


async def test_qos1_messages_sent_while_away_arrive_on_resume(broker: tuple[str, int]) -> None:
    tag = unique()
    root = f"test/{tag}"
    settings = settings_for(broker, tag, sparkplug=False)
    first = MqttConnector(settings, MemoryBus())
    async with running(first):
        pass
    async with aiomqtt.Client(*broker, identifier=f"dev-{tag}") as client:
        for i in range(20):
            await client.publish(f"{root}/88.1/M1", json_scheme.encode({"n": i}, NOW_MS), qos=1)
    bus = MemoryBus()
    async with running(MqttConnector(settings, bus)):
        got = await collect(bus, 20)
    assert sorted(int(r.value) for r in got) == list(range(20))
    cleanup = MqttConnector(
        settings_for(broker, tag, sparkplug=False, persistent_session=False), MemoryBus()
    )
    async with running(cleanup):
        pass


async def test_reconnects_after_link_cut_without_losing_qos1(
    broker: tuple[str, int], link: Any
) -> None:
    tag = unique()
    root = f"test/{tag}"
    bus = MemoryBus()
    connector = MqttConnector(settings_for(("127.0.0.1", link.port), tag, sparkplug=False), bus)

    async def publish(values: range) -> None:
        async with aiomqtt.Client(*broker, identifier=f"dev-{tag}") as client:
            for i in values:
                await client.publish(f"{root}/88.1/M1", json_scheme.encode({"n": i}, NOW_MS), qos=1)

    task = asyncio.create_task(connector.run())
    async with asyncio.timeout(10):
        await connector.connected.wait()
    await publish(range(10))
    got = await collect(bus, 10)
    await link.down()
    for _ in range(100):
        if not connector.connected.is_set():
            break
        await asyncio.sleep(0.02)
    assert not connector.connected.is_set()
    await publish(range(10, 30))  # sent while the connector is cut off
    await link.up()
    async with asyncio.timeout(10):
        await connector.connected.wait()
    got += await collect_until(
        bus, lambda more: {int(r.value) for r in got + more} >= set(range(30))
    )
    connector.stop()
    await task
    # QoS 1 is at-least-once: a message may come twice across a cut, but none is lost.
    assert {int(r.value) for r in got} == set(range(30))
    assert connector.stats.connects == 2
    assert connector.stats.disconnects >= 1


async def test_unreachable_broker_keeps_retrying() -> None:
    port = free_port()
    connector = MqttConnector(settings_for(("127.0.0.1", port), unique()), MemoryBus())
    task = asyncio.create_task(connector.run())
    for _ in range(100):
        if connector.stats.disconnects >= 2:
            break
        await asyncio.sleep(0.05)
    connector.stop()
    async with asyncio.timeout(5):
        await task
    assert connector.stats.disconnects >= 2
    assert connector.stats.connects == 0
