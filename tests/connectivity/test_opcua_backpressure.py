"""The OPC UA connector's buffer is bounded while the bus holds it back (asyncua server)."""

from __future__ import annotations

import asyncio

import pytest

from iinode.connectivity.opcua import NodeTag, OpcUaConnector, OpcUaFactoryServer, OpcUaSettings
from iinode.errors import ValueInvalid
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.simulator import Factory
from support import free_port

PREFIX = "88.118.8"


async def test_a_stuck_bus_bounds_the_buffer_and_counts_what_is_dropped() -> None:
    factory = Factory.demo(PREFIX, 2, seed=9)
    server = OpcUaFactoryServer(factory, f"opc.tcp://127.0.0.1:{free_port()}/iinode/")
    await server.start()
    bus = MemoryBus(10)  # holds one batch; nobody consumes until the end
    connector = OpcUaConnector(
        OpcUaSettings(server.endpoint, publishing_ms=20, max_pending=40), server.node_tags(), bus
    )
    task = asyncio.create_task(connector.run())
    try:
        async with asyncio.timeout(15):
            await connector.connected.wait()
            most = 0
            while connector.stats.dropped < 200:
                factory.step(30)
                await server.update()
                most = max(most, len(connector._pending))
                await asyncio.sleep(0.01)
        assert most <= 40
        assert connector.stats.readings <= 40  # the one batch the bus took (at most 40)
        # once the bus moves again, everything not dropped arrives
        sub = await bus.subscribe()
        got = 0
        connector.stop()
        async with asyncio.timeout(15):
            while not task.done() or bus.points:
                for d in await sub.fetch(64, wait=0.05):
                    got += len(d.readings)
                    await d.ack()
        await task
    finally:
        connector.stop()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
    s = connector.stats
    assert s.dropped >= 200
    assert got == s.changes - s.dropped
    assert s.readings == got


def test_max_pending_must_be_positive() -> None:
    with pytest.raises(ValueInvalid):
        OpcUaSettings("opc.tcp://127.0.0.1:4840", max_pending=0)


async def test_a_node_the_server_does_not_have_is_counted_and_the_rest_read() -> None:
    factory = Factory.demo(PREFIX, 1, seed=9)
    server = OpcUaFactoryServer(factory, f"opc.tcp://127.0.0.1:{free_port()}/iinode/")
    await server.start()
    bus = MemoryBus(10_000)
    tags = [*server.node_tags(), NodeTag(f"ns={server.ns};s=nope", f"{PREFIX}/M001", "nope")]
    connector = OpcUaConnector(OpcUaSettings(server.endpoint, publishing_ms=20), tags, bus)
    task = asyncio.create_task(connector.run())
    try:
        async with asyncio.timeout(15):
            await connector.connected.wait()
        for _ in range(500):
            if connector.stats.readings >= 11:
                break
            await asyncio.sleep(0.02)
    finally:
        connector.stop()
        await task
        await server.stop()
    assert connector.stats.readings >= 11  # every node the server has
    assert connector.stats.bad_nodes == 1
    assert connector.stats.failures == 0
