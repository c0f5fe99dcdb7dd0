"""Sparkplug B 3.0 composite types: arrays, DataSets, Templates, PropertySets.

Payloads are built here directly with the protobuf classes, field by field as
the specification lays them out, not with iinode's encoder.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from typing import Any

import aiomqtt
import pytest

from iinode.connectivity.mqtt import MqttConnector, MqttSettings
from iinode.connectivity.sparkplug import (
    DataSet,
    DataType,
    HostApplication,
    Metric,
    Payload,
    SparkplugError,
    Template,
    decode_payload,
    encode_payload,
)
from iinode.connectivity.sparkplug.schema import message_classes
from iinode.telemetry.bus import MemoryBus
from iinode.telemetry.model import Quality, Reading
from iinode.telemetry.validation import RejectReason

GROUP = "88.118.8"
NOW_MS = 1_767_225_690_000
NOW_US = NOW_MS * 1000
EQ = "88.118.8/PRESS-01"
T = NOW_US + 1000


def pb_payload(seq: int) -> Any:
    return message_classes()["Payload"](timestamp=NOW_MS, seq=seq)


def add(payload: Any, dtype: DataType, name: str | None = None, alias: int | None = None) -> Any:
    m = payload.metrics.add(datatype=int(dtype))
    if name is not None:
        m.name = name
    if alias is not None:
        m.alias = alias
    return m


def nbirth() -> bytes:
    p = pb_payload(0)
    add(p, DataType.INT64, "bdSeq").long_value = 0
    motor = add(p, DataType.TEMPLATE, "_types_/Motor").template_value
    motor.is_definition = True
    motor.version = "1.0"
    for name, dtype in (("rpm", DataType.INT32), ("temp", DataType.FLOAT),
                        ("faults", DataType.BOOLEAN_ARRAY)):  # fmt: skip
        add(motor, dtype, name)
    param = motor.parameters.add(name="ratedKw", type=int(DataType.FLOAT))
    param.float_value = 7.5
    return bytes(p.SerializeToString())


def dbirth() -> bytes:
    p = pb_payload(1)
    temp = add(p, DataType.DOUBLE, "temp", 1)
    temp.double_value = 20.5
    props = temp.properties
    for key, ptype, field, value in (
        ("engUnit", DataType.STRING, "string_value", "degC"),
        ("engLow", DataType.DOUBLE, "double_value", -40.0),
        ("Quality", DataType.INT32, "int_value", 192),
    ):
        props.keys.append(key)
        setattr(props.values.add(type=int(ptype)), field, value)
    props.keys.append("limits")
    nested = props.values.add(type=int(DataType.PROPERTYSET)).propertyset_value
    nested.keys.append("hi")
    nested.values.add(type=int(DataType.DOUBLE), double_value=90.0)
    props.keys.append("history")
    listed = props.values.add(type=int(DataType.PROPERTYSETLIST)).propertysets_value
    entry = listed.propertyset.add()
    entry.keys.append("n")
    entry.values.add(type=int(DataType.INT32), int_value=1)
    add(p, DataType.INT8_ARRAY, "offsets", 2).bytes_value = struct.pack("<3b", -1, 0, 5)
    add(p, DataType.UINT32_ARRAY, "counts", 3).bytes_value = struct.pack("<2I", 4_000_000_000, 7)
    add(p, DataType.DATETIME_ARRAY, "stamps", 4).bytes_value = struct.pack("<2q", NOW_MS, 0)
    add(p, DataType.STRING_ARRAY, "names", 5).bytes_value = b"ab\x00\x00c\x00"
    add(p, DataType.BOOLEAN_ARRAY, "flags", 6).bytes_value = bytes([3, 0, 0, 0, 0xA0])
    ds = add(p, DataType.DATASET, "recipe", 7).dataset_value
    ds.num_of_columns = 2
    ds.columns.extend(["step", "temp"])
    ds.types.extend([int(DataType.INT16), int(DataType.DOUBLE)])
    cells: list[tuple[int, float | None]] = [(-1, 180.0), (2, None)]
    for step, temp in cells:
        row = ds.rows.add()
        row.elements.add(int_value=step & 0xFFFF)
        cell = row.elements.add()
        if temp is not None:
            cell.double_value = temp
    motor = add(p, DataType.TEMPLATE, "motor1", 8).template_value
    motor.template_ref = "_types_/Motor"
    add(motor, DataType.INT32, "rpm").int_value = 1500
    add(motor, DataType.FLOAT, "temp").float_value = 41.5
    add(motor, DataType.BOOLEAN_ARRAY, "faults").bytes_value = bytes([2, 0, 0, 0, 0x40])
    add(p, DataType.BYTES, "blob", 9).bytes_value = b"\x00\x01"
    return bytes(p.SerializeToString())


def ddata(seq: int) -> bytes:
    p = pb_payload(seq)
    m = add(p, DataType.UNKNOWN, alias=2)  # datatype omitted: known from DBIRTH
    m.bytes_value = struct.pack("<2b", 7, -8)
    m.timestamp = NOW_MS + 1
    motor = add(p, DataType.TEMPLATE, alias=8).template_value
    member = add(motor, DataType.UNKNOWN, "rpm")  # type from the definition in NBIRTH
    member.int_value = 0xFFFFFFFF  # Int32 -1, two's complement
    member.timestamp = NOW_MS + 2
    q = add(p, DataType.DOUBLE, alias=1)
    q.double_value = 21.0
    q.timestamp = NOW_MS + 3
    q.properties.keys.append("Quality")
    q.properties.values.add(type=int(DataType.INT32), int_value=500)
    return bytes(p.SerializeToString())


def started() -> tuple[HostApplication, list[Reading]]:
    host = HostApplication()
    got: list[Reading] = []
    for topic, data in ((f"spBv1.0/{GROUP}/NBIRTH/edge1", nbirth()),
                        (f"spBv1.0/{GROUP}/DBIRTH/edge1/PRESS-01", dbirth())):  # fmt: skip
        result = host.receive(topic, data, NOW_US)
        assert result.errors == result.malformed == []
        got += result.readings
    return host, got


def test_births_map_arrays_datasets_and_templates_to_readings() -> None:
    _host, got = started()
    at = {r.tag: r for r in got}
    assert {t: r.value for t, r in at.items()} == {
        "temp": 20.5,
        "offsets[0]": -1, "offsets[1]": 0, "offsets[2]": 5,
        "counts[0]": 4_000_000_000, "counts[1]": 7,
        "stamps[0]": NOW_MS, "stamps[1]": 0,
        "names[0]": "ab", "names[1]": "", "names[2]": "c",
        "flags[0]": True, "flags[1]": False, "flags[2]": True,
        "recipe[0]/step": -1, "recipe[0]/temp": 180.0,
        "recipe[1]/step": 2,
        "motor1/rpm": 1500, "motor1/temp": 41.5,
        "motor1/faults[0]": False, "motor1/faults[1]": True,
    }  # fmt: skip
    assert all(r.equipment == EQ and r.time_us == NOW_US for r in got)
    assert at["temp"].quality is Quality.GOOD


def test_template_definition_and_parameters_decode() -> None:
    [_, definition] = decode_payload(nbirth()).metrics
    assert definition.datatype is DataType.TEMPLATE
    assert isinstance(definition.value, Template)
    assert definition.value.is_definition
    assert definition.value.version == "1.0"
    assert [m.name for m in definition.value.metrics] == ["rpm", "temp", "faults"]
    assert definition.value.parameters == (("ratedKw", DataType.FLOAT, 7.5),)


def test_property_sets_nest_and_engineering_units_are_kept() -> None:
    host, _ = started()
    temp = decode_payload(dbirth()).metrics[0]
    assert temp.property("limits") == (("hi", DataType.DOUBLE, 90.0),)
    assert temp.property("history") == ((("n", DataType.INT32, 1),),)
    assert host.properties(GROUP, "edge1", "PRESS-01", "temp") == {
        "engUnit": "degC",
        "engLow": -40.0,
    }
    assert host.properties(GROUP, "edge1", "PRESS-01", "nothing") == {}


def test_data_by_alias_takes_types_from_births() -> None:
    host, _ = started()
    result = host.receive(f"spBv1.0/{GROUP}/DDATA/edge1/PRESS-01", ddata(2), NOW_US)
    assert result.errors == []
    assert result.readings == [
        Reading(EQ, "offsets[0]", T, 7),
        Reading(EQ, "offsets[1]", T, -8),
        Reading(EQ, "motor1/rpm", NOW_US + 2000, -1),
        Reading(EQ, "temp", NOW_US + 3000, 21.0, Quality.UNCERTAIN),
    ]


def test_composite_values_round_trip_through_the_encoder() -> None:
    tpl = Template(
        (Metric("a", 1, DataType.INT32), Metric("b", (1.5, 2.5), DataType.FLOAT_ARRAY)),
        template_ref="_types_/T",
        parameters=(("p", DataType.STRING, "x"),),
    )
    props = (("set", DataType.PROPERTYSET, (("k", DataType.BOOLEAN, True),)),)
    metrics = (
        Metric("t", tpl, DataType.TEMPLATE, alias=1),
        Metric("u", 3, DataType.UINT16, properties=props),
        Metric("d", DataSet(("c",), (DataType.STRING,), (("x",), (None,))), DataType.DATASET),
    )
    back = decode_payload(encode_payload(Payload(metrics=metrics)))
    assert back.metrics == metrics


def malformed_payloads() -> list[bytes]:
    out = []
    short_row = pb_payload(2)
    ds = add(short_row, DataType.DATASET, "d").dataset_value
    ds.columns.extend(["a", "b"])
    ds.types.extend([int(DataType.INT32), int(DataType.INT32)])
    ds.rows.add().elements.add(int_value=1)
    out.append(short_row)
    odd_array = pb_payload(2)
    add(odd_array, DataType.INT32_ARRAY, "a").bytes_value = b"\x01\x02\x03"
    out.append(odd_array)
    short_bools = pb_payload(2)
    add(short_bools, DataType.BOOLEAN_ARRAY, "b").bytes_value = bytes([9, 0, 0, 0, 0xFF])
    out.append(short_bools)
    bad_type = pb_payload(2)
    ds2 = add(bad_type, DataType.DATASET, "d").dataset_value
    ds2.columns.append("a")
    ds2.types.append(77)
    out.append(bad_type)
    mismatch = pb_payload(2)
    add(mismatch, DataType.DOUBLE, "x").template_value.version = "1"
    out.append(mismatch)
    return [bytes(p.SerializeToString()) for p in out]


@pytest.mark.parametrize("data", malformed_payloads())
def test_malformed_composites_are_refused_and_change_nothing(data: bytes) -> None:
    with pytest.raises(SparkplugError):
        decode_payload(data)
    host, _ = started()
    result = host.receive(f"spBv1.0/{GROUP}/DDATA/edge1/PRESS-01", data, NOW_US)
    assert result.readings == []
    assert result.malformed
    assert result.errors == []
    # its sequence number was delivered, so the next message is no gap
    after = host.receive(f"spBv1.0/{GROUP}/DDATA/edge1/PRESS-01", ddata(3), NOW_US)
    assert after.errors == []
    assert len(after.readings) == 4


def test_unknown_alias_in_a_template_free_payload_is_counted() -> None:
    host, _ = started()
    p = pb_payload(2)
    add(p, DataType.DOUBLE, alias=99).double_value = 1.0
    add(p, DataType.DOUBLE, alias=1).double_value = 2.0
    result = host.receive(f"spBv1.0/{GROUP}/DDATA/edge1/PRESS-01", p.SerializeToString(), NOW_US)
    assert result.errors == [f"spBv1.0/{GROUP}/DDATA/edge1/PRESS-01: unknown alias 99"]
    assert len(result.replies) == 1
    assert [r.value for r in result.readings] == [2.0]


async def test_composites_through_mosquitto(broker: tuple[str, int]) -> None:
    tag = uuid.uuid4().hex[:8]
    group = f"88.{tag}"
    bus = MemoryBus()
    connector = MqttConnector(
        MqttSettings(host=broker[0], port=broker[1], client_id=f"iinode-types-{tag}",
                     sparkplug_groups=(group,), json_topics=False, host_id=f"h-{tag}"),
        bus,
    )  # fmt: skip
    task = asyncio.create_task(connector.run())
    sub = await bus.subscribe()
    got: list[Reading] = []
    try:
        async with asyncio.timeout(10):
            await connector.connected.wait()
        async with aiomqtt.Client(*broker, identifier=f"edge-{tag}") as client:
            messages = [
                (f"spBv1.0/{group}/NBIRTH/edge1", nbirth()),
                (f"spBv1.0/{group}/DBIRTH/edge1/PRESS-01", dbirth()),
                (f"spBv1.0/{group}/DDATA/edge1/PRESS-01", malformed_payloads()[0]),
                (f"spBv1.0/{group}/DDATA/edge1/PRESS-01", ddata(3)),
            ]
            for topic, data in messages:
                await client.publish(topic, data, qos=1)
            async with asyncio.timeout(10):
                while len(got) < 25:
                    for d in await sub.fetch(64, wait=0.2):
                        got.extend(d.readings)
                        await d.ack()
    finally:
        connector.stop()
        await task
    assert len(got) == 25
    assert got[-1].tag == "temp"
    assert got[-1].quality is Quality.UNCERTAIN
    assert connector.rejects.counts[RejectReason.MALFORMED] == 1
    assert connector.rejects.counts[RejectReason.PROTOCOL] == 0
