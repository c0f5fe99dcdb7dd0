"""An enterprise node connects the OPC UA and Modbus equipment registered over its REST API.

Real peers: an asyncua server and a pymodbus server started by the test serve a
simulated factory; readings are queried back over HTTP by equipment identifier.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.node_support import auth_for, running_node
from iinode.connectivity.endpoints import modbus_connection, opcua_connection
from iinode.connectivity.modbus import ModbusFactoryServer, factory_register_map
from iinode.connectivity.opcua import OpcUaFactoryServer
from iinode.identifiers import HandleName
from iinode.monitoring.node_sources import sources_of
from iinode.node.settings import Role
from iinode.telemetry.model import Equipment
from iinode.telemetry.simulator import Factory
from support import free_port

ENT = "88.118.8"


async def metrics(c: httpx.AsyncClient) -> dict[str, dict[str, float]]:
    """``name -> {connector label (or ''): value}``."""
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families((await c.get("/metrics")).text):
        for s in family.samples:
            out.setdefault(s.name, {})[s.labels.get("connector", "")] = s.value
    return out


async def eventually(check: Any, limit: float = 20.0) -> None:
    for _ in range(int(limit / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not reached within {limit} s")


@pytest.fixture
async def plant() -> AsyncIterator[tuple[Factory, OpcUaFactoryServer, ModbusFactoryServer]]:
    """Two machines behind an OPC UA server and a Modbus server (values moving)."""
    factory = Factory.demo(ENT, 2, seed=11)
    opcua = OpcUaFactoryServer(factory, f"opc.tcp://127.0.0.1:{free_port()}/plant/")
    modbus = ModbusFactoryServer(
        factory, "127.0.0.1", free_port(), factory_register_map(factory, state_labels=True),
        identity={"VendorName": "Schneider Electric", "ProductCode": "TM218LDA16DRN",
                  "MajorMinorRevision": "5.1.0.6", "ProductName": "Modicon M218"},
    )  # fmt: skip
    await opcua.start()
    await opcua.server.set_build_info(
        "urn:siemens:s7-1200", "Siemens AG", "SIMATIC S7-1200", "V4.4", "4.4.0.1",
        datetime(2020, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    await modbus.start()

    async def move() -> None:
        while True:
            factory.step(30)
            await opcua.update()
            modbus.update()
            await asyncio.sleep(0.1)

    mover = asyncio.create_task(move())
    try:
        yield factory, opcua, modbus
    finally:
        mover.cancel()
        await asyncio.gather(mover, return_exceptions=True)
        await opcua.stop()
        await modbus.stop()


def modbus_port(server: ModbusFactoryServer) -> int:
    address = server.server.comm_params.source_address
    assert address is not None
    return address[1]


def equipment(
    factory: Factory, opcua: OpcUaFactoryServer, modbus: ModbusFactoryServer
) -> list[Equipment]:
    one, two = factory.equipment()
    nodes = {t.tag: t.node_id for t in opcua.node_tags() if t.equipment == one.id}
    points = [p for p in modbus.map.points if p.equipment == two.id]
    port = modbus_port(modbus)
    return [
        Equipment(one.id, model=one.model, vendor=one.vendor, tags=one.tags,
                  connection=opcua_connection(opcua.endpoint, nodes, publishing_ms=50)),
        Equipment(two.id, model=two.model, vendor=two.vendor, tags=two.tags,
                  connection=modbus_connection("127.0.0.1", port, points, interval=0.2)),
    ]  # fmt: skip


async def test_registered_opcua_and_modbus_equipment_is_read_by_the_node(
    tmp_path: Path,
    plant: tuple[Factory, OpcUaFactoryServer, ModbusFactoryServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory, opcua, modbus = plant
    caplog.set_level(logging.WARNING)
    async with running_node(tmp_path, Role.ENTERPRISE, ENT, mqtt_port=free_port()) as node:
        c = node.http
        connectors = node.extensions.telemetry.connectors
        for item in equipment(factory, opcua, modbus):
            r = await c.put(f"/telemetry/equipment/{item.id}", json=item.to_json(),
                            auth=auth_for(ENT))  # fmt: skip
            assert r.status_code == 200, r.text
        one, two = (m.spec.id for m in factory.machines)

        async def stored(handle: str, tag: str, at_least: int = 2) -> bool:
            r = await c.get(f"/telemetry/equipment/{handle}/history", params={"tag": tag})
            return r.status_code == 200 and len(r.json()["readings"]) >= at_least

        await eventually(lambda: stored(one, "temperature"))  # OPC UA
        await eventually(lambda: stored(two, "temperature"))  # Modbus
        await eventually(lambda: stored(two, "state", 1))  # labels: text, as the tag says
        state = (await c.get(f"/telemetry/equipment/{two}/history",
                             params={"tag": "state"})).json()["readings"][0]  # fmt: skip
        assert state["value"] in ("running", "idle", "setup", "down")
        assert node.extensions.telemetry.rejects.total == 0

        ua_name = f"opcua:{opcua.endpoint}"
        mb_name = f"modbus:127.0.0.1:{modbus_port(modbus)}/1"
        seen = await metrics(c)
        assert seen["iinode_connector_up"][ua_name] == 1.0
        assert seen["iinode_connector_up"][mb_name] == 1.0
        assert seen["iinode_connector_readings_total"][ua_name] > 0
        assert seen["iinode_connector_readings_total"][mb_name] > 0
        assert seen["iinode_connector_invalid_equipment"][""] == 0.0

        # what the peers say they are reaches the asset inventory (and CVE matching)
        sources = sources_of(node.extensions)
        assert sources is not None

        async def discovered() -> bool:
            held = {str(a.handle): a for a in sources.inventory.inventory}
            return one in held and two in held and held[two].source.value == "modbus"

        await eventually(discovered)
        held = {str(a.handle): a for a in sources.inventory.inventory}
        assert held[one].source.value == "opcua"
        assert held[one].vendor == "Siemens AG"
        assert held[two].product == "Modicon M218"

        # a wrong register map is refused at registration and nothing is written
        bad = Equipment(f"{ENT}/M003", tags=factory.equipment()[0].tags,
                        connection=modbus_connection("127.0.0.1", 1502, []))  # fmt: skip
        body = bad.to_json()
        body["connection"]["registers"] = [
            {"tag": "temperature", "address": 0, "type": "float32"},
            {"tag": "good_count", "address": 1, "type": "uint32"},
        ]
        r = await c.put(f"/telemetry/equipment/{bad.id}", json=body, auth=auth_for(ENT))
        assert r.status_code == 400
        assert "good_count overlaps" in r.json()["detail"]
        assert (await c.get(f"/telemetry/equipment/{bad.id}")).status_code == 404
        assert (await c.get(f"/api/handles/{bad.id}")).status_code == 404

        # an unreachable endpoint: a clear error in the log and the metrics; the rest goes on
        dead_url = f"opc.tcp://127.0.0.1:{free_port()}/nobody/"
        dead_connection = opcua_connection(dead_url, {"temperature": "ns=2;i=1"})
        dead = Equipment(
            f"{ENT}/M004", tags=factory.equipment()[0].tags, connection=dead_connection
        )
        r = await c.put(f"/telemetry/equipment/{dead.id}", json=dead.to_json(), auth=auth_for(ENT))
        assert r.status_code == 200, r.text
        dead_name = f"opcua:{dead_url}"

        async def failing() -> bool:
            return (await metrics(c)).get("iinode_connector_failures_total", {}).get(
                dead_name, 0) >= 2  # fmt: skip

        await eventually(failing)
        seen = await metrics(c)
        assert seen["iinode_connector_up"][dead_name] == 0.0
        assert seen["iinode_connector_up"][ua_name] == 1.0
        assert any(dead_url in r.getMessage() and "retrying" in r.getMessage()
                   for r in caplog.records)  # fmt: skip
        before = len((await c.get(f"/telemetry/equipment/{one}/history")).json()["readings"])
        await eventually(lambda: stored(one, "temperature", before // 11 + 3))
        assert (await c.get("/api/handles/" + one)).status_code == 200  # resolution still works

        # removing equipment stops its connector; changing it restarts with the new details
        r = await c.delete(f"/telemetry/equipment/{dead.id}", auth=auth_for(ENT))
        assert r.status_code == 204

        async def gone() -> bool:
            return dead_name not in (await metrics(c))["iinode_connector_up"]

        await eventually(gone)
        moved = equipment(factory, opcua, modbus)[1]
        body = moved.to_json()
        body["connection"]["interval"] = 0.1
        r = await c.put(f"/telemetry/equipment/{moved.id}", json=body, auth=auth_for(ENT))
        assert r.status_code == 200

        async def restarted() -> bool:
            poller = connectors.connector(mb_name)
            return poller is not None and poller.settings.interval == 0.1

        await eventually(restarted)
        assert connectors.invalid == {}
        assert HandleName.parse(two)  # still a handle, still connected
        await eventually(lambda: stored(two, "power", 3))
