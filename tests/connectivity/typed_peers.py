"""Peers holding values of every type: an asyncua server, a pymodbus server.

Values chosen to show loss: 2^53+1 is the first integer a double cannot hold,
2^64-1 the largest UInt64, -2^63 the smallest Int64.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua
from asyncua.common.node import Node
from asyncua.server.server import Server
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator.simdata import SimData
from pymodbus.simulator.simdevice import SimDevice
from pymodbus.simulator.simutils import DataType

BIG = 2**53 + 1
U64 = 2**64 - 1
I64 = -(2**63)

#: tag -> (OPC UA variant type, value); node ids ns=<n>;i=<1000 + position>
OPCUA_VALUES: dict[str, tuple[ua.VariantType, Any]] = {
    "count": (ua.VariantType.Int64, BIG),
    "serial": (ua.VariantType.UInt64, U64),
    "small": (ua.VariantType.Int32, -7),
    "on": (ua.VariantType.Boolean, True),
    "state": (ua.VariantType.String, "running"),
    "temp": (ua.VariantType.Double, 21.5),
}


@dataclass
class OpcUaPeer:
    endpoint: str
    server: Server
    nodes: dict[str, str] = field(default_factory=dict)  # tag -> node id text
    variables: dict[str, Node] = field(default_factory=dict)

    async def write(self, tag: str, value: ua.DataValue) -> None:
        await self.server.write_attribute_value(self.variables[tag].nodeid, value)


@asynccontextmanager
async def opcua_peer(port: int) -> AsyncIterator[OpcUaPeer]:
    endpoint = f"opc.tcp://127.0.0.1:{port}/typed/"
    server = Server()
    await server.init()
    server.set_endpoint(endpoint)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace("urn:iinode:test:typed")
    plc = await server.nodes.objects.add_object(ua.NodeId("PLC", ns), "PLC")
    peer = OpcUaPeer(endpoint, server)
    for i, (tag, (kind, value)) in enumerate(OPCUA_VALUES.items()):
        node_id = ua.NodeId(1000 + i, ns)
        peer.variables[tag] = await plc.add_variable(node_id, tag, ua.Variant(value, kind))
        peer.nodes[tag] = node_id.to_string()
    await server.start()
    try:
        yield peer
    finally:
        await server.stop()


def words(fmt: str, value: int) -> list[int]:
    raw = struct.pack(">" + fmt, value)
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


#: tag -> (holding address, register type, value)
MODBUS_VALUES: dict[str, tuple[int, str, int]] = {
    "serial": (0, "uint64", U64),
    "count": (4, "int64", BIG),
    "offset": (8, "int64", I64),
    "small": (12, "int32", -7),
}


@asynccontextmanager
async def modbus_peer(port: int) -> AsyncIterator[list[int]]:
    """Holding registers of unit 1 with :data:`MODBUS_VALUES`; yields the register image."""
    codes = {"uint64": "Q", "int64": "q", "int32": "i"}
    image = [0] * 32
    for address, kind, value in MODBUS_VALUES.values():
        regs = words(codes[kind], value)
        image[address : address + len(regs)] = regs

    async def action(
        function_code: int, start: int, address: int, count: int, current: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:  # fmt: skip
        current[:] = image[start : start + len(current)]
        return None

    block = SimData(0, count=len(image), values=0, datatype=DataType.REGISTERS)
    server = ModbusTcpServer(SimDevice(1, [block], action=action), address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    try:
        for _ in range(100):
            if server.transport is not None:
                break
            await asyncio.sleep(0.02)
        yield image
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        await asyncio.gather(task, return_exceptions=True)
