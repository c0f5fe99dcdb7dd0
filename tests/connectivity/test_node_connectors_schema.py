"""Connection details of OPC UA and Modbus equipment: the schema's checks and the plan."""

from __future__ import annotations

from typing import Any

import pytest

from iinode.connectivity.endpoints import (
    ModbusEndpoint,
    OpcUaEndpoint,
    check_equipment,
    check_node_id,
    modbus_connection,
    opcua_connection,
    plan,
)
from iinode.connectivity.modbus import factory_register_map
from iinode.connectivity.modbus_map import RegisterPoint, RegisterType, Table
from iinode.errors import ValueInvalid
from iinode.telemetry.model import Connection, DataType, Equipment, Tag
from iinode.telemetry.registry_handles import attributes_json, equipment_from_record
from iinode.telemetry.simulator import Factory

PREFIX = "88.118.8"
TAGS = (
    Tag("temperature", DataType.FLOAT),
    Tag("good_count", DataType.INT),
    Tag("state", DataType.STRING),
    Tag("running", DataType.BOOL),
)
URL = "opc.tcp://10.0.0.7:4840"


def machine(connection: dict[str, Any], suffix: str = "M1") -> Equipment:
    return Equipment(f"{PREFIX}/{suffix}", connection=Connection.from_json(connection), tags=TAGS)


def opcua(**changes: Any) -> dict[str, Any]:
    nodes = {"temperature": "ns=2;s=M1/temperature", "good_count": "ns=2;i=1007"}
    body = {"protocol": "opcua", "endpoint": URL, "nodes": nodes}
    return {k: v for k, v in (body | changes).items() if v is not None}


def modbus(*registers: dict[str, Any], **changes: Any) -> dict[str, Any]:
    regs = list(registers) or [
        {"tag": "temperature", "address": 0, "type": "float32"},
        {"tag": "good_count", "address": 2, "type": "uint32", "word_order": "little"},
        {"tag": "state", "address": 4, "labels": {"0": "running", "1": "idle"}},
        {"tag": "running", "address": 7, "table": "coil"},
    ]
    body = {"protocol": "modbus", "host": "10.0.0.5", "port": 502, "unit": 3, "interval": 0.5,
            "registers": regs}  # fmt: skip
    return {k: v for k, v in (body | changes).items() if v is not None}


def test_valid_details_give_one_endpoint_each() -> None:
    got = plan([machine(opcua(), "M1"), machine(modbus(), "M2")])
    assert got.invalid == {}
    ua = got.endpoints[f"opcua:{URL}"]
    assert isinstance(ua, OpcUaEndpoint)
    assert ua.publishing_ms == 500
    assert ua.nodes == (("ns=2;i=1007", f"{PREFIX}/M1", "good_count"),
                        ("ns=2;s=M1/temperature", f"{PREFIX}/M1", "temperature"))  # fmt: skip
    mb = got.endpoints["modbus:10.0.0.5:502/3"]
    assert isinstance(mb, ModbusEndpoint)
    assert (mb.unit, mb.interval, mb.equipment) == (3, 0.5, (f"{PREFIX}/M2",))
    by_tag = {p.tag: p for p in mb.points}
    assert by_tag["good_count"].type is RegisterType.UINT32
    assert by_tag["running"].table is Table.COIL
    assert by_tag["state"].decode([1]) == "idle"
    assert by_tag["state"].decode([9]) == "9"  # an unknown code stays visible


def test_details_survive_the_identifier_record() -> None:
    item = machine(modbus())
    text = attributes_json(item)
    from iinode.identifiers import HandleValue, StringData

    back = equipment_from_record(item.id, [HandleValue(2, "IINODE_EQUIPMENT", StringData(text))])
    assert back is not None
    assert back.connection == item.connection
    assert back.connection.details["registers"][2]["labels"] == {"0": "running", "1": "idle"}
    # the wire JSON of plain equipment is what it was before details existed
    assert Connection("sparkplug", "a/b").to_json() == {
        "protocol": "sparkplug", "address": "a/b", "options": {}}  # fmt: skip


def test_equipment_of_other_protocols_is_not_checked() -> None:
    check_equipment(machine({"protocol": "sparkplug", "address": "88.118.8/plant"}))
    assert plan([machine({"protocol": "none"})]).endpoints == {}


WRONG: list[tuple[dict[str, Any], str]] = [
    (opcua(endpoint=None), '"endpoint"'),
    (opcua(endpoint="http://10.0.0.7:4840"), "opc.tcp://host:4840"),
    (opcua(endpoint="opc.tcp://host:99999"), "is not a URL"),
    (opcua(nodes=None), '"nodes"'),
    (opcua(nodes={}), '"nodes"'),
    (opcua(nodes={"pressure": "ns=2;i=5"}), "tag 'pressure', which the equipment does not have"),
    (opcua(nodes={"temperature": "ns=2;x=5"}), "is not an OPC UA node id"),
    (opcua(nodes={"temperature": "ns=2;i=4294967296"}), "is not an OPC UA node id"),
    (opcua(nodes={"temperature": "ns=2;i=5", "good_count": "ns=2;i=5"}), "given for both"),
    (opcua(publishing_ms=0), '"publishing_ms" must be an integer 10..3600000'),
    (opcua(sampling=5), "unknown member(s) sampling"),
    (modbus(host=None), '"host"'),
    (modbus(host="bad host"), '"host"'),
    (modbus(port=0), '"port" must be an integer 1..65535'),
    (modbus(port="502"), '"port" must be an integer'),
    (modbus(unit=256), '"unit" must be an integer 0..255'),
    (modbus(interval=0), '"interval" must be a number'),
    (modbus(registers=[]), '"registers"'),
    (modbus({"tag": "temperature", "adress": 0}), "unknown member(s) adress"),
    (modbus({"tag": "temperature"}), 'needs "address"'),
    (modbus({"address": 0}), "needs a tag name"),
    (modbus({"tag": "pressure", "address": 0}), "tag 'pressure', which the equipment"),
    (modbus({"tag": "temperature", "address": 65535, "type": "float32"}), "out of range"),
    (modbus({"tag": "temperature", "address": -1}), '"address" must be an integer 0..65535'),
    (modbus({"tag": "temperature", "address": 0, "table": "holdings"}), "table 'holdings'"),
    (modbus({"tag": "temperature", "address": 0, "type": "real"}), "type 'real'"),
    (modbus({"tag": "temperature", "address": 0, "type": "float32", "scale": 0}),
     "scale must not be 0"),
    (modbus({"tag": "temperature", "address": 0, "type": "float32", "word_order": "middle"}),
     "'big' or 'little'"),
    (modbus({"tag": "running", "address": 0, "type": "uint16"}), "gives int values, but the tag"),
    (modbus({"tag": "good_count", "address": 0, "type": "float32"}), "gives float values"),
    (modbus({"tag": "good_count", "address": 0, "table": "coil"}), "gives bool values"),
    (modbus({"tag": "temperature", "address": 0, "table": "input", "type": "bool"}),
     "does not fit input"),
    (modbus({"tag": "state", "address": 0}), "gives int values, but the tag is string"),
    (modbus({"tag": "state", "address": 0, "type": "float32", "labels": {"0": "x"}}),
     "labels need an unscaled integer type"),
    (modbus({"tag": "state", "address": 0, "labels": {"zero": "x"}}), "is not an integer"),
    (modbus({"tag": "state", "address": 0, "labels": {"0": "x", "1": "x"}}), "must be unique"),
    (modbus({"tag": "temperature", "address": 0, "type": "float32"},
            {"tag": "good_count", "address": 1, "type": "uint32"}), "overlaps"),
    (modbus({"tag": "temperature", "address": 0, "type": "float32"},
            {"tag": "temperature", "address": 4, "type": "float32"}), "two registers"),
]  # fmt: skip


@pytest.mark.parametrize(("details", "message"), WRONG)
def test_wrong_details_are_refused_with_a_clear_error(
    details: dict[str, Any], message: str
) -> None:
    item = machine(details)
    with pytest.raises(ValueInvalid) as caught:
        check_equipment(item)
    assert message in caught.value.message
    assert caught.value.message.startswith(f"connection of {item.id} (")
    assert list(plan([item]).invalid) == [item.id]


def test_equipment_sharing_an_endpoint_share_one_connector() -> None:
    factory = Factory.demo(PREFIX, 3, seed=1)
    points = factory_register_map(factory, state_labels=True).points
    items = [
        Equipment(m.spec.id, connection=modbus_connection(
            "127.0.0.1", 1502, [p for p in points if p.equipment == m.spec.id],
            interval=0.5 + i), tags=factory.equipment()[i].tags)
        for i, m in enumerate(factory.machines)
    ]  # fmt: skip
    got = plan(items)
    assert got.invalid == {}
    (endpoint,) = got.endpoints.values()
    assert isinstance(endpoint, ModbusEndpoint)
    assert endpoint.interval == 0.5
    assert len(endpoint.points) == len(points)
    assert endpoint.equipment == tuple(m.spec.id for m in factory.machines)
    # a second machine claiming the first one's registers is left out, with the reason
    clash = Equipment(f"{PREFIX}/M999", connection=items[0].connection, tags=items[0].tags)
    got = plan([*items, clash])
    assert set(got.invalid) == {clash.id}
    assert "overlaps" in got.invalid[clash.id]


def test_opcua_nodes_read_for_two_machines_clash() -> None:
    one = Equipment(f"{PREFIX}/A", connection=opcua_connection(URL, {"temperature": "i=2258"}),
                    tags=TAGS)  # fmt: skip
    two = Equipment(f"{PREFIX}/B", connection=opcua_connection(URL, {"temperature": "i=2258"}),
                    tags=TAGS)  # fmt: skip
    got = plan([two, one])
    assert list(got.invalid) == [two.id]
    assert "already read for 88.118.8/A" in got.invalid[two.id]


@pytest.mark.parametrize(
    "text", ["i=2258", "ns=2;s=Line 1/Press;x", "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a",
             "ns=3;b=M/RbKBsRVkePCePcx24oRA=="])  # fmt: skip
def test_node_id_forms(text: str) -> None:
    assert check_node_id(text) == text


def test_register_point_labels_round_trip() -> None:
    p = RegisterPoint(f"{PREFIX}/M1", "state", Table.HOLDING, 0, RegisterType.UINT16,
                      labels=((0, "running"), (3, "down")))  # fmt: skip
    assert p.encode("down") == [3]
    assert p.decode(p.encode("running")) == "running"
    with pytest.raises(ValueInvalid, match="has no label code"):
        p.encode("setup")
