"""Discovery: real asyncua and pymodbus servers tell the connectors who they are; the
inventory names them as CPEs and the CVE feed turns them into findings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime

from iinode.connectivity.modbus import (
    ModbusFactoryServer,
    ModbusPoller,
    ModbusSettings,
    factory_register_map,
)
from iinode.connectivity.opcua import OpcUaConnector, OpcUaFactoryServer, OpcUaSettings
from iinode.identifiers import HandleName, Prefix
from iinode.monitoring.events import Event, EventKind
from iinode.monitoring.inventory import AssetSource
from iinode.monitoring.node_sources import NodeSources
from iinode.monitoring.security import parse_bundle
from iinode.monitoring.sources import SourcesSettings
from iinode.monitoring.vulns import CveFeed
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.simulator import Factory
from support import free_port

PREFIX = "88.118.8"


def collecting() -> tuple[NodeSources, list[Event]]:
    out: list[Event] = []

    def emit(events: Iterable[Event]) -> int:
        before = len(out)
        out.extend(events)
        return len(out) - before

    sources = NodeSources(SourcesSettings(Prefix(PREFIX), window=1.0), emit, feed=CveFeed.sample())
    return sources, out


async def test_opcua_build_info_becomes_an_asset_with_findings() -> None:
    factory = Factory.demo(PREFIX, 1, seed=5)
    server = OpcUaFactoryServer(factory, f"opc.tcp://127.0.0.1:{free_port()}/iinode/")
    await server.start()
    await server.server.set_build_info(
        "urn:siemens:s7-1200", "Siemens AG", "SIMATIC S7-1200", "V4.4", "4.4.0.1",
        datetime(2020, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    sources, events = collecting()
    connector = OpcUaConnector(
        OpcUaSettings(server.endpoint), server.node_tags(), MemoryBus(10_000),
        on_build_info=sources.opcua_hook(f"{PREFIX}/PLC-1"),
    )  # fmt: skip
    task = asyncio.create_task(connector.run())
    try:
        async with asyncio.timeout(15):
            await connector.connected.wait()
    finally:
        connector.stop()
        await task
        await server.stop()
    assert connector.build_info is not None
    assert connector.build_info.manufacturer == "Siemens AG"
    assert connector.build_info.build_number == "4.4.0.1"
    assert await sources.tick() == len(events) == 3
    asset, *findings = events
    assert asset.kind is EventKind.ASSET
    assert asset.asset == HandleName.parse(f"{PREFIX}/PLC-1")
    assert asset.detail is not None
    assert asset.detail["source"] == AssetSource.OPCUA.value
    assert "cpe:2.3:o:siemens:simatic_s7-1200_firmware:4.4:*:*:*:*:*:*:*" in asset.detail["cpes"]
    cves = set()
    for f in findings:
        assert f.kind is EventKind.FINDING
        bundle = parse_bundle(dict(f.detail or {}))
        cves |= {o.name for o in bundle.objects if o.type == "vulnerability"}
    assert cves == {"CVE-2020-15782", "CVE-2020-28397"}
    assert await sources.tick() == 0  # a second session finds nothing new


async def test_modbus_device_identification_becomes_an_asset_with_a_finding() -> None:
    factory = Factory.demo(PREFIX, 1, seed=5)
    register_map = factory_register_map(factory)
    port = free_port()
    server = ModbusFactoryServer(
        factory, "127.0.0.1", port, register_map,
        identity={"VendorName": "Schneider Electric", "ProductCode": "TM218LDA16DRN",
                  "MajorMinorRevision": "5.1.0.6", "ProductName": "Modicon M218"},
    )  # fmt: skip
    await server.start()
    sources, events = collecting()
    bus = MemoryBus(10_000)
    poller = ModbusPoller(
        ModbusSettings("127.0.0.1", port, interval=0.1), register_map, bus,
        on_identity=sources.modbus_hook(f"{PREFIX}/PLC-2"),
    )  # fmt: skip
    task = asyncio.create_task(poller.run())
    try:
        for _ in range(300):
            if poller.identity and poller.stats.polls:
                break
            await asyncio.sleep(0.05)
    finally:
        poller.stop()
        await task
        await server.stop()
    assert poller.identity[0] == "Schneider Electric"
    assert poller.identity[1] == "TM218LDA16DRN"
    assert poller.identity[4] == "Modicon M218"
    await sources.tick()
    asset, finding = events
    assert asset.detail is not None
    assert asset.detail["source"] == "modbus"
    assert asset.detail["cpes"][0].startswith("cpe:2.3:o:schneider-electric:modicon_m218_firmware")
    assert finding.kind is EventKind.FINDING
    names = {o.name for o in parse_bundle(dict(finding.detail or {})).objects
             if o.type == "vulnerability"}  # fmt: skip
    assert names == {"CVE-2021-22800"}
