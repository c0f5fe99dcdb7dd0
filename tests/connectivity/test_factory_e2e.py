"""One simulated factory through OPC UA and Modbus into the store, read back over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from fastapi import FastAPI

from iinode.api.telemetry import TelemetryApp, telemetry_router
from iinode.connectivity.modbus import (
    ModbusFactoryServer,
    ModbusPoller,
    ModbusSettings,
    factory_register_map,
)
from iinode.connectivity.opcua import OpcUaConnector, OpcUaFactoryServer, OpcUaSettings
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.model import DataType, Equipment, Tag
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.simulator import Factory
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import ReadingValidator
from support import free_port


async def test_opcua_and_modbus_plants_are_stored_and_served(tmp_path: Path) -> None:
    ua_plant = Factory.demo("88.118.8", 2, seed=21)
    mb_plant = Factory.demo("88.118.9", 2, seed=22)
    registry = MemoryRegistry(ua_plant.equipment("opcua") + [
        # over Modbus the machine state arrives as its numeric code
        Equipment(id=e.id, connection=e.connection, tags=tuple(
            Tag(t.name, DataType.INT) if t.name == "state" else t for t in e.tags
        ))
        for e in mb_plant.equipment("modbus")
    ])  # fmt: skip
    validator = ReadingValidator(registry, max_future_us=10**15)
    bus = MemoryBus()
    store = ParquetStore(tmp_path / "ts")
    live = LiveState()
    worker = IngestWorker(bus, validator, store, live, wait=0.05)

    ua_server = OpcUaFactoryServer(ua_plant, f"opc.tcp://127.0.0.1:{free_port()}/iinode/")
    register_map = factory_register_map(mb_plant)
    mb_port = free_port()
    mb_server = ModbusFactoryServer(mb_plant, "127.0.0.1", mb_port, register_map)
    await ua_server.start()
    await mb_server.start()
    ua = OpcUaConnector(OpcUaSettings(ua_server.endpoint, publishing_ms=20),
                        ua_server.node_tags(), bus)  # fmt: skip
    mb = ModbusPoller(ModbusSettings("127.0.0.1", mb_port, interval=0.05), register_map, bus)
    tasks = [asyncio.create_task(x.run()) for x in (worker, ua, mb)]
    try:
        async with asyncio.timeout(10):
            await ua.connected.wait()
        for _ in range(5):
            ua_plant.step(600)
            mb_plant.step(600)
            await ua_server.update()
            mb_server.update()
            await asyncio.sleep(0.2)
        want = ua_plant.machines[1].good
        for _ in range(100):
            count = live.get("88.118.8/M002").get("good_count")
            if live.get("88.118.9/M002") and count is not None and count.value == want:
                break
            await asyncio.sleep(0.05)
    finally:
        for x in (ua, mb, worker):
            x.stop()
        await asyncio.gather(*tasks)
        await ua_server.stop()
        await mb_server.stop()
    assert validator.rejects.total == 0

    api = FastAPI()
    api.include_router(telemetry_router(TelemetryApp(registry, store, live, validator.rejects)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://n") as c:
        ua_live = (await c.get("/telemetry/equipment/88.118.8/M002/live")).json()["tags"]
        mb_live = (await c.get("/telemetry/equipment/88.118.9/M001/live")).json()["tags"]
        history = (
            await c.get("/telemetry/equipment/88.118.8/M001/history", params={"tag": "good_count"})
        ).json()["readings"]
    assert ua_live["good_count"]["value"] == ua_plant.machines[1].good
    assert mb_live["good_count"]["value"] == mb_plant.machines[0].good
    assert [h["value"] for h in history][-1] == ua_plant.machines[0].good
    assert len({h["time"] for h in history}) >= 5
