"""Register maps (no network) and the Modbus poller against a pymodbus server."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest

from iinode.connectivity.modbus import (
    STATE_CODES,
    ModbusFactoryServer,
    ModbusPoller,
    ModbusSettings,
    factory_register_map,
)
from iinode.connectivity.modbus_map import (
    RegisterMap,
    RegisterPoint,
    RegisterType,
    Table,
)
from iinode.errors import ValueInvalid
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.model import Reading
from iinode.telemetry.simulator import Factory, MachineState
from support import free_port

EQ = "88.118.8/PLC-1"
T = RegisterType


def point(tag: str, addr: int, kind: RegisterType, **kw: object) -> RegisterPoint:
    return RegisterPoint(EQ, tag, Table.HOLDING, addr, kind, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "kw", "registers", "value"),
    [
        (T.UINT16, {}, [0xFFFF], 65535),
        (T.INT16, {}, [0xFFFE], -2),
        (T.INT32, {}, [0xFFFF, 0xFFFD], -3),
        (T.UINT32, {"word_order": "little"}, [0x5678, 0x1234], 0x12345678),
        (T.UINT32, {"byte_order": "little"}, [0x3412, 0x7856], 0x12345678),
        (T.FLOAT32, {}, [0x4049, 0x0FDB], 3.1415927410125732),
        (T.FLOAT64, {"word_order": "little"}, [0x0000, 0x0000, 0x0000, 0x3FF8], 1.5),
        (T.INT64, {}, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], -1),
        (T.UINT64, {}, [0, 0, 1, 0], 65536),
        (T.INT16, {"scale": 0.1, "offset": -40.0}, [650], 25.0),
    ],
)
def test_decode_encode(
    kind: RegisterType, kw: dict[str, object], registers: list[int], value: float
) -> None:
    p = point("x", 0, kind, **kw)
    got = p.decode(registers)
    assert math.isclose(got, value)  # type: ignore[arg-type]
    assert p.encode(value) == registers


def test_coils_are_bits() -> None:
    coil = RegisterPoint(EQ, "on", Table.COIL, 3, T.BOOL)
    assert coil.decode([True]) is True
    assert coil.encode(False) == [0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"table": Table.COIL, "type": T.UINT16}, "does not fit coil"),
        ({"table": Table.HOLDING, "type": T.BOOL}, "does not fit holding"),
        ({"address": 65535, "type": T.UINT32}, "out of range"),
        ({"address": -1}, "out of range"),
        ({"byte_order": "middle"}, "byte and word order"),
        ({"scale": 0}, "scale"),
    ],
)
def test_bad_points(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"equipment": EQ, "tag": "t", "table": Table.HOLDING, "address": 0}
    base.update(kwargs)
    with pytest.raises(ValueInvalid, match=message):
        RegisterPoint(**base)  # type: ignore[arg-type]


def test_overlapping_points_are_refused() -> None:
    with pytest.raises(ValueInvalid, match="overlaps"):
        RegisterMap([point("a", 0, T.UINT32), point("b", 1, T.UINT16)])
    RegisterMap([point("a", 0, T.UINT32), RegisterPoint(EQ, "c", Table.INPUT, 1)])


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueInvalid, match="does not fit"):
        point("x", 0, T.UINT16).encode(70000)
    with pytest.raises(ValueInvalid, match="text"):
        point("x", 0, T.UINT16).encode("on")


def test_read_planning_merges_nearby_points_within_limits() -> None:
    points = [
        point("a", 0, T.UINT16),
        point("b", 1, T.FLOAT32),
        point("c", 10, T.UINT16),  # gap of 7: merged
        point("d", 100, T.UINT16),  # far: new request
        point("e", 105, T.FLOAT64),
        RegisterPoint(EQ, "f", Table.COIL, 0, T.BOOL),
        RegisterPoint(EQ, "g", Table.COIL, 1, T.BOOL),
        *(point(f"h{i}", 1000 + 2 * i, T.UINT32) for i in range(70)),  # 140 registers
    ]
    plan = RegisterMap(points).requests
    assert [(r.table, r.address, r.count, len(r.points)) for r in plan] == [
        (Table.COIL, 0, 2, 2),
        (Table.HOLDING, 0, 11, 3),
        (Table.HOLDING, 100, 9, 2),
        (Table.HOLDING, 1000, 124, 62),
        (Table.HOLDING, 1124, 16, 8),
    ]
    with pytest.raises(ValueInvalid, match="expected 11"):
        RegisterMap.decode(plan[1], [0] * 5)


@pytest.fixture
async def plant() -> AsyncIterator[ModbusFactoryServer]:
    factory = Factory.demo("88.118.8", 2, seed=9)
    server = ModbusFactoryServer(
        factory, "127.0.0.1", free_port(), factory_register_map(factory, word_order="little")
    )
    await server.start()
    yield server
    await server.stop()


async def next_batch(bus: MemoryBus) -> list[Reading]:
    sub = await bus.subscribe()
    async with asyncio.timeout(10):
        while True:
            for d in await sub.fetch(1, wait=0.1):
                await d.ack()
                return d.readings


async def test_poller_reads_the_simulated_plant(plant: ModbusFactoryServer) -> None:
    bus = MemoryBus()
    settings = ModbusSettings("127.0.0.1", plant_port(plant), interval=0.05)
    poller = ModbusPoller(settings, plant.map, bus)
    task = asyncio.create_task(poller.run())
    try:
        plant.factory.step(7200)
        plant.update()
        await next_batch(bus)
        got = await next_batch(bus)
    finally:
        poller.stop()
        await task
    m = plant.factory.machines[1]
    values = {(r.equipment, r.tag): r.value for r in got}
    assert values[(m.spec.id, "good_count")] == m.good
    assert values[(m.spec.id, "state")] == STATE_CODES[m.state]
    expected = m.values()["temperature"]
    assert math.isclose(values[(m.spec.id, "temperature")], expected, rel_tol=1e-6)  # type: ignore[arg-type]
    assert len(got) == 2 * 11
    assert poller.stats.errors == 0


def plant_port(plant: ModbusFactoryServer) -> int:
    return int(plant.server.comm_params.source_address[1])  # type: ignore[index]


async def test_wrong_register_map_is_counted_and_polling_goes_on(
    plant: ModbusFactoryServer,
) -> None:
    beyond = RegisterPoint("88.118.8/M001", "ghost", Table.HOLDING, 60000, T.UINT16)
    good = plant.map.points[0]
    bus = MemoryBus()
    poller = ModbusPoller(
        ModbusSettings("127.0.0.1", plant_port(plant), interval=0.05),
        RegisterMap([good, beyond]),
        bus,
    )
    task = asyncio.create_task(poller.run())
    try:
        got = await next_batch(bus)
        got += await next_batch(bus)
    finally:
        poller.stop()
        await task
    assert {r.tag for r in got} == {good.tag}
    assert poller.stats.errors >= 2
    assert "60000" in poller.stats.last_error


async def test_unreachable_device_then_recovery() -> None:
    factory = Factory.demo("88.118.8", 1, seed=1)
    port = free_port()
    bus = MemoryBus()
    settings = ModbusSettings(
        "127.0.0.1", port, interval=0.05, reconnect_min=0.05, reconnect_max=0.1
    )
    register_map = factory_register_map(factory)
    poller = ModbusPoller(settings, register_map, bus)
    task = asyncio.create_task(poller.run())
    server = ModbusFactoryServer(factory, "127.0.0.1", port, register_map)
    try:
        for _ in range(100):
            if poller.stats.errors >= 2:
                break
            await asyncio.sleep(0.05)
        assert poller.stats.errors >= 2
        await server.start()
        got = await next_batch(bus)
    finally:
        poller.stop()
        await task
        await server.stop()
    states = [r.value for r in got if r.tag == "state"]
    assert states == [STATE_CODES[MachineState.IDLE]]
