"""Modbus TCP: a poller that reads a register map into readings, and a simulator server.

The poller reads every planned request once per interval and publishes the
decoded values as one batch.  A failed request (exception response, timeout,
lost connection) is counted and logged; the poller reconnects with back-off
and keeps going.  After connecting it asks the device who it is (Read Device
Identification, function 43 / MEI 14, regular objects 0-6) and hands the
objects to ``on_identity``; a device that does not implement it is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import DeviceInformation, ExcCodes, MoreData
from pymodbus.exceptions import ModbusException
from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.pdu.mei_message import ReadDeviceInformationResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator.simdata import SimData
from pymodbus.simulator.simdevice import SimDevice
from pymodbus.simulator.simutils import DataType

from iinode.connectivity.modbus_map import (
    ReadRequest,
    RegisterMap,
    RegisterPoint,
    RegisterType,
    Table,
)
from iinode.errors import ValueInvalid
from iinode.telemetry.bus import ReadingBus
from iinode.telemetry.model import Reading, now_us
from iinode.telemetry.simulator import TAGS, Factory, MachineState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModbusSettings:
    host: str
    port: int = 502
    device_id: int = 1
    interval: float = 1.0
    timeout: float = 2.0
    reconnect_min: float = 0.2
    reconnect_max: float = 30.0


@dataclass(slots=True)
class ModbusStats:
    polls: int = 0
    errors: int = 0
    readings: int = 0
    last_error: str = ""


#: Read Device Identification rounds before giving up on a device that keeps saying "more".
_MAX_ID_ROUNDS = 8


async def read_device_identification(
    client: AsyncModbusTcpClient, device_id: int = 1
) -> dict[int, str]:
    """The device's identification objects (0 VendorName, 1 ProductCode, 2 Revision,
    3 VendorUrl, 4 ProductName, 5 ModelName, 6 UserApplicationName) it has; ``{}`` if
    it answers with an exception (the function is optional in the specification)."""
    out: dict[int, str] = {}
    object_id = 0
    for _ in range(_MAX_ID_ROUNDS):
        rr = await client.read_device_information(
            read_code=DeviceInformation.REGULAR, object_id=object_id, device_id=device_id
        )
        if rr.isError() or not isinstance(rr, ReadDeviceInformationResponse):
            return out
        for key, raw in rr.information.items():
            if isinstance(raw, bytes | bytearray):
                out[int(key)] = bytes(raw).decode("utf-8", "replace").strip("\x00 ")
        if rr.more_follows != MoreData.KEEP_READING or rr.next_object_id <= object_id:
            return out
        object_id = rr.next_object_id
    return out


class ModbusPoller:
    """Runs until :meth:`stop`; start with ``asyncio.create_task(poller.run())``."""

    def __init__(
        self,
        settings: ModbusSettings,
        register_map: RegisterMap,
        bus: ReadingBus,
        clock: Callable[[], int] = now_us,
        *,
        on_identity: Callable[[dict[int, str]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.map = register_map
        self.bus = bus
        self.clock = clock
        self.on_identity = on_identity
        #: The identification objects the device gave on the last connection.
        self.identity: dict[int, str] = {}
        self.stats = ModbusStats()
        #: Set while a TCP connection to the device is open.
        self.connected = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def _read(self, client: AsyncModbusTcpClient, req: ReadRequest) -> list[int] | list[bool]:
        dev = self.settings.device_id
        if req.table is Table.HOLDING:
            rr = await client.read_holding_registers(req.address, count=req.count, device_id=dev)
        elif req.table is Table.INPUT:
            rr = await client.read_input_registers(req.address, count=req.count, device_id=dev)
        elif req.table is Table.COIL:
            rr = await client.read_coils(req.address, count=req.count, device_id=dev)
        else:
            rr = await client.read_discrete_inputs(req.address, count=req.count, device_id=dev)
        if rr.isError():
            raise ModbusException(f"{req.table.value} {req.address}+{req.count}: {rr}")
        return list(rr.bits[: req.count]) if req.table.is_bits else list(rr.registers)

    async def poll_once(self, client: AsyncModbusTcpClient) -> list[Reading]:
        """One pass over the map; requests that fail are counted and skipped."""
        t = self.clock()
        out: list[Reading] = []
        for req in self.map.requests:
            try:
                values = await self._read(client, req)
                decoded = RegisterMap.decode(req, values)
            except (ModbusException, ValueInvalid) as exc:
                self.stats.errors += 1
                self.stats.last_error = str(exc)
                log.warning("Modbus %s:%s: %s", self.settings.host, self.settings.port, exc)
                if not client.connected:
                    raise
                continue
            out.extend(Reading(p.equipment, p.tag, t, v) for p, v in decoded)
        self.stats.polls += 1
        return out

    async def run(self) -> None:
        s = self.settings
        delay = s.reconnect_min
        while not self._stopping.is_set():
            client = AsyncModbusTcpClient(s.host, port=s.port, timeout=s.timeout, retries=0)
            try:
                if not await client.connect():
                    raise ModbusException(f"cannot connect to {s.host}:{s.port}")
                delay = s.reconnect_min
                self.connected.set()
                await self._discover(client)
                while not self._stopping.is_set():
                    readings = await self.poll_once(client)
                    if readings:
                        await self.bus.publish(readings)
                        self.stats.readings += len(readings)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), s.interval)
            except (ModbusException, OSError) as exc:
                self.stats.errors += 1
                self.stats.last_error = str(exc)
                log.warning("Modbus %s:%s: %s; retrying in %.1f s", s.host, s.port, exc, delay)
            finally:
                self.connected.clear()
                client.close()
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, s.reconnect_max)

    async def _discover(self, client: AsyncModbusTcpClient) -> None:
        try:
            identity = await read_device_identification(client, self.settings.device_id)
        except ModbusException as exc:
            log.info("Modbus %s:%s: no device identification (%s)",
                     self.settings.host, self.settings.port, exc)  # fmt: skip
            if not client.connected:
                raise
            return
        self.identity = identity
        if identity and self.on_identity is not None:
            self.on_identity(identity)


STATE_CODES = {s: i for i, s in enumerate(MachineState)}
_TYPES = {"int": RegisterType.UINT32, "float": RegisterType.FLOAT32}


def factory_register_map(
    factory: Factory, *, word_order: str = "big", state_labels: bool = False
) -> RegisterMap:
    """A holding-register layout for the simulator: 100 registers per machine.

    ``state`` is a uint16 code (running 0, idle 1, setup 2, down 3), read as
    that number or, with ``state_labels``, as the state's name; counts are
    uint32; measurements are float32.  Machine ``i`` starts at ``100 * i``.
    """
    labels = tuple((code, state.value) for state, code in STATE_CODES.items())
    points: list[RegisterPoint] = []
    for i, m in enumerate(factory.machines):
        address = 100 * i
        for tag in TAGS:
            kind = RegisterType.UINT16 if tag.name == "state" else _TYPES[tag.data_type.value]
            named = labels if state_labels and tag.name == "state" else ()
            point = RegisterPoint(
                m.spec.id, tag.name, Table.HOLDING, address, kind, word_order=word_order,
                labels=named,
            )  # fmt: skip
            points.append(point)
            address += point.width
    return RegisterMap(points)


class ModbusFactoryServer:
    """Serves a simulated factory's values as holding registers (device id 1)."""

    def __init__(
        self,
        factory: Factory,
        host: str,
        port: int,
        register_map: RegisterMap,
        *,
        identity: dict[str, str] | None = None,
    ) -> None:
        """``identity``: Read Device Identification objects by pymodbus name
        (``VendorName``, ``ProductCode``, ``MajorMinorRevision``, ``ProductName`` ...)."""
        self.factory = factory
        self.map = register_map
        self.size = 100 * len(factory.machines) + 100
        self.image = [0] * self.size
        block = SimData(0, count=self.size, values=0, datatype=DataType.REGISTERS)
        device = SimDevice(1, [block], action=self._action)
        ident = ModbusDeviceIdentification(info_name=identity) if identity else None  # type: ignore[no-untyped-call]
        self.server = ModbusTcpServer(device, address=(host, port), identity=ident)
        self._task: asyncio.Task[None] | None = None

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        current[:] = self.image[start_address : start_address + len(current)]
        return None

    def update(self) -> None:
        """Copy the machines' current values into the registers."""
        values = {m.spec.id: m.values() for m in self.factory.machines}
        for p in self.map.points:
            value = values[p.equipment][p.tag]
            if p.tag == "state" and not p.labels:
                value = STATE_CODES[MachineState(str(value))]
            self.write(p, p.encode(value))

    def write(self, point: RegisterPoint, registers: Sequence[int]) -> None:
        self.image[point.address : point.address + len(registers)] = list(registers)

    async def start(self) -> None:
        self.update()
        self._task = asyncio.create_task(self.server.serve_forever())
        for _ in range(100):
            if self.server.transport is not None:
                return
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        await self.server.shutdown()  # type: ignore[no-untyped-call]
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
