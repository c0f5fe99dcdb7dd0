"""``iinode equipment add`` options for OPC UA nodes and Modbus registers (no network)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli.cli_support import iinode
from iinode.cli.equipment import build_connection, parse_modbus_register, parse_opcua_tag
from iinode.errors import ValueInvalid
from iinode.telemetry.model import DataType


def test_other_protocols_keep_address_only() -> None:
    connection, types = build_connection("sparkplug", "88.1/EDGE/PRESS-1")
    assert (connection.protocol, connection.address, dict(connection.details)) == (
        "sparkplug", "88.1/EDGE/PRESS-1", {},
    )  # fmt: skip
    assert types == {}


def test_opcua_tags() -> None:
    assert parse_opcua_tag("temp=ns=2;i=5") == ("temp", "ns=2;i=5")
    assert parse_opcua_tag("t=ns=3;s=Line 1/Press=A") == ("t", "ns=3;s=Line 1/Press=A")
    connection, types = build_connection(
        "none", "opc.tcp://10.0.0.7:4840", opcua_tags=["a=ns=2;i=5", "b=i=2258"], publishing_ms=50
    )
    assert connection.protocol == "opcua"
    assert connection.address == "opc.tcp://10.0.0.7:4840"
    assert dict(connection.details) == {
        "endpoint": "opc.tcp://10.0.0.7:4840",
        "nodes": {"a": "ns=2;i=5", "b": "i=2258"},
        "publishing_ms": 50,
    }
    assert types == {"a": DataType.FLOAT, "b": DataType.FLOAT}


@pytest.mark.parametrize(
    ("text", "item"),
    [
        ("a=0", {"tag": "a", "address": 0}),
        ("a=holding:40:int32", {"tag": "a", "address": 40, "table": "holding", "type": "int32"}),
        ("a=coil:3", {"tag": "a", "address": 3, "table": "coil"}),
        ("a=input:4:int16:scale=0.1:offset=-5",
         {"tag": "a", "address": 4, "table": "input", "type": "int16", "scale": 0.1,
          "offset": -5.0}),
        ("a=7:uint64:word_order=little",
         {"tag": "a", "address": 7, "type": "uint64", "word_order": "little"}),
    ],
)  # fmt: skip
def test_modbus_registers(text: str, item: dict[str, object]) -> None:
    assert parse_modbus_register(text) == item


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_opcua_tag("temp"), "expected NAME=NODEID"),
        (lambda: parse_opcua_tag("temp=ns=2;x=5"), "not an OPC UA node id"),
        (lambda: parse_modbus_register("a=holding"), "expected NAME="),
        (lambda: parse_modbus_register("a=holding:1:int32:scale=x"), "scale 'x' is not a number"),
        (lambda: parse_modbus_register("a=1:int32:labels=1"), "is not one of scale="),
        (lambda: build_connection("none", "h:502", opcua_tags=["a=i=1"],
                                  modbus_registers=["b=0"]), "not both"),
        (lambda: build_connection("sparkplug", "", opcua_tags=["a=i=1"]), "does not read opcua"),
        (lambda: build_connection("none", "", opcua_tags=["a=i=1"]), "needs --address opc.tcp"),
        (lambda: build_connection("none", "nohost", modbus_registers=["a=0"]), "HOST:PORT"),
        (lambda: build_connection("none", "", unit=3), "takes no OPC UA or Modbus options"),
        (lambda: build_connection("sparkplug", "g/e/d", interval=1.0), "takes no OPC UA"),
    ],
)  # fmt: skip
def test_refusals(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises(ValueInvalid, match=message):
        call()


def test_mapping_file_and_options_together(tmp_path: Path) -> None:
    path = tmp_path / "plc.json"
    path.write_text(json.dumps({
        "protocol": "modbus", "host": "10.0.0.5", "port": 1502, "unit": 3,
        "registers": [{"tag": "state", "address": 10, "labels": {"0": "idle", "1": "run"}}],
    }))  # fmt: skip
    connection, types = build_connection(
        "none", "", modbus_registers=["count=holding:0:uint64", "on=coil:1"], mapping=path,
        interval=0.5,
    )  # fmt: skip
    assert (connection.protocol, connection.address) == ("modbus", "10.0.0.5:1502")
    assert connection.details["unit"] == 3
    assert connection.details["interval"] == 0.5
    assert [r["tag"] for r in connection.details["registers"]] == ["state", "count", "on"]
    assert types == {"state": DataType.STRING, "count": DataType.INT, "on": DataType.BOOL}
    with pytest.raises(ValueInvalid, match="says modbus"):
        build_connection("opcua", "", mapping=path)
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(ValueInvalid, match="JSON object"):
        build_connection("none", "", mapping=tmp_path / "bad.json")


def test_a_wrong_register_map_is_one_error_line_before_anything_is_sent() -> None:
    # overlapping registers: refused by the same check the node runs, no node needed
    proc: subprocess.CompletedProcess[str] = iinode(
        "equipment", "add", "88.1/PLC", "--node", "http://127.0.0.1:9", "--secret", "x",
        "--address", "127.0.0.1:502", "--modbus-register", "a=holding:0:int32",
        "--modbus-register", "b=holding:1:int16", check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "overlap" in lines[0]
