"""A simulated factory cell whose machines are served over OPC UA and Modbus TCP.

The cell's first machine is read over OPC UA (one variable per tag), the others
over Modbus (holding registers, the state as a labelled code).  Both servers
serve every machine; :meth:`FieldSimulator.equipment` gives the equipment
records whose connection details tell the node which protocol reads which
machine.  The servers also say what they are: the OPC UA server's BuildInfo
and the Modbus device identification name controllers from the sample CVE
feed, so the node's inventory has something to match.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from iinode.connectivity.endpoints import modbus_connection, opcua_connection
from iinode.connectivity.modbus import ModbusFactoryServer, factory_register_map
from iinode.connectivity.opcua import OpcUaFactoryServer
from iinode.telemetry.model import Equipment, EquipmentKind
from iinode.telemetry.simulator import Factory

#: What the simulated controllers say they are (a Siemens S7-1200, a Modicon M218).
OPCUA_BUILD = ("urn:siemens:s7-1200", "Siemens AG", "SIMATIC S7-1200", "V4.4", "4.4.0.1")
MODBUS_IDENTITY = {
    "VendorName": "Schneider Electric",
    "ProductCode": "TM218LDA16DRN",
    "MajorMinorRevision": "5.1.0.6",
    "ProductName": "Modicon M218",
}


class FieldSimulator:
    """``async with FieldSimulator(factory, host, opcua_port, modbus_port)``; call :meth:`step`."""

    def __init__(
        self,
        factory: Factory,
        host: str,
        opcua_port: int,
        modbus_port: int,
        *,
        publishing_ms: int = 500,
        interval: float = 1.0,
    ) -> None:
        if len(factory.machines) < 2:
            raise ValueError("the cell needs a machine for OPC UA and one for Modbus")
        self.factory = factory
        self.host = host
        self.publishing_ms = publishing_ms
        self.interval = interval
        self.opcua = OpcUaFactoryServer(factory, f"opc.tcp://{host}:{opcua_port}/iinode/")
        self.modbus_port = modbus_port
        self.modbus = ModbusFactoryServer(
            factory, host, modbus_port, factory_register_map(factory, state_labels=True),
            identity=MODBUS_IDENTITY,
        )  # fmt: skip

    async def __aenter__(self) -> Self:
        await self.opcua.start()
        try:
            when = datetime(2020, 1, 1, tzinfo=UTC)
            await self.opcua.server.set_build_info(*OPCUA_BUILD, when)
            await self.modbus.start()
        except BaseException:
            await self.opcua.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.modbus.stop()
        finally:
            await self.opcua.stop()

    def equipment(self) -> list[Equipment]:
        """The machines with the connection details that read them (controllers' kind)."""
        out: list[Equipment] = []
        for i, item in enumerate(self.factory.equipment()):
            if i == 0:
                nodes = {t.tag: t.node_id for t in self.opcua.node_tags() if t.equipment == item.id}
                connection = opcua_connection(
                    self.opcua.endpoint, nodes, publishing_ms=self.publishing_ms
                )
            else:
                points = [p for p in self.modbus.map.points if p.equipment == item.id]
                connection = modbus_connection(
                    self.host, self.modbus_port, points, interval=self.interval
                )
            out.append(Equipment(
                item.id, EquipmentKind.MACHINE, item.model, item.vendor, item.line,
                item.location, connection, item.tags,
            ))  # fmt: skip
        return out

    async def step(self, dt: float) -> None:
        """Advance the machines ``dt`` seconds and serve their new values."""
        self.factory.step(dt)
        await self.opcua.update()
        self.modbus.update()


__all__ = ["MODBUS_IDENTITY", "OPCUA_BUILD", "FieldSimulator"]
