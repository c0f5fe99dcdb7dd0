"""The OPC UA connector against an asyncua server started by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from asyncua import ua

from iinode.connectivity.opcua import (
    NodeTag,
    OpcUaConnector,
    OpcUaFactoryServer,
    OpcUaSettings,
    browse_variables,
    quality_of,
)
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.model import Quality, Reading
from iinode.telemetry.simulator import Factory
from support import free_port

PREFIX = "88.118.8"


@pytest.fixture
async def served() -> AsyncIterator[OpcUaFactoryServer]:
    factory = Factory.demo(PREFIX, 2, seed=5)
    server = OpcUaFactoryServer(factory, f"opc.tcp://127.0.0.1:{free_port()}/iinode/")
    await server.start()
    yield server
    await server.stop()


async def drain(bus: MemoryBus, until: int, limit: float = 10) -> list[Reading]:
    sub = await bus.subscribe()
    got: list[Reading] = []
    async with asyncio.timeout(limit):
        while len(got) < until:
            for d in await sub.fetch(64, wait=0.1):
                got.extend(d.readings)
                await d.ack()
    return got


def test_status_codes_become_qualities() -> None:
    assert quality_of(None) is Quality.GOOD
    assert quality_of(ua.StatusCode(ua.StatusCodes.Good)) is Quality.GOOD
    assert quality_of(ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)) is Quality.UNCERTAIN
    assert quality_of(ua.StatusCode(ua.StatusCodes.BadSensorFailure)) is Quality.BAD


async def test_browse_finds_every_machine_tag(served: OpcUaFactoryServer) -> None:
    found = await browse_variables(served.endpoint)
    assert len(found) == 2 * 11
    assert (f"ns={served.ns};s={PREFIX}/M001/temperature", f"/{PREFIX}/M001/temperature") in found
    assert sorted(n for n, _ in found) == sorted(t.node_id for t in served.node_tags())


async def test_subscribes_to_changes_with_source_timestamps(served: OpcUaFactoryServer) -> None:
    bus = MemoryBus()
    tags = [t for t in served.node_tags() if t.tag in ("temperature", "good_count", "state")]
    connector = OpcUaConnector(OpcUaSettings(served.endpoint, publishing_ms=20), tags, bus)
    task = asyncio.create_task(connector.run())
    try:
        async with asyncio.timeout(10):
            await connector.connected.wait()
        initial = await drain(bus, len(tags))
        served.factory.step(3600)
        await served.update()
        changed = await drain(bus, len(tags))
    finally:
        connector.stop()
        await task
    assert {(r.equipment, r.tag) for r in initial} == {(t.equipment, t.tag) for t in tags}
    machine = served.factory.machines[0]
    latest = {(r.equipment, r.tag): r for r in changed}
    good = latest[(machine.spec.id, "good_count")]
    assert good.value == machine.good
    assert good.time_us == served.factory.time_us
    assert good.quality is Quality.GOOD
    assert latest[(machine.spec.id, "state")].value == machine.state.value


async def test_unreachable_server_then_recovery() -> None:
    factory = Factory.demo(PREFIX, 1, seed=5)
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/iinode/"
    bus = MemoryBus()
    node = NodeTag("ns=2;s=88.118.8/M001/temperature", "88.118.8/M001", "temperature")
    settings = OpcUaSettings(endpoint, timeout=1, reconnect_min=0.05, reconnect_max=0.2)
    connector = OpcUaConnector(settings, [node], bus)
    task = asyncio.create_task(connector.run())
    server = OpcUaFactoryServer(factory, endpoint)
    try:
        for _ in range(100):
            if connector.stats.failures >= 2:
                break
            await asyncio.sleep(0.05)
        assert connector.stats.failures >= 2
        await server.start()
        async with asyncio.timeout(15):
            await connector.connected.wait()
        got = await drain(bus, 1)
    finally:
        connector.stop()
        await task
        await server.stop()
    assert got[0].tag == "temperature"
    assert connector.stats.connects == 1
