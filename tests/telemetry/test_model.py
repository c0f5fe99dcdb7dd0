from __future__ import annotations

from datetime import UTC, datetime

import pytest

from iinode.errors import HandleNotFound, ValueInvalid
from iinode.telemetry.model import (
    Connection,
    DataType,
    Equipment,
    EquipmentKind,
    Quality,
    Reading,
    Tag,
    from_us,
    to_us,
)
from iinode.telemetry.registry import EquipmentRegistry, MemoryRegistry
from iinode.telemetry.twin import LiveState

PRESS = Equipment(
    id="88.118.8/PRESS-01",
    kind=EquipmentKind.MACHINE,
    model="HP-400",
    vendor="Acme",
    line="88.118.8/LINE-A",
    location="Hall 2",
    connection=Connection("opcua", "opc.tcp://127.0.0.1:4840", (("ns", "2"),)),
    tags=(
        Tag("temperature", DataType.FLOAT, "degC"),
        Tag("count", DataType.INT),
        Tag("running", DataType.BOOL),
        Tag("state", DataType.STRING),
    ),
)


def test_time_conversions_round_trip() -> None:
    moment = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    assert from_us(to_us(moment)) == moment
    assert to_us(datetime(1970, 1, 1, 0, 0, 1)) == 1_000_000


@pytest.mark.parametrize(
    ("code", "good", "name"),
    [(192, True, "GOOD"), (0, False, "BAD"), (64, False, "UNCERTAIN"), (216, True, "GOOD_216")],
)
def test_quality_codes(code: int, good: bool, name: str) -> None:
    q = Quality(code)
    assert int(q) == code
    assert q.is_good is good
    assert q.name == name


def test_quality_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="256"):
        Quality(256)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"equipment": "PRESS-01"}, "not a handle"),
        ({"tag": ""}, "non-empty"),
        ({"time_us": 1.5}, "must be an int"),
        ({"value": [1]}, "unsupported type"),
    ],
)
def test_reading_checks_shape(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"equipment": "88.1/X", "tag": "t", "time_us": 1, "value": 1.0}
    base.update(kwargs)
    with pytest.raises(ValueInvalid, match=message):
        Reading(**base)  # type: ignore[arg-type]


def test_reading_prefix_and_quality_coercion() -> None:
    r = Reading("88.118.8/PRESS-01", "t", 1, 2.0, 192)  # type: ignore[arg-type]
    assert r.prefix == "88.118.8"
    assert r.quality is Quality.GOOD


@pytest.mark.parametrize(
    ("data_type", "good", "bad"),
    [
        (DataType.FLOAT, [1.0, 2], [True, "1"]),
        (DataType.INT, [1, -5], [1.0, False]),
        (DataType.BOOL, [True], [1, "true"]),
        (DataType.STRING, ["x"], [1]),
    ],
)
def test_data_type_accepts(data_type: DataType, good: list[object], bad: list[object]) -> None:
    assert all(data_type.accepts(v) for v in good)
    assert not any(data_type.accepts(v) for v in bad)


def test_equipment_json_round_trip_and_normalisation() -> None:
    assert Equipment.from_json(PRESS.to_json()) == PRESS
    lower = Equipment(id="88.118.8/x", line="88.118.8/l")
    assert lower.id == "88.118.8/x"
    assert Equipment(id="cn.a/x").id == "CN.A/x"


def test_equipment_rejects_bad_input() -> None:
    with pytest.raises(ValueInvalid, match="duplicate"):
        Equipment(id="88.1/X", tags=(Tag("a"), Tag("a")))
    with pytest.raises(ValueInvalid, match="invalid equipment"):
        Equipment.from_json({"kind": "machine"})
    with pytest.raises(ValueInvalid, match="invalid tag"):
        Tag.from_json({"name": "x", "data_type": "complex"})


async def test_memory_registry() -> None:
    reg = MemoryRegistry()
    assert isinstance(reg, EquipmentRegistry)
    await reg.put(PRESS)
    await reg.put(Equipment(id="88.118.9/OTHER"))
    await reg.put(Equipment(id="88.118.8.1/SUB"))
    assert await reg.get("88.118.8/PRESS-01") == PRESS
    assert await reg.get("88.118.8/NOPE") is None
    assert await reg.get("not a handle") is None
    assert [e.id for e in await reg.list("88.118.8")] == ["88.118.8.1/SUB", "88.118.8/PRESS-01"]
    assert len(await reg.list()) == 3
    await reg.remove("88.118.9/OTHER")
    with pytest.raises(HandleNotFound):
        await reg.remove("88.118.9/OTHER")


def test_live_state_keeps_latest() -> None:
    twin = LiveState()
    eq = PRESS.id
    assert twin.update([Reading(eq, "temperature", 10, 20.0), Reading(eq, "count", 10, 1)]) == 2
    assert twin.update([Reading(eq, "temperature", 5, 99.0)]) == 0
    twin.update([Reading(eq, "temperature", 11, 21.0)])
    state = twin.get(eq)
    assert state["temperature"].value == 21.0
    assert state["count"].to_json()["value"] == 1
    twin.mark_stale(eq, 20)
    assert twin.get(eq)["count"].quality is Quality.BAD
    assert twin.equipment() == [eq]
    assert twin.get("88.1/none") == {}
